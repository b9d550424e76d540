// `wfm train` flags and their translation into a StartTrainingRequest.
// Flags that are not given stay unset in the request, so the server's
// defaults apply (DESIGN.md: the reference's values, sized so a small model
// trains in about a minute on CPU).
#ifndef WFM_CLIENT_TRAIN_FLAGS_H_
#define WFM_CLIENT_TRAIN_FLAGS_H_

#include <cstdint>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "absl/status/statusor.h"
#include "wfm/v1/wfm_service.pb.h"

namespace wfm::client {

struct TrainFlags {
  std::string dataset;
  std::string model;
  std::string family;  // "pointcloud" | "gaussian"; "" = from the data set's kind
  bool overwrite = false;
  bool watch = false;
  bool json = false;
  // optimiser
  std::optional<int64_t> steps, batch, decay_steps;
  std::optional<double> lr, decay_rate, grad_clip;
  std::optional<uint64_t> seed;
  // network
  std::optional<int64_t> emb, layers, heads, mlp;
  std::optional<double> dropout;
  std::optional<std::string> architecture;
  // data
  std::optional<int64_t> k, checkpoint_every;
  std::optional<double> holdout;
  // point clouds
  std::optional<std::string> monge_map, minibatch_cost;
  std::optional<double> eps, sinkhorn_tol, guidance, p_uncond, minibatch_eps, df_scale;
  std::optional<int64_t> sinkhorn_iters, subsample_points, source_subsample_points;
  // both families
  std::optional<std::string> noise, minibatch_ot, source_dataset;
  // Gaussians
  std::optional<std::string> velocity, loss;
  std::optional<double> mean_scale, cov_scale;
};

// Registers every flag of `wfm train` on `command` (ranges and fixed value
// sets are checked while parsing: a bad value is a usage error).
void AddTrainFlags(CLI::App* command, TrainFlags* flags);

// The request for family `family` ("pointcloud" or "gaussian").
// InvalidArgument for a flag of the other family (e.g. --monge-map with
// gaussian) or a value that family does not take (--noise wishart for point
// clouds), naming the flag.
absl::StatusOr<v1::StartTrainingRequest> BuildTrainingRequest(const TrainFlags& flags,
                                                              const std::string& family);

// "on"/"true"/"yes"/"1" -> true, "off"/"false"/"no"/"0" -> false.
absl::StatusOr<bool> ParseOnOff(const std::string& value, const std::string& flag);

}  // namespace wfm::client

#endif  // WFM_CLIENT_TRAIN_FLAGS_H_
