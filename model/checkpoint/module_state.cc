#include "model/checkpoint/module_state.h"

#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <torch/utils.h>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "model/common/tensor_checks.h"
#include "model/common/torch_status.h"

namespace wfm::model::checkpoint {
namespace {

struct ModuleTensor {
  std::string name;
  at::Tensor tensor;  // the module's own tensor (not a copy)
  bool is_buffer;
};

std::vector<ModuleTensor> ModuleTensors(const torch::nn::Module& module) {
  std::vector<ModuleTensor> out;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) {
    if (item.value().defined()) out.push_back({item.key(), item.value(), false});
  }
  for (const auto& item : module.named_buffers(/*recurse=*/true)) {
    if (item.value().defined()) out.push_back({item.key(), item.value(), true});
  }
  return out;
}

std::string TypeText(at::ScalarType type) {
  const absl::string_view name = DtypeName(type);
  return name.empty() ? std::string(c10::toString(type)) : std::string(name);
}

}  // namespace

absl::StatusOr<NamedTensors> StateTensors(const torch::nn::Module& module,
                                          absl::string_view prefix) {
  return GuardTorch("module state", [&]() -> absl::StatusOr<NamedTensors> {
    NamedTensors out;
    absl::flat_hash_set<std::string> names;
    for (const ModuleTensor& t : ModuleTensors(module)) {
      if (!names.insert(t.name).second) {
        return absl::InvalidArgumentError(
            absl::StrCat("module: '", t.name, "' names both a parameter and a buffer"));
      }
      out.emplace_back(absl::StrCat(prefix, t.name),
                       t.tensor.detach().to(at::kCPU, t.tensor.scalar_type(),
                                            /*non_blocking=*/false, /*copy=*/true));
    }
    return out;
  });
}

int64_t StateBytes(const torch::nn::Module& module) {
  int64_t bytes = 0;
  for (const ModuleTensor& t : ModuleTensors(module)) {
    bytes += static_cast<int64_t>(t.tensor.numel() * t.tensor.element_size());
  }
  return bytes;
}

absl::Status LoadStateTensors(torch::nn::Module& module, const NamedTensors& tensors,
                              absl::string_view prefix) {
  return GuardTorch("load module state", [&]() -> absl::Status {
    absl::flat_hash_map<absl::string_view, const at::Tensor*> given;
    for (const auto& [name, tensor] : tensors) {
      if (!absl::StartsWith(name, prefix)) continue;
      if (!given.emplace(absl::string_view(name).substr(prefix.size()), &tensor).second) {
        return absl::InvalidArgumentError(
            absl::StrCat("tensor '", name, "' appears twice in the checkpoint"));
      }
    }
    const std::vector<ModuleTensor> targets = ModuleTensors(module);
    absl::flat_hash_set<absl::string_view> wanted;
    std::vector<const at::Tensor*> sources;
    sources.reserve(targets.size());
    for (const ModuleTensor& target : targets) {
      wanted.insert(target.name);
      const std::string what =
          absl::StrCat(target.is_buffer ? "buffer '" : "parameter '", target.name, "'");
      const auto it = given.find(target.name);
      if (it == given.end()) {
        return absl::InvalidArgumentError(absl::StrCat(what, ": missing from the checkpoint"));
      }
      const at::Tensor& source = *it->second;
      if (!source.defined()) {
        return absl::InvalidArgumentError(absl::StrCat(what, ": undefined in the checkpoint"));
      }
      if (source.sizes() != target.tensor.sizes()) {
        return absl::InvalidArgumentError(
            absl::StrCat(what, ": shape ", ShapeString(source.sizes()), " in the checkpoint, ",
                         ShapeString(target.tensor.sizes()), " in the model"));
      }
      if (source.scalar_type() != target.tensor.scalar_type()) {
        return absl::InvalidArgumentError(
            absl::StrCat(what, ": dtype ", TypeText(source.scalar_type()), " in the checkpoint, ",
                         TypeText(target.tensor.scalar_type()), " in the model"));
      }
      sources.push_back(&source);
    }
    for (const auto& [name, tensor] : tensors) {
      if (!absl::StartsWith(name, prefix)) continue;
      const absl::string_view relative = absl::string_view(name).substr(prefix.size());
      if (!wanted.contains(relative)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "unexpected tensor '", name,
            "' in the checkpoint (the model has no parameter or buffer '", relative, "')"));
      }
    }
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < targets.size(); ++i) {
      at::Tensor destination = targets[i].tensor;
      destination.copy_(*sources[i]);
    }
    return absl::OkStatus();
  });
}

absl::string_view SamplingPrefix(const NamedTensors& tensors) {
  for (const auto& entry : tensors) {
    if (absl::StartsWith(entry.first, kEmaPrefix)) return kEmaPrefix;
  }
  return kModelPrefix;
}

}  // namespace wfm::model::checkpoint
