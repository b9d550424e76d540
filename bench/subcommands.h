// Registration of the wfm_bench subcommands (one file each).
#ifndef WFM_BENCH_SUBCOMMANDS_H_
#define WFM_BENCH_SUBCOMMANDS_H_

#include <CLI/CLI.hpp>

namespace wfm::bench {

// sinkhorn: B random pairs of N-point clouds, K log-domain iterations.
void AddSinkhornCommand(CLI::App& app);
// train / sample: point-cloud (or --gaussian) training and sampling speed.
void AddTrainCommand(CLI::App& app);
void AddSampleCommand(CLI::App& app);
// serve: sampling over gRPC against an in-process wfm-server (serve_bench.cc).
void AddServeCommand(CLI::App& app);
// load: 1 / 8 / 64 concurrent sampling clients against an in-process
// wfm-server: throughput, latency, rejection rate, memory (load_bench.cc).
void AddLoadCommand(CLI::App& app);
// nfe: held-out quality and samples/s per ODE solver and step count, on
// small models trained on built-in data sets of both families (nfe_bench.cc).
void AddNfeCommand(CLI::App& app);

}  // namespace wfm::bench

#endif  // WFM_BENCH_SUBCOMMANDS_H_
