#include "model/nn/cpu_runtime.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include <ATen/Parallel.h>

#include "absl/strings/str_cat.h"
#include "model/nn/blas.h"

namespace wfm::model::nn {
namespace {

// ------------------------------------------------ OpenMP wait policy at exec

constexpr char kWaitPolicy[] = "OMP_WAIT_POLICY=passive";
constexpr int kMaxEnvironment = 8192;

bool StartsWith(const char* s, const char* prefix) {
  return std::strncmp(s, prefix, std::strlen(prefix)) == 0;
}

// Runs from the executable's .preinit_array: after the dynamic loader has
// mapped and relocated every library, before any of their initialisers
// (libgomp reads its environment in one). setenv() would not do here: libc's
// own initialiser resets the environment to the one given at exec, and runs
// before libgomp's. So, when neither variable is set, the process executes
// itself again with OMP_WAIT_POLICY=passive added; the second start finds it
// set and carries on. Only async-signal-safe calls, no allocation: libc is
// not initialised yet. If the exec fails (no /proc, a deleted binary), the
// process carries on with libgomp's default policy.
void ReexecWithPassiveWaitPolicy(int /*argc*/, char** argv, char** envp) {
  if (argv == nullptr || envp == nullptr) return;
  int n = 0;
  for (; envp[n] != nullptr; ++n) {
    if (StartsWith(envp[n], "OMP_WAIT_POLICY=") || StartsWith(envp[n], "GOMP_SPINCOUNT=")) return;
    if (n >= kMaxEnvironment) return;
  }
  static char* environment[kMaxEnvironment + 2];
  for (int i = 0; i < n; ++i) environment[i] = envp[i];
  environment[n] = const_cast<char*>(kWaitPolicy);
  environment[n + 1] = nullptr;
  execve("/proc/self/exe", argv, environment);
}

__attribute__((section(".preinit_array"), used)) void (*const kPreinitWaitPolicy)(int, char**,
                                                                                  char**) =
    &ReexecWithPassiveWaitPolicy;

// ------------------------------------------------------------ settings

std::mutex& InfoMutex() {
  static std::mutex mu;
  return mu;
}

CpuRuntimeInfo& Info() {
  static CpuRuntimeInfo info = [] {
    CpuRuntimeInfo i;
    i.threads = at::get_num_threads();
    i.default_threads = false;
    i.topology = cpu::ReadCpuTopology();
    const char* policy = std::getenv("OMP_WAIT_POLICY");
    i.omp_wait_policy = policy == nullptr ? "unset" : policy;
    if (policy == nullptr && std::getenv("GOMP_SPINCOUNT") != nullptr) {
      i.omp_wait_policy = absl::StrCat("GOMP_SPINCOUNT=", std::getenv("GOMP_SPINCOUNT"));
    }
    i.blas_threads = 0;
    return i;
  }();
  return info;
}

}  // namespace

absl::Status ConfigureCpuRuntime(const CpuRuntimeOptions& options) {
  if (options.threads < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "threads (", options.threads, ") must be at least 0 (0 = one per physical core)"));
  }
  std::lock_guard<std::mutex> lock(InfoMutex());
  CpuRuntimeInfo& info = Info();
  info.default_threads = options.threads == 0;
  info.threads = options.threads > 0 ? options.threads : cpu::DefaultThreads(info.topology);
  at::set_num_threads(info.threads);
  info.blas_threads = blas::SetBlasThreads(1) ? 1 : 0;
#if defined(__GLIBC__)
  if (options.retain_freed_memory) {
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
  }
#endif
  return absl::OkStatus();
}

CpuRuntimeInfo CurrentCpuRuntime() {
  std::lock_guard<std::mutex> lock(InfoMutex());
  return Info();
}

std::string DescribeCpuRuntime(const CpuRuntimeInfo& info) {
  return absl::StrCat(info.threads, info.threads == 1 ? " thread" : " threads",
                      info.default_threads ? " (default: " : " (of ",
                      cpu::DescribeTopology(info.topology), "), OpenMP wait policy ",
                      info.omp_wait_policy,
                      info.blas_threads == 1 ? ", BLAS 1 thread" : ", BLAS threads not set");
}

}  // namespace wfm::model::nn
