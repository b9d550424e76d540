#include "model/checkpoint/adam_state.h"

#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <torch/utils.h>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "model/common/status.h"
#include "model/common/tensor_checks.h"
#include "model/common/torch_status.h"

namespace wfm::model::checkpoint {
namespace {

using torch::optim::AdamOptions;
using torch::optim::AdamParamState;

// The key LibTorch's Adam uses for a parameter's state.
std::string StateKey(const at::Tensor& parameter) {
  return c10::guts::to_string(parameter.unsafeGetTensorImpl());
}

absl::flat_hash_map<const c10::TensorImpl*, std::string> ParameterNames(
    const torch::nn::Module& module) {
  absl::flat_hash_map<const c10::TensorImpl*, std::string> names;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) {
    if (item.value().defined()) names.emplace(item.value().unsafeGetTensorImpl(), item.key());
  }
  return names;
}

absl::StatusOr<std::string> NameOf(
    const absl::flat_hash_map<const c10::TensorImpl*, std::string>& names,
    const at::Tensor& parameter, size_t group, size_t index) {
  const auto it = names.find(parameter.unsafeGetTensorImpl());
  if (it == names.end()) {
    return absl::FailedPreconditionError(
        absl::StrCat("optimizer parameter #", index, " of group ", group, " (shape ",
                     ShapeString(parameter.sizes()), ") is not a parameter of the module"));
  }
  return it->second;
}

at::Tensor CpuCopy(const at::Tensor& t) {
  return t.detach().to(at::kCPU, t.scalar_type(), /*non_blocking=*/false, /*copy=*/true);
}

at::Tensor Scalar(double v) { return at::scalar_tensor(v, at::TensorOptions().dtype(at::kDouble)); }

// The tensors under a prefix, by name after the prefix, with a record of the
// ones used.
class Lookup {
 public:
  static absl::StatusOr<Lookup> Make(const NamedTensors& tensors, absl::string_view prefix) {
    Lookup lookup;
    lookup.prefix_ = std::string(prefix);
    for (const auto& [name, tensor] : tensors) {
      if (!absl::StartsWith(name, prefix)) continue;
      if (!lookup.tensors_.emplace(absl::string_view(name).substr(prefix.size()), &tensor).second) {
        return absl::InvalidArgumentError(
            absl::StrCat("tensor '", name, "' appears twice in the checkpoint"));
      }
      lookup.order_.push_back(absl::string_view(name).substr(prefix.size()));
    }
    return lookup;
  }

  // The tensor named prefix + key, or nullptr.
  const at::Tensor* Find(const std::string& key) {
    const auto it = tensors_.find(key);
    if (it == tensors_.end()) return nullptr;
    used_.insert(it->first);
    return it->second;
  }

  // A defined 0-dim (or one-element) tensor of `dtype` named prefix + key.
  absl::StatusOr<at::Tensor> Required(const std::string& key, at::ScalarType dtype, int64_t numel) {
    const at::Tensor* t = Find(key);
    if (t == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("optimizer state: '", prefix_, key, "' missing from the checkpoint"));
    }
    if (!t->defined() || t->scalar_type() != dtype || t->numel() != numel) {
      return absl::InvalidArgumentError(absl::StrCat("optimizer state: '", prefix_, key,
                                                     "' must hold ", numel, " ", DtypeName(dtype),
                                                     t->defined() ? "" : " (it is undefined)"));
    }
    return t->to(at::kCPU).contiguous();
  }

  absl::Status CheckAllUsed() const {
    for (const absl::string_view key : order_) {
      if (!used_.contains(key)) {
        return absl::InvalidArgumentError(
            absl::StrCat("unexpected tensor '", prefix_, key,
                         "' in the checkpoint (not a part of this optimizer's state)"));
      }
    }
    return absl::OkStatus();
  }

 private:
  std::string prefix_;
  absl::flat_hash_map<absl::string_view, const at::Tensor*> tensors_;
  std::vector<absl::string_view> order_;
  absl::flat_hash_set<absl::string_view> used_;
};

struct GroupOptions {
  double lr, beta1, beta2, eps, weight_decay;
  bool amsgrad;
};

// A state tensor shaped and typed like `parameter`, on its device.
absl::StatusOr<at::Tensor> StateLike(const at::Tensor& source, const at::Tensor& parameter,
                                     absl::string_view what, absl::string_view field) {
  if (!source.defined()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", field, " is undefined"));
  }
  if (source.sizes() != parameter.sizes()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": ", field, " has shape ", ShapeString(source.sizes()),
                     " in the checkpoint, ", ShapeString(parameter.sizes()), " in the model"));
  }
  if (source.scalar_type() != parameter.scalar_type()) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": ", field, " has dtype ", c10::toString(source.scalar_type()),
        " in the checkpoint, ", c10::toString(parameter.scalar_type()), " in the model"));
  }
  torch::NoGradGuard no_grad;
  return at::empty_like(parameter.detach(), at::MemoryFormat::Preserve).copy_(source);
}

absl::StatusOr<NamedTensors> AdamStateTensorsImpl(const torch::optim::Adam& adam,
                                                  const torch::nn::Module& module,
                                                  absl::string_view prefix) {
  const auto names = ParameterNames(module);
  NamedTensors out;
  const auto& groups = adam.param_groups();
  for (size_t g = 0; g < groups.size(); ++g) {
    const auto& options = static_cast<const AdamOptions&>(groups[g].options());
    const std::string group = absl::StrCat(prefix, "group.", g, ".");
    out.emplace_back(group + "lr", Scalar(options.lr()));
    out.emplace_back(group + "betas", at::tensor(std::vector<double>{std::get<0>(options.betas()),
                                                                     std::get<1>(options.betas())},
                                                 at::TensorOptions().dtype(at::kDouble)));
    out.emplace_back(group + "eps", Scalar(options.eps()));
    out.emplace_back(group + "weight_decay", Scalar(options.weight_decay()));
    out.emplace_back(group + "amsgrad",
                     at::scalar_tensor(options.amsgrad(), at::TensorOptions().dtype(at::kBool)));
    out.emplace_back(group + "num_params",
                     at::scalar_tensor(static_cast<int64_t>(groups[g].params().size()),
                                       at::TensorOptions().dtype(at::kLong)));
    const auto& params = groups[g].params();
    for (size_t i = 0; i < params.size(); ++i) {
      WFM_ASSIGN_OR_RETURN(const std::string name, NameOf(names, params[i], g, i));
      const auto it = adam.state().find(StateKey(params[i]));
      if (it == adam.state().end()) continue;  // never updated
      const auto& state = static_cast<const AdamParamState&>(*it->second);
      const std::string base = absl::StrCat(prefix, "state.", name, ".");
      out.emplace_back(base + "step",
                       at::scalar_tensor(state.step(), at::TensorOptions().dtype(at::kLong)));
      out.emplace_back(base + "exp_avg", CpuCopy(state.exp_avg()));
      out.emplace_back(base + "exp_avg_sq", CpuCopy(state.exp_avg_sq()));
      if (state.max_exp_avg_sq().defined()) {
        out.emplace_back(base + "max_exp_avg_sq", CpuCopy(state.max_exp_avg_sq()));
      }
    }
  }
  return out;
}

absl::Status LoadAdamStateImpl(torch::optim::Adam& adam, const torch::nn::Module& module,
                               const NamedTensors& tensors, absl::string_view prefix) {
  const auto names = ParameterNames(module);
  WFM_ASSIGN_OR_RETURN(Lookup lookup, Lookup::Make(tensors, prefix));
  auto& groups = adam.param_groups();
  std::vector<GroupOptions> new_options;
  std::vector<std::pair<std::string, std::unique_ptr<AdamParamState>>> new_states;
  for (size_t g = 0; g < groups.size(); ++g) {
    const std::string group = absl::StrCat("group.", g, ".");
    GroupOptions o;
    WFM_ASSIGN_OR_RETURN(const at::Tensor lr, lookup.Required(group + "lr", at::kDouble, 1));
    WFM_ASSIGN_OR_RETURN(const at::Tensor betas, lookup.Required(group + "betas", at::kDouble, 2));
    WFM_ASSIGN_OR_RETURN(const at::Tensor eps, lookup.Required(group + "eps", at::kDouble, 1));
    WFM_ASSIGN_OR_RETURN(const at::Tensor weight_decay,
                         lookup.Required(group + "weight_decay", at::kDouble, 1));
    WFM_ASSIGN_OR_RETURN(const at::Tensor amsgrad,
                         lookup.Required(group + "amsgrad", at::kBool, 1));
    WFM_ASSIGN_OR_RETURN(const at::Tensor num_params,
                         lookup.Required(group + "num_params", at::kLong, 1));
    o.lr = lr.item<double>();
    o.beta1 = betas.data_ptr<double>()[0];
    o.beta2 = betas.data_ptr<double>()[1];
    o.eps = eps.item<double>();
    o.weight_decay = weight_decay.item<double>();
    o.amsgrad = amsgrad.item<bool>();
    const auto& params = groups[g].params();
    if (num_params.item<int64_t>() != static_cast<int64_t>(params.size())) {
      return absl::InvalidArgumentError(
          absl::StrCat("optimizer group ", g, ": ", num_params.item<int64_t>(),
                       " parameters in the checkpoint, ", params.size(), " in the optimizer"));
    }
    // The same checks as AdamOptions' constructor, so a restored optimizer steps.
    if (!(o.lr >= 0) || !(o.eps >= 0) || !(o.weight_decay >= 0) || !(o.beta1 >= 0) ||
        !(o.beta1 < 1) || !(o.beta2 >= 0) || !(o.beta2 < 1)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "optimizer group ", g, ": invalid options in the checkpoint (lr ", o.lr, ", betas (",
          o.beta1, ", ", o.beta2, "), eps ", o.eps, ", weight_decay ", o.weight_decay, ")"));
    }
    new_options.push_back(o);

    for (size_t i = 0; i < params.size(); ++i) {
      const at::Tensor& p = params[i];
      WFM_ASSIGN_OR_RETURN(const std::string name, NameOf(names, p, g, i));
      const std::string base = absl::StrCat("state.", name, ".");
      const std::string what = absl::StrCat("optimizer state of parameter '", name, "'");
      const at::Tensor* step = lookup.Find(base + "step");
      const at::Tensor* exp_avg = lookup.Find(base + "exp_avg");
      const at::Tensor* exp_avg_sq = lookup.Find(base + "exp_avg_sq");
      const at::Tensor* max_exp_avg_sq = lookup.Find(base + "max_exp_avg_sq");
      if (step == nullptr && exp_avg == nullptr && exp_avg_sq == nullptr &&
          max_exp_avg_sq == nullptr) {
        continue;  // never updated
      }
      for (const auto& [tensor, field] : {std::pair{step, "step"}, std::pair{exp_avg, "exp_avg"},
                                          std::pair{exp_avg_sq, "exp_avg_sq"}}) {
        if (tensor == nullptr) {
          return absl::InvalidArgumentError(absl::StrCat(what, ": incomplete, '", prefix, base,
                                                         field, "' missing from the checkpoint"));
        }
      }
      if (o.amsgrad && max_exp_avg_sq == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat(what, ": amsgrad is on but '", prefix, base,
                                                       "max_exp_avg_sq' is missing"));
      }
      if (!step->defined() || step->scalar_type() != at::kLong || step->numel() != 1) {
        return absl::InvalidArgumentError(absl::StrCat(what, ": step must be one int64"));
      }
      const int64_t steps = step->item<int64_t>();
      if (steps < 0) {
        return absl::InvalidArgumentError(absl::StrCat(what, ": step ", steps, " is negative"));
      }
      auto state = std::make_unique<AdamParamState>();
      state->step(steps);
      WFM_ASSIGN_OR_RETURN(at::Tensor avg, StateLike(*exp_avg, p, what, "exp_avg"));
      WFM_ASSIGN_OR_RETURN(at::Tensor avg_sq, StateLike(*exp_avg_sq, p, what, "exp_avg_sq"));
      state->exp_avg(std::move(avg));
      state->exp_avg_sq(std::move(avg_sq));
      if (max_exp_avg_sq != nullptr) {
        WFM_ASSIGN_OR_RETURN(at::Tensor max_sq,
                             StateLike(*max_exp_avg_sq, p, what, "max_exp_avg_sq"));
        state->max_exp_avg_sq(std::move(max_sq));
      }
      new_states.emplace_back(StateKey(p), std::move(state));
    }
  }
  WFM_RETURN_IF_ERROR(lookup.CheckAllUsed());

  // Everything checked: commit.
  for (size_t g = 0; g < groups.size(); ++g) {
    const GroupOptions& o = new_options[g];
    static_cast<AdamOptions&>(groups[g].options())
        .lr(o.lr)
        .betas(std::make_tuple(o.beta1, o.beta2))
        .eps(o.eps)
        .weight_decay(o.weight_decay)
        .amsgrad(o.amsgrad);
  }
  adam.state().clear();
  for (auto& [key, state] : new_states) adam.state()[key] = std::move(state);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<NamedTensors> AdamStateTensors(const torch::optim::Adam& adam,
                                              const torch::nn::Module& module,
                                              absl::string_view prefix) {
  return GuardTorch("Adam state", [&] { return AdamStateTensorsImpl(adam, module, prefix); });
}

absl::Status LoadAdamState(torch::optim::Adam& adam, const torch::nn::Module& module,
                           const NamedTensors& tensors, absl::string_view prefix) {
  return GuardTorch("load Adam state",
                    [&] { return LoadAdamStateImpl(adam, module, tensors, prefix); });
}

}  // namespace wfm::model::checkpoint
