#include "model/distributed/data_parallel.h"

#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <utility>

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "model/common/status.h"
#include "model/common/torch_status.h"

namespace wfm::model::distributed {
namespace {

void IgnoreSigpipe() {
  struct sigaction current;
  if (::sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    sigemptyset(&ignore.sa_mask);
    ::sigaction(SIGPIPE, &ignore, nullptr);
  }
}

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

bool IsLoopback(const std::string& host) {
  return host == "localhost" || absl::StartsWith(host, "127.") || host == "::1";
}

absl::Status EnvInt(const char* name, int64_t* out) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return absl::OkStatus();
  if (!absl::SimpleAtoi(value, out)) {
    return absl::InvalidArgumentError(
        absl::StrCat("environment variable ", name, "=", value, ": not an integer"));
  }
  return absl::OkStatus();
}

void EnvString(const char* name, std::string* out) {
  const char* value = std::getenv(name);
  if (value != nullptr && *value != '\0') *out = value;
}

std::chrono::milliseconds Millis(absl::Duration d) {
  return std::chrono::milliseconds(absl::ToInt64Milliseconds(d));
}

std::string Seconds(absl::Duration d) { return absl::StrCat(absl::ToDoubleSeconds(d), " s"); }

// Indices of `tensors` grouped by dtype, in a fixed (dtype, index) order that
// is the same on every rank.
std::map<at::ScalarType, std::vector<size_t>> ByDtype(const std::vector<at::Tensor>& tensors) {
  std::map<at::ScalarType, std::vector<size_t>> buckets;
  for (size_t i = 0; i < tensors.size(); ++i) buckets[tensors[i].scalar_type()].push_back(i);
  return buckets;
}

uint64_t Mix(uint64_t h, uint64_t w) {
  h ^= w + 0x9E3779B97F4A7C15ULL + (h << 6) + (h >> 2);
  h *= 0xBF58476D1CE4E5B9ULL;
  return h ^ (h >> 31);
}

}  // namespace

struct DataParallel::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;

  // Waits for a collective; an exception (peer gone, Gloo timeout) passes
  // through to Run().
  void Wait(const c10::intrusive_ptr<c10d::Work>& work, std::chrono::milliseconds timeout) {
    if (!work->wait(timeout)) {
      throw std::runtime_error(absl::StrCat("no reply within ", timeout.count(), " ms"));
    }
  }
};

absl::Status ApplyEnvironment(DistributedOptions* options) {
  WFM_RETURN_IF_ERROR(EnvInt("WORLD_SIZE", &options->world_size));
  WFM_RETURN_IF_ERROR(EnvInt("RANK", &options->rank));
  EnvString("MASTER_ADDR", &options->master_addr);
  int64_t port = options->master_port;
  WFM_RETURN_IF_ERROR(EnvInt("MASTER_PORT", &port));
  options->master_port = static_cast<int>(port);
  EnvString("GLOO_SOCKET_IFNAME", &options->gloo_interface);
  return absl::OkStatus();
}

absl::Status ValidateDistributedOptions(const DistributedOptions& o) {
  if (o.world_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat("world_size: must be >= 1, got ", o.world_size));
  }
  if (o.rank < 0 || o.rank >= o.world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank: must be in [0, world_size = ", o.world_size, "), got ", o.rank));
  }
  if (o.timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("timeout: must be positive");
  }
  if (o.world_size > 1) {
    if (o.master_addr.empty()) return absl::InvalidArgumentError("master_addr: must not be empty");
    if (o.master_port < 1 || o.master_port > 65535) {
      return absl::InvalidArgumentError(
          absl::StrCat("master_port: must be in [1, 65535], got ", o.master_port));
    }
  }
  return absl::OkStatus();
}

DataParallel::DataParallel(DistributedOptions options, std::unique_ptr<Impl> impl)
    : options_(std::move(options)), impl_(std::move(impl)) {}

DataParallel::~DataParallel() = default;

absl::StatusOr<std::unique_ptr<DataParallel>> DataParallel::Connect(
    const DistributedOptions& o) {
  WFM_RETURN_IF_ERROR(ValidateDistributedOptions(o));
  if (o.world_size == 1) return std::unique_ptr<DataParallel>(new DataParallel(o, nullptr));
  // Gloo writes to its peers' sockets: a peer that died must surface as an
  // error of the collective, not as SIGPIPE killing this process.
  IgnoreSigpipe();
  auto impl = std::make_unique<Impl>();
  const std::string store_address = absl::StrCat(o.master_addr, ":", o.master_port);
  try {
    c10d::TCPStoreOptions store_options;
    store_options.port = static_cast<uint16_t>(o.master_port);
    store_options.isServer = o.rank == 0;
    store_options.numWorkers = static_cast<size_t>(o.world_size);
    store_options.waitWorkers = true;
    store_options.timeout = Millis(o.timeout);
    impl->store = c10::make_intrusive<c10d::TCPStore>(o.master_addr, store_options);
  } catch (...) {
    const absl::Status s = model::StatusFromCurrentException("rendezvous");
    return absl::UnavailableError(absl::StrCat(
        s.message(), " (rank ", o.rank, " of ", o.world_size, ", store ", store_address,
        o.rank == 0 ? ", hosted here: not every rank connected" : ": rank 0 not reachable",
        " within the ", Seconds(o.timeout), " timeout)"));
  }
  try {
    auto group_options = c10d::ProcessGroupGloo::Options::create(Millis(o.timeout));
    if (!o.gloo_interface.empty()) {
      group_options->devices.push_back(
          c10d::ProcessGroupGloo::createDeviceForInterface(o.gloo_interface));
    } else if (!o.gloo_hostname.empty()) {
      group_options->devices.push_back(
          c10d::ProcessGroupGloo::createDeviceForHostname(o.gloo_hostname));
    } else if (IsLoopback(o.master_addr)) {
      group_options->devices.push_back(
          c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    } else {
      group_options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    // One collective at a time: one worker thread is enough.
    group_options->threads = 1;
    impl->group = c10::make_intrusive<c10d::ProcessGroupGloo>(
        impl->store, static_cast<int>(o.rank), static_cast<int>(o.world_size), group_options);
  } catch (...) {
    const absl::Status s = model::StatusFromCurrentException("connecting the Gloo process group");
    return absl::UnavailableError(absl::StrCat(
        s.message(), " (rank ", o.rank, " of ", o.world_size, ", store ", store_address,
        ": not every rank connected within the ", Seconds(o.timeout), " timeout)"));
  }
  return std::unique_ptr<DataParallel>(new DataParallel(o, std::move(impl)));
}

absl::Status DataParallel::Run(absl::string_view what, const std::function<void()>& fn) {
  if (impl_ == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(what, ": the process group is closed"));
  }
  try {
    fn();
    return absl::OkStatus();
  } catch (...) {
    const absl::Status s = model::StatusFromCurrentException(what);
    // A failed collective leaves the group in an unknown state: drop it, so
    // later calls fail at once instead of waiting for peers again.
    impl_->group.reset();
    impl_.reset();
    return absl::UnavailableError(absl::StrCat(
        "distributed: ", s.message(), " (rank ", options_.rank, " of ", options_.world_size,
        "): another rank died or did not respond within the ", Seconds(options_.timeout),
        " timeout"));
  }
}

absl::Status DataParallel::Broadcast(const std::vector<at::Tensor>& tensors) {
  if (options_.world_size == 1) return absl::OkStatus();
  for (const auto& [dtype, ids] : ByDtype(tensors)) {
    at::NoGradGuard no_grad;
    std::vector<at::Tensor> parts;
    parts.reserve(ids.size());
    for (size_t i : ids) parts.push_back(tensors[i].detach().reshape({-1}));
    std::vector<at::Tensor> io{at::cat(parts)};
    WFM_RETURN_IF_ERROR(Run("broadcast of the parameters from rank 0", [&] {
      c10d::BroadcastOptions b;
      b.rootRank = 0;
      b.timeout = Millis(options_.timeout);
      impl_->Wait(impl_->group->broadcast(io, b), Millis(options_.timeout));
    }));
    int64_t offset = 0;
    for (size_t i : ids) {
      const int64_t n = tensors[i].numel();
      tensors[i].detach().copy_(io[0].narrow(0, offset, n).view(tensors[i].sizes()));
      offset += n;
    }
  }
  return absl::OkStatus();
}

absl::Status DataParallel::AverageGradients(const std::vector<at::Tensor>& params,
                                            std::vector<at::Tensor>& grads) {
  if (params.size() != grads.size()) {
    return absl::InvalidArgumentError(absl::StrCat("grads: ", grads.size(), " gradients for ",
                                                   params.size(), " parameters"));
  }
  for (size_t i = 0; i < params.size(); ++i) {
    if (!params[i].is_floating_point()) {
      return absl::InvalidArgumentError(absl::StrCat("params[", i, "]: not floating point"));
    }
    if (grads[i].defined() && !grads[i].sizes().equals(params[i].sizes())) {
      return absl::InvalidArgumentError(absl::StrCat("grads[", i, "]: shape differs from its parameter's"));
    }
  }
  const auto t0 = Clock::now();
  ++gradient_stats_.calls;
  if (options_.world_size == 1) return absl::OkStatus();
  at::NoGradGuard no_grad;
  for (const auto& [dtype, ids] : ByDtype(params)) {
    // [every gradient flattened (zeros where undefined) | one "defined" flag
    //  per gradient]: one all-reduce carries both.
    std::vector<at::Tensor> parts;
    parts.reserve(ids.size() + 1);
    std::vector<double> defined(ids.size(), 0.0);
    for (size_t k = 0; k < ids.size(); ++k) {
      const at::Tensor& g = grads[ids[k]];
      if (g.defined()) {
        parts.push_back(g.reshape({-1}).to(dtype));
        defined[k] = 1.0;
      } else {
        parts.push_back(at::zeros({params[ids[k]].numel()}, params[ids[k]].options()));
      }
    }
    parts.push_back(
        at::tensor(defined, at::TensorOptions().dtype(at::kDouble)).to(dtype));
    std::vector<at::Tensor> io{at::cat(parts)};
    gradient_stats_.bytes += io[0].nbytes();
    WFM_RETURN_IF_ERROR(Run("all-reduce of the gradients", [&] {
      c10d::AllreduceOptions a;
      a.reduceOp = c10d::ReduceOp::SUM;
      a.timeout = Millis(options_.timeout);
      impl_->Wait(impl_->group->allreduce(io, a), Millis(options_.timeout));
    }));
    at::Tensor sum = io[0];
    sum.div_(static_cast<double>(options_.world_size));
    const int64_t flags_at = sum.numel() - static_cast<int64_t>(ids.size());
    const at::Tensor flags = sum.narrow(0, flags_at, static_cast<int64_t>(ids.size()))
                                 .to(at::kDouble)
                                 .contiguous();
    const double* any = flags.data_ptr<double>();
    int64_t offset = 0;
    for (size_t k = 0; k < ids.size(); ++k) {
      const size_t i = ids[k];
      const int64_t n = params[i].numel();
      const at::Tensor mean = sum.narrow(0, offset, n).view(params[i].sizes());
      offset += n;
      if (grads[i].defined()) {
        grads[i].copy_(mean);
      } else if (any[k] > 0) {
        // Some rank used this parameter, this one did not.
        at::Tensor p = params[i];
        p.mutable_grad() = mean.clone();
        grads[i] = p.grad();
      }
    }
  }
  gradient_stats_.seconds += Since(t0);
  return absl::OkStatus();
}

std::function<absl::Status(std::vector<at::Tensor>&)> DataParallel::GradientReducer(
    std::vector<at::Tensor> params) {
  return [this, params = std::move(params)](std::vector<at::Tensor>& grads) {
    return AverageGradients(params, grads);
  };
}

absl::StatusOr<double> DataParallel::Mean(double value, absl::string_view what) {
  if (options_.world_size == 1) return value;
  std::vector<at::Tensor> io{at::full({1}, value, at::TensorOptions().dtype(at::kDouble))};
  WFM_RETURN_IF_ERROR(Run(absl::StrCat("all-reduce of ", what), [&] {
    c10d::AllreduceOptions a;
    a.reduceOp = c10d::ReduceOp::SUM;
    a.timeout = Millis(options_.timeout);
    impl_->Wait(impl_->group->allreduce(io, a), Millis(options_.timeout));
  }));
  return io[0].item<double>() / static_cast<double>(options_.world_size);
}

absl::StatusOr<std::vector<int64_t>> DataParallel::AllGather(int64_t value,
                                                             absl::string_view what) {
  if (options_.world_size == 1) return std::vector<int64_t>{value};
  std::vector<at::Tensor> input{at::full({1}, value, at::TensorOptions().dtype(at::kLong))};
  std::vector<std::vector<at::Tensor>> output(1);
  for (int64_t r = 0; r < options_.world_size; ++r) {
    output[0].push_back(at::empty({1}, at::TensorOptions().dtype(at::kLong)));
  }
  WFM_RETURN_IF_ERROR(Run(absl::StrCat("all-gather of ", what), [&] {
    c10d::AllgatherOptions a;
    a.timeout = Millis(options_.timeout);
    impl_->Wait(impl_->group->allgather(output, input, a), Millis(options_.timeout));
  }));
  std::vector<int64_t> values;
  values.reserve(output[0].size());
  for (const at::Tensor& t : output[0]) values.push_back(t.item<int64_t>());
  return values;
}

absl::Status DataParallel::Barrier(absl::string_view what) {
  if (options_.world_size == 1) return absl::OkStatus();
  return Run(absl::StrCat("barrier (", what, ")"), [&] {
    c10d::BarrierOptions b;
    b.timeout = Millis(options_.timeout);
    impl_->Wait(impl_->group->barrier(b), Millis(options_.timeout));
  });
}

absl::Status DataParallel::Agree(const absl::Status& local, absl::string_view what) {
  if (options_.world_size == 1) return local;
  const std::string prefix = absl::StrCat("wfm/agree/", agree_round_++, "/");
  if (!local.ok()) {
    // Best effort: the message for the other ranks.
    (void)Run(absl::StrCat("publishing the failure of ", what), [&] {
      const std::string text(local.message());
      impl_->store->set(absl::StrCat(prefix, options_.rank),
                        std::vector<uint8_t>(text.begin(), text.end()));
    });
    if (impl_ == nullptr) return local;
  }
  absl::StatusOr<std::vector<int64_t>> codes =
      AllGather(static_cast<int64_t>(local.code()), absl::StrCat("the status of ", what));
  if (!codes.ok()) return local.ok() ? codes.status() : local;
  // The first failing rank's status, on every rank.
  for (int64_t r = 0; r < options_.world_size; ++r) {
    const auto code = static_cast<absl::StatusCode>((*codes)[r]);
    if (code == absl::StatusCode::kOk) continue;
    std::string message(local.message());
    if (r != options_.rank) {
      message = "(message unavailable)";
      (void)Run(absl::StrCat("reading the failure of ", what), [&] {
        const std::vector<uint8_t> bytes = impl_->store->get(absl::StrCat(prefix, r));
        message.assign(bytes.begin(), bytes.end());
      });
    }
    // Every rank, the failing ones included, waits here: rank 0 hosts the
    // store and must keep it up until every rank has read the message.
    if (impl_ != nullptr) (void)Barrier(what);
    return absl::Status(code, absl::StrCat("rank ", r, ": ", message));
  }
  return absl::OkStatus();
}

uint64_t TensorDigest(const std::vector<at::Tensor>& tensors) {
  uint64_t h = 0x243F6A8885A308D3ULL;
  for (const at::Tensor& tensor : tensors) {
    const at::Tensor t = tensor.detach().contiguous();
    h = Mix(h, static_cast<uint64_t>(t.scalar_type()));
    h = Mix(h, static_cast<uint64_t>(t.dim()));
    for (int64_t s : t.sizes()) h = Mix(h, static_cast<uint64_t>(s));
    const auto* bytes = static_cast<const unsigned char*>(t.data_ptr());
    const size_t n = t.nbytes();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      uint64_t w;
      std::memcpy(&w, bytes + i, 8);
      h = Mix(h, w);
    }
    if (i < n) {
      uint64_t tail = 0;
      std::memcpy(&tail, bytes + i, n - i);
      h = Mix(h, tail ^ (static_cast<uint64_t>(n - i) << 56));
    }
  }
  return h;
}

}  // namespace wfm::model::distributed
