// Every settable field of wfm.v1.TrainingConfig, by reflection over its
// descriptor, so tests notice a field that a new proto revision adds.
#ifndef WFM_TESTS_TESTING_TRAINING_CONFIG_PATHS_H_
#define WFM_TESTS_TESTING_TRAINING_CONFIG_PATHS_H_

#include <google/protobuf/descriptor.h>

#include <string>
#include <vector>

#include "model/config/options.h"
#include "wfm/v1/types.pb.h"

namespace wfm::testing {

struct ConfigPath {
  std::string path;                     // "network.width", "pointcloud.noise"
  std::vector<model::Family> families;  // the families whose configuration has it
};

// The leaf fields below `d`; `prefix` names `d`'s place.
inline void CollectConfigPaths(const google::protobuf::Descriptor* d, const std::string& prefix,
                               std::vector<ConfigPath>* out) {
  for (int i = 0; i < d->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* f = d->field(i);
    const std::string path = prefix.empty() ? f->name() : prefix + "." + f->name();
    if (path == "family") continue;  // chosen by the request, not an option
    if (f->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE) {
      CollectConfigPaths(f->message_type(), path, out);
      continue;
    }
    std::vector<model::Family> families = {model::Family::kPointCloud, model::Family::kGaussian};
    if (path.rfind("pointcloud.", 0) == 0) families = {model::Family::kPointCloud};
    if (path.rfind("gaussian.", 0) == 0) families = {model::Family::kGaussian};
    out->push_back({path, families});
  }
}

// Calls fn(option, field) for every field of the option table at `p.path` in
// one of `p.families`; returns how many there were.
template <typename Fn>
int ForEachOptionFieldAt(const ConfigPath& p, Fn fn) {
  int count = 0;
  for (model::Family family : p.families) {
    for (const model::TrainingOption& o : model::TrainingOptions()) {
      const model::OptionField* f = o.For(family);
      if (f == nullptr || f->path != p.path) continue;
      fn(o, *f);
      ++count;
    }
  }
  return count;
}

inline std::vector<ConfigPath> TrainingConfigPaths() {
  std::vector<ConfigPath> paths;
  CollectConfigPaths(v1::TrainingConfig::descriptor(), "", &paths);
  return paths;
}

}  // namespace wfm::testing

#endif  // WFM_TESTS_TESTING_TRAINING_CONFIG_PATHS_H_
