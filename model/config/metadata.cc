#include "model/config/metadata.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace wfm::model {

absl::StatusOr<int64_t> LabelSpace::Code(absl::string_view name) const {
  if (kind != Kind::kDiscrete) {
    return absl::InvalidArgumentError("label: this model has no discrete labels");
  }
  const auto it = std::find(names.begin(), names.end(), std::string(name));
  if (it != names.end()) return static_cast<int64_t>(it - names.begin());
  const size_t shown = std::min<size_t>(names.size(), 20);
  return absl::InvalidArgumentError(absl::StrCat(
      "label: unknown '", name, "' (known: ",
      absl::StrJoin(names.begin(), names.begin() + shown, ", "),
      names.size() > shown ? ", ..." : "", ")"));
}

absl::Status LabelSpace::CheckCondition(const std::vector<float>& condition,
                                        int64_t samples) const {
  if (condition.empty()) return absl::OkStatus();
  if (kind != Kind::kContinuous) {
    return absl::InvalidArgumentError(
        "condition: this model is not conditioned on condition vectors");
  }
  const int64_t n = static_cast<int64_t>(condition.size());
  if (n != cond_dim && (samples <= 1 || n != samples * cond_dim)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "condition: must have ", cond_dim, " values",
        samples > 1 ? absl::StrCat(" (or ", samples * cond_dim, ", one vector per sample)") : "",
        ", got ", n));
  }
  for (float v : condition) {
    if (!std::isfinite(v)) return absl::InvalidArgumentError("condition: values must be finite");
  }
  return absl::OkStatus();
}

nlohmann::json LabelSpace::ToJson() const {
  const char* k = kind == Kind::kNone ? "none" : kind == Kind::kDiscrete ? "discrete" : "continuous";
  return {{"kind", k}, {"names", names}, {"cond_dim", cond_dim}};
}

absl::StatusOr<LabelSpace> LabelSpace::FromJson(const nlohmann::json& j) {
  try {
    LabelSpace s;
    const std::string k = j.at("kind").get<std::string>();
    if (k == "none") {
      s.kind = Kind::kNone;
    } else if (k == "discrete") {
      s.kind = Kind::kDiscrete;
      s.names = j.at("names").get<std::vector<std::string>>();
      if (s.names.empty()) return absl::InvalidArgumentError("labels: discrete labels without names");
    } else if (k == "continuous") {
      s.kind = Kind::kContinuous;
      s.cond_dim = j.at("cond_dim").get<int64_t>();
      if (s.cond_dim < 1) return absl::InvalidArgumentError("labels: cond_dim must be >= 1");
    } else {
      return absl::InvalidArgumentError(absl::StrCat("labels: unknown kind '", k, "'"));
    }
    return s;
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("labels: ", e.what()));
  }
}

absl::StatusOr<EncodedLabels> EncodeLabels(const io::Labels& labels) {
  EncodedLabels out;
  switch (labels.kind) {
    case io::Labels::Kind::kNone:
      return out;
    case io::Labels::Kind::kInteger:
    case io::Labels::Kind::kString: {
      out.space.kind = LabelSpace::Kind::kDiscrete;
      const int64_t n = labels.count();
      std::vector<std::string> text(n);
      for (int64_t i = 0; i < n; ++i) text[i] = labels.Text(i);
      // Integer labels sort numerically, strings lexicographically (np.unique).
      std::map<std::string, int64_t> order;
      if (labels.kind == io::Labels::Kind::kInteger) {
        std::vector<int64_t> uniq = labels.integers;
        std::sort(uniq.begin(), uniq.end());
        uniq.erase(std::unique(uniq.begin(), uniq.end()), uniq.end());
        for (int64_t v : uniq) out.space.names.push_back(absl::StrCat(v));
      } else {
        out.space.names = text;
        std::sort(out.space.names.begin(), out.space.names.end());
        out.space.names.erase(std::unique(out.space.names.begin(), out.space.names.end()),
                              out.space.names.end());
      }
      for (size_t c = 0; c < out.space.names.size(); ++c) order[out.space.names[c]] = c;
      out.codes.resize(n);
      for (int64_t i = 0; i < n; ++i) out.codes[i] = order.at(text[i]);
      return out;
    }
    case io::Labels::Kind::kContinuous:
      out.space.kind = LabelSpace::Kind::kContinuous;
      out.space.cond_dim = labels.width;
      out.conditions = labels.values;
      return out;
  }
  return absl::InvalidArgumentError("labels: unknown kind");
}

nlohmann::json TrainingSummary::ToJson() const {
  return {{"dataset", dataset},       {"items", items},
          {"steps", steps},           {"final_loss", final_loss},
          {"recent_loss", recent_loss}, {"seconds", seconds},
          {"steps_per_second", steps_per_second}, {"world_size", world_size}};
}

TrainingSummary TrainingSummary::FromJson(const nlohmann::json& j) {
  TrainingSummary s;
  s.dataset = j.value("dataset", "");
  s.items = j.value("items", int64_t{0});
  s.steps = j.value("steps", int64_t{0});
  s.final_loss = j.value("final_loss", 0.0);
  s.recent_loss = j.value("recent_loss", 0.0);
  s.seconds = j.value("seconds", 0.0);
  s.steps_per_second = j.value("steps_per_second", 0.0);
  s.world_size = j.value("world_size", int64_t{1});
  return s;
}

}  // namespace wfm::model
