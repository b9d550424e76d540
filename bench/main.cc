// wfm_bench: benchmarks of wfm. Each subcommand prints one JSON line.
//
//   wfm_bench sinkhorn [--batch B --points N --dim D --iters K --eps E --threads T]
//   wfm_bench train    [--clouds C --points N --dim D --batch B --emb E --layers L --heads H
//                       --mlp M --iters K --steps S --threads T]
//   wfm_bench sample   [--points N --dim D --num NS --steps T --emb E --layers L --heads H
//                       --mlp M --threads T]
//   wfm_bench serve    [--points N --dim D --num NS --steps T --clients C --rounds R
//                       --max-queue-delay-ms MS --threads T]
//   wfm_bench load     [--clients 1,8,64 --seconds S --num NS --steps T --max-queue Q
//                       --max-batch-samples B --retry-delay-ms MS --threads T]
//   wfm_bench nfe      [--datasets shapes2d,shapes3d,blobs,gaussians,circle --seeds S
//                       --solvers ... --steps 1,2,4,... --rtols ... --threads T]
#include <CLI/CLI.hpp>

#include "bench/subcommands.h"

int main(int argc, char** argv) {
  CLI::App app{"wfm_bench: benchmarks of wfm (one JSON line per run)"};
  app.require_subcommand(1);
  wfm::bench::AddSinkhornCommand(app);
  wfm::bench::AddTrainCommand(app);
  wfm::bench::AddSampleCommand(app);
  wfm::bench::AddServeCommand(app);
  wfm::bench::AddLoadCommand(app);
  wfm::bench::AddNfeCommand(app);
  CLI11_PARSE(app, argc, argv);
  return 0;
}
