// Descriptions stored with every trained model (checkpoint metadata, model
// info over the API): the label space it was conditioned on and the summary
// of its training. No torch here.
#ifndef WFM_MODEL_CONFIG_METADATA_H_
#define WFM_MODEL_CONFIG_METADATA_H_

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "model/io/point_sets.h"

namespace wfm::model {

// What a model is conditioned on.
struct LabelSpace {
  enum class Kind { kNone, kDiscrete, kContinuous };
  Kind kind = Kind::kNone;
  // kDiscrete: the label names in code order (sorted; integer labels are
  // written in decimal). Code i is names[i].
  std::vector<std::string> names;
  // kContinuous: the length of a condition vector.
  int64_t cond_dim = 0;

  bool conditional() const { return kind != Kind::kNone; }
  // The code of a discrete label; INVALID_ARGUMENT naming the known labels.
  absl::StatusOr<int64_t> Code(absl::string_view name) const;
  // A request's condition (empty = none given): INVALID_ARGUMENT naming
  // "condition" unless it is empty or the model is continuous and it holds
  // cond_dim finite values (one shared vector) or, when `samples` > 1,
  // samples · cond_dim (one vector per sample).
  absl::Status CheckCondition(const std::vector<float>& condition, int64_t samples = 1) const;

  nlohmann::json ToJson() const;
  static absl::StatusOr<LabelSpace> FromJson(const nlohmann::json& j);
};

// The label space of a data set's labels, and the per-item codes (discrete:
// int64 [C] into names) or condition vectors (continuous: float [C*cond_dim]).
struct EncodedLabels {
  LabelSpace space;
  std::vector<int64_t> codes;
  std::vector<float> conditions;
};
absl::StatusOr<EncodedLabels> EncodeLabels(const io::Labels& labels);

struct TrainingSummary {
  std::string dataset;
  int64_t items = 0;          // clouds or Gaussians trained on
  int64_t steps = 0;          // optimisation steps done
  double final_loss = 0.0;    // loss of the last step
  double recent_loss = 0.0;   // mean loss of the last (up to) 100 steps
  double seconds = 0.0;       // wall time of training
  double steps_per_second = 0.0;
  int64_t world_size = 1;     // data-parallel processes

  nlohmann::json ToJson() const;
  static TrainingSummary FromJson(const nlohmann::json& j);
};

}  // namespace wfm::model

#endif  // WFM_MODEL_CONFIG_METADATA_H_
