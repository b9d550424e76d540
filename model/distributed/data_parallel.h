// Data-parallel training across processes (DESIGN.md, "Scale"): c10d's
// ProcessGroupGloo from Debian's LibTorch over a TCPStore rendezvous.
//
// Every rank runs the same trainer with model::DistributedRole{rank,
// world_size}: it draws the whole global batch's randomness from the shared
// seed and trains on its share (model/train/train_hooks.h). This class
// supplies what ties the ranks together:
//   * Connect(): the rendezvous. Rank 0 hosts the TCPStore on
//     master_addr:master_port and waits for the other world_size - 1 ranks;
//     the others connect to it. Every rank then builds its Gloo context on
//     `gloo_interface` / `gloo_hostname` (which must be reachable by the
//     other ranks).
//   * Broadcast(): rank 0's parameters (and buffers) to every rank at start.
//   * GradientReducer(): the TrainHooks::reduce_gradients hook. One all-reduce
//     (sum) per step over one flattened buffer per dtype, divided by
//     world_size. A gradient some rank did not produce (a parameter unused by
//     its share of the batch) counts as zero there; one that no rank produced
//     stays undefined, as it would in one process on the union batch.
//   * Mean(), AllGather(), Barrier(), Agree(): small collectives for the
//     reported loss, the cross-rank parameter check and consistent failures.
//
// Failure model: every collective and store operation waits at most
// `timeout`. A rank that dies closes its sockets, so the others fail at
// their next collective at once ("Connection closed by peer"); a rank that
// stalls makes them fail after `timeout`. Either way the call returns
// UNAVAILABLE with a message naming the operation, the step context and the
// timeout; it never hangs. After such an error the object is unusable, and
// the process should exit without waiting for its peers.
//
// world_size 1 needs no store and no peers: every operation is local.
#ifndef WFM_MODEL_DISTRIBUTED_DATA_PARALLEL_H_
#define WFM_MODEL_DISTRIBUTED_DATA_PARALLEL_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace wfm::model::distributed {

struct DistributedOptions {
  int64_t rank = 0;        // 0 <= rank < world_size
  int64_t world_size = 1;  // >= 1
  // Where rank 0 hosts the rendezvous store (host name or address).
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;  // 1..65535
  // The network this rank's Gloo transport listens on: an interface name
  // (as GLOO_SOCKET_IFNAME), else a host name or address, else (both empty)
  // 127.0.0.1 when master_addr is a loopback address and the address this
  // host's name resolves to otherwise.
  std::string gloo_interface;
  std::string gloo_hostname;
  // Longest wait of the rendezvous and of every collective.
  absl::Duration timeout = absl::Seconds(60);
};

// Reads WORLD_SIZE, RANK, MASTER_ADDR, MASTER_PORT and GLOO_SOCKET_IFNAME
// into `options` where set (flags given explicitly should be applied after).
// INVALID_ARGUMENT names a variable that is not a valid number.
absl::Status ApplyEnvironment(DistributedOptions* options);

// Range checks; messages name the field ("rank: ...").
absl::Status ValidateDistributedOptions(const DistributedOptions& options);

// Time and volume of one kind of collective since the start.
struct CommStats {
  int64_t calls = 0;
  int64_t bytes = 0;      // payload bytes per rank
  double seconds = 0.0;   // wall time in the call, packing and unpacking included
};

class DataParallel {
 public:
  // The rendezvous (see above). UNAVAILABLE when the peers do not all show
  // up within options.timeout, naming the store address.
  static absl::StatusOr<std::unique_ptr<DataParallel>> Connect(const DistributedOptions& options);
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  int64_t rank() const { return options_.rank; }
  int64_t world_size() const { return options_.world_size; }
  const DistributedOptions& options() const { return options_; }

  // Overwrites every tensor (any shapes and floating or integer dtypes) with
  // rank 0's values, in place and outside autograd.
  absl::Status Broadcast(const std::vector<at::Tensor>& tensors);

  // Replaces grads[i] (the gradient of params[i], or undefined) by its mean
  // over the ranks, as described above; a gradient defined only after the
  // reduction is stored into params[i].grad() and grads[i].
  absl::Status AverageGradients(const std::vector<at::Tensor>& params,
                                std::vector<at::Tensor>& grads);
  // The hook for model::TrainHooks::reduce_gradients: AverageGradients over
  // `params` (the network's parameters in registration order).
  std::function<absl::Status(std::vector<at::Tensor>&)> GradientReducer(
      std::vector<at::Tensor> params);

  // The mean of `value` over the ranks.
  absl::StatusOr<double> Mean(double value, absl::string_view what);
  // Every rank's `value`, indexed by rank.
  absl::StatusOr<std::vector<int64_t>> AllGather(int64_t value, absl::string_view what);
  absl::Status Barrier(absl::string_view what);

  // Makes a local failure everybody's: every rank passes its own status of
  // the step `what`; when all are OK, returns OK everywhere; otherwise every
  // rank returns the first failing rank's status code with the message
  // "rank R: <its message>" (messages travel through the store).
  absl::Status Agree(const absl::Status& local, absl::string_view what);

  const CommStats& gradient_stats() const { return gradient_stats_; }
  void ResetGradientStats() { gradient_stats_ = {}; }

 private:
  struct Impl;
  DataParallel(DistributedOptions options, std::unique_ptr<Impl> impl);
  // Wraps a collective: exceptions from c10d / Gloo become UNAVAILABLE.
  absl::Status Run(absl::string_view what, const std::function<void()>& fn);

  const DistributedOptions options_;
  std::unique_ptr<Impl> impl_;  // null when world_size is 1
  CommStats gradient_stats_;
  int64_t agree_round_ = 0;
};

// A 64-bit digest of the tensors' bytes (dtype, shape and values), equal on
// two ranks exactly when their values are bit-identical (up to hash
// collisions).
uint64_t TensorDigest(const std::vector<at::Tensor>& tensors);

}  // namespace wfm::model::distributed

#endif  // WFM_MODEL_DISTRIBUTED_DATA_PARALLEL_H_
