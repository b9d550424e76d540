// wfm_bench train --world-size N (bench/distributed_bench.cc): the same
// global batch trained by one process and by N data-parallel processes on
// loopback; prints one JSON line (speed-up, all-reduce share of a step).
#ifndef WFM_BENCH_DISTRIBUTED_BENCH_H_
#define WFM_BENCH_DISTRIBUTED_BENCH_H_

#include "bench/bench_args.h"

namespace wfm::bench {

// Returns the process exit code. Needs args.world_size >= 2 and a batch
// that splits evenly over the processes.
int RunDistributedTrain(const TrainBenchArgs& args);

}  // namespace wfm::bench

#endif  // WFM_BENCH_DISTRIBUTED_BENCH_H_
