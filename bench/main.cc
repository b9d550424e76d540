// wfm_bench: benchmarks of wfm. Each subcommand prints one JSON line.
//
//   wfm_bench sinkhorn [--batch B --points N --dim D --iters K --eps E --threads T]
#include <CLI/CLI.hpp>

#include "bench/subcommands.h"

int main(int argc, char** argv) {
  CLI::App app{"wfm_bench: benchmarks of wfm (one JSON line per run)"};
  app.require_subcommand(1);
  wfm::bench::AddSinkhornCommand(app);
  CLI11_PARSE(app, argc, argv);
  return 0;
}
