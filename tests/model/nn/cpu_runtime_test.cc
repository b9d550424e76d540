#include "model/nn/cpu_runtime.h"

#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <map>
#include <string>

#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include "absl/time/time.h"
#include "model/common/cpu_topology.h"
#include "tests/testing/process.h"

namespace wfm::model::nn {
namespace {

// Restores ATen's thread count when a test ends.
class ThreadCount {
 public:
  ThreadCount() : saved_(at::get_num_threads()) {}
  ~ThreadCount() { at::set_num_threads(saved_); }

 private:
  int saved_;
};

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? "unset" : value;
}

// Run as a child by WaitPolicy* below (WFM_CPU_RUNTIME_PROBE set): prints
// what the process started with. Without the variable it only checks that
// this process has the policy its environment says.
TEST(CpuRuntimeProbe, PrintsTheStartEnvironment) {
  const CpuRuntimeInfo info = CurrentCpuRuntime();
  if (std::getenv("WFM_CPU_RUNTIME_PROBE") == nullptr) {
    if (std::getenv("GOMP_SPINCOUNT") == nullptr) {
      EXPECT_EQ(info.omp_wait_policy, Env("OMP_WAIT_POLICY"));
      EXPECT_NE(info.omp_wait_policy, "unset");  // set by the user or at start-up
    }
    return;
  }
  std::cout << "probe pid=" << getpid() << " policy=" << Env("OMP_WAIT_POLICY")
            << " info=" << info.omp_wait_policy << " arg=ok" << std::endl;
}

// Runs this test binary's probe with `env` added and `unset` removed; returns
// its probe line (from "pid=" on).
std::string Probe(const std::map<std::string, std::string>& env,
                  const std::vector<std::string>& unset, pid_t* pid) {
  std::map<std::string, std::string> all = env;
  all["WFM_CPU_RUNTIME_PROBE"] = "1";
  ::wfm::testing::ProcessOptions options;
  options.args = {"/proc/self/exe", "--gtest_filter=CpuRuntimeProbe.PrintsTheStartEnvironment"};
  char self[4096];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n > 0) options.args[0] = std::string(self, n);
  options.env = all;
  options.unset_env = unset;
  ::wfm::testing::ChildProcess child(options);
  EXPECT_TRUE(child.started()) << child.error();
  const std::optional<std::string> line = child.WaitForOutput("probe pid=", absl::Seconds(60));
  EXPECT_EQ(child.Wait(absl::Seconds(60)), 0) << child.Output();
  *pid = child.pid();
  return line.value_or("(no probe line) " + child.Output());
}

TEST(CpuRuntimeTest, WaitPolicyIsPassiveFromTheStartUnlessTheEnvironmentSetsOne) {
  pid_t pid = 0;
  // Neither variable: the process re-executed itself (same pid, same
  // arguments) with the passive policy before libgomp read its environment.
  std::string line = Probe({}, {"OMP_WAIT_POLICY", "GOMP_SPINCOUNT"}, &pid);
  EXPECT_EQ(line, "probe pid=" + std::to_string(pid) + " policy=passive info=passive" +
                      " arg=ok");
  // A policy of the user's is kept.
  line = Probe({{"OMP_WAIT_POLICY", "active"}}, {"GOMP_SPINCOUNT"}, &pid);
  EXPECT_EQ(line, "probe pid=" + std::to_string(pid) + " policy=active info=active" +
                      " arg=ok");
  // So is a spin count of the user's.
  line = Probe({{"GOMP_SPINCOUNT", "1000"}}, {"OMP_WAIT_POLICY"}, &pid);
  EXPECT_EQ(line, "probe pid=" + std::to_string(pid) +
                      " policy=unset info=GOMP_SPINCOUNT=1000 arg=ok");
}

TEST(CpuRuntimeTest, ThreadsZeroIsTheDefaultPolicy) {
  ThreadCount restore;
  CpuRuntimeOptions options;
  options.threads = 0;
  ASSERT_TRUE(ConfigureCpuRuntime(options).ok());
  const CpuRuntimeInfo info = CurrentCpuRuntime();
  EXPECT_TRUE(info.default_threads);
  EXPECT_EQ(info.threads, cpu::DefaultThreads(info.topology));
  EXPECT_EQ(at::get_num_threads(), info.threads);
  EXPECT_EQ(info.blas_threads, 1);  // OpenBLAS, on the calling thread
  const std::string text = DescribeCpuRuntime(info);
  EXPECT_NE(text.find("(default: "), std::string::npos) << text;
  EXPECT_NE(text.find("OpenMP wait policy " + info.omp_wait_policy), std::string::npos) << text;
  EXPECT_NE(text.find("BLAS 1 thread"), std::string::npos) << text;
}

TEST(CpuRuntimeTest, ExplicitThreadsAndBadValues) {
  ThreadCount restore;
  CpuRuntimeOptions options;
  options.threads = 3;
  ASSERT_TRUE(ConfigureCpuRuntime(options).ok());
  EXPECT_EQ(CurrentCpuRuntime().threads, 3);
  EXPECT_FALSE(CurrentCpuRuntime().default_threads);
  EXPECT_EQ(at::get_num_threads(), 3);
  EXPECT_EQ(DescribeCpuRuntime(CurrentCpuRuntime()).rfind("3 threads (of ", 0), 0u);
  options.threads = -1;
  const absl::Status bad = ConfigureCpuRuntime(options);
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.message().find("threads (-1) must be at least 0"), absl::string_view::npos)
      << bad;
  EXPECT_EQ(CurrentCpuRuntime().threads, 3);  // unchanged
}

}  // namespace
}  // namespace wfm::model::nn
