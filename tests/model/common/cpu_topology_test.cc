#include "model/common/cpu_topology.h"

#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/testing/temp_dir.h"

namespace wfm::model::cpu {
namespace {

using ::wfm::testing::TempDir;

// Writes `text` to root/relative, making the folders on the way.
void Put(const TempDir& root, const std::string& relative, const std::string& text) {
  const std::filesystem::path path = std::filesystem::path(root.path()) / relative;
  std::filesystem::create_directories(path.parent_path());
  ASSERT_TRUE(::wfm::testing::WriteFile(path.string(), text)) << path;
}

CpuTopologyPaths PathsIn(const TempDir& root) {
  CpuTopologyPaths p;
  p.sys_cpu = root.File("sys/devices/system/cpu");
  p.cgroup_root = root.File("sys/fs/cgroup");
  p.proc_self_cgroup = root.File("proc/self/cgroup");
  return p;
}

// Eight logical CPUs on four cores: cpuN and cpuN+4 are SMT siblings.
void PutSmtMachine(const TempDir& root) {
  Put(root, "sys/devices/system/cpu/online", "0-7\n");
  for (int cpu = 0; cpu < 8; ++cpu) {
    const int core = cpu % 4;
    Put(root, "sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/thread_siblings_list",
        std::to_string(core) + "," + std::to_string(core + 4) + "\n");
  }
}

TEST(CpuTopologyTest, ParsesCpuLists) {
  EXPECT_EQ(ParseCpuList("0-3,8,10-11\n"), (std::vector<int>{0, 1, 2, 3, 8, 10, 11}));
  EXPECT_EQ(ParseCpuList("5"), (std::vector<int>{5}));
  EXPECT_EQ(ParseCpuList("1,1,0"), (std::vector<int>{0, 1}));
  EXPECT_FALSE(ParseCpuList("").has_value());
  EXPECT_FALSE(ParseCpuList("\n").has_value());
  EXPECT_FALSE(ParseCpuList("3-1").has_value());
  EXPECT_FALSE(ParseCpuList("a").has_value());
  EXPECT_FALSE(ParseCpuList("0-3,").has_value());
  EXPECT_FALSE(ParseCpuList("-2").has_value());
  EXPECT_FALSE(ParseCpuList("0-").has_value());
}

TEST(CpuTopologyTest, ParsesQuotas) {
  EXPECT_FALSE(ParseCpuMax("max 100000\n").has_value());
  ASSERT_TRUE(ParseCpuMax("150000 100000\n").has_value());
  EXPECT_DOUBLE_EQ(*ParseCpuMax("150000 100000\n"), 1.5);
  EXPECT_DOUBLE_EQ(*ParseCpuMax("50000 100000"), 0.5);
  EXPECT_FALSE(ParseCpuMax("0 100000").has_value());
  EXPECT_FALSE(ParseCpuMax("200000 0").has_value());
  EXPECT_FALSE(ParseCpuMax("200000").has_value());
  EXPECT_FALSE(ParseCpuMax("lots 100000").has_value());

  EXPECT_FALSE(ParseCfsQuota("-1\n", "100000\n").has_value());
  ASSERT_TRUE(ParseCfsQuota("250000\n", "100000\n").has_value());
  EXPECT_DOUBLE_EQ(*ParseCfsQuota("250000\n", "100000\n"), 2.5);
  EXPECT_FALSE(ParseCfsQuota("250000", "0").has_value());
  EXPECT_FALSE(ParseCfsQuota("x", "100000").has_value());
}

TEST(CpuTopologyTest, CountsPhysicalCoresOfTheAffinityMask) {
  TempDir root;
  PutSmtMachine(root);
  // Two cores, both siblings of each.
  CpuTopology t = ReadCpuTopology({0, 1, 4, 5}, PathsIn(root));
  EXPECT_EQ(t.online_cpus, 8);
  EXPECT_EQ(t.affinity_cpus, 4);
  EXPECT_EQ(t.physical_cores, 2);
  EXPECT_EQ(t.smt_siblings, 2);
  EXPECT_FALSE(t.quota_cpus.has_value());
  EXPECT_EQ(DefaultThreads(t), 2);
  // One sibling of each of three cores.
  t = ReadCpuTopology({0, 1, 6}, PathsIn(root));
  EXPECT_EQ(t.affinity_cpus, 3);
  EXPECT_EQ(t.physical_cores, 3);
  EXPECT_EQ(DefaultThreads(t), 3);
  // The whole machine.
  t = ReadCpuTopology({0, 1, 2, 3, 4, 5, 6, 7}, PathsIn(root));
  EXPECT_EQ(t.physical_cores, 4);
  EXPECT_EQ(DefaultThreads(t), 4);
}

TEST(CpuTopologyTest, MissingTopologyFilesCountEachCpuAsACore) {
  TempDir root;
  const CpuTopology t = ReadCpuTopology({0, 1, 2}, PathsIn(root));
  EXPECT_EQ(t.online_cpus, 3);
  EXPECT_EQ(t.affinity_cpus, 3);
  EXPECT_EQ(t.physical_cores, 3);
  EXPECT_EQ(t.smt_siblings, 1);
  EXPECT_FALSE(t.quota_cpus.has_value());
  EXPECT_EQ(DefaultThreads(t), 3);
}

TEST(CpuTopologyTest, CgroupV2QuotaIsTheSmallestOnThePath) {
  TempDir root;
  PutSmtMachine(root);
  Put(root, "proc/self/cgroup", "0::/kubepods/pod1/ctr\n");
  Put(root, "sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory pids\n");
  Put(root, "sys/fs/cgroup/kubepods/cpu.max", "400000 100000\n");
  Put(root, "sys/fs/cgroup/kubepods/pod1/cpu.max", "150000 100000\n");
  Put(root, "sys/fs/cgroup/kubepods/pod1/ctr/cpu.max", "max 100000\n");
  const CpuTopology t = ReadCpuTopology({0, 1, 2, 3, 4, 5, 6, 7}, PathsIn(root));
  ASSERT_TRUE(t.quota_cpus.has_value());
  EXPECT_DOUBLE_EQ(*t.quota_cpus, 1.5);
  EXPECT_EQ(t.physical_cores, 4);
  EXPECT_EQ(DefaultThreads(t), 1);  // 1.5 CPUs: one busy thread never stalls
}

TEST(CpuTopologyTest, CgroupV2WithoutLimitAndHybridMount) {
  TempDir root;
  Put(root, "proc/self/cgroup", "0::/user.slice\n");
  // Hybrid layout: the unified tree is mounted at <root>/unified.
  Put(root, "sys/fs/cgroup/unified/cgroup.controllers", "\n");
  Put(root, "sys/fs/cgroup/unified/user.slice/cpu.max", "300000 100000\n");
  CpuTopology t = ReadCpuTopology({0, 1, 2, 3}, PathsIn(root));
  ASSERT_TRUE(t.quota_cpus.has_value());
  EXPECT_DOUBLE_EQ(*t.quota_cpus, 3.0);
  EXPECT_EQ(DefaultThreads(t), 3);

  Put(root, "sys/fs/cgroup/unified/user.slice/cpu.max", "max 100000\n");
  t = ReadCpuTopology({0, 1, 2, 3}, PathsIn(root));
  EXPECT_FALSE(t.quota_cpus.has_value());
  EXPECT_EQ(DefaultThreads(t), 4);
}

TEST(CpuTopologyTest, CgroupV1QuotaOfTheCpuHierarchy) {
  TempDir root;
  PutSmtMachine(root);
  // The cpu controller is in a v1 hierarchy; the unified line is ignored.
  Put(root, "proc/self/cgroup", "4:memory:/x\n3:cpu,cpuacct:/docker/abc\n0::/\n");
  Put(root, "sys/fs/cgroup/cgroup.controllers", "\n");
  Put(root, "sys/fs/cgroup/cpu.max", "100000 100000\n");  // not the cpu controller's
  Put(root, "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "-1\n");
  Put(root, "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n");
  Put(root, "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "250000\n");
  Put(root, "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
  const CpuTopology t = ReadCpuTopology({0, 1, 2, 3, 4, 5, 6, 7}, PathsIn(root));
  ASSERT_TRUE(t.quota_cpus.has_value());
  EXPECT_DOUBLE_EQ(*t.quota_cpus, 2.5);
  EXPECT_EQ(DefaultThreads(t), 2);
}

TEST(CpuTopologyTest, CgroupV1PathOutsideTheNamespaceReadsTheMountRoot) {
  TempDir root;
  // In a container the cgroup mount is the container's own group, while
  // /proc/self/cgroup may still show the host's path.
  Put(root, "proc/self/cgroup", "2:cpu:/docker/abc\n");
  Put(root, "sys/fs/cgroup/cpu/cpu.cfs_quota_us", "200000\n");
  Put(root, "sys/fs/cgroup/cpu/cpu.cfs_period_us", "100000\n");
  const CpuTopology t = ReadCpuTopology({0, 1, 2, 3, 4, 5}, PathsIn(root));
  ASSERT_TRUE(t.quota_cpus.has_value());
  EXPECT_DOUBLE_EQ(*t.quota_cpus, 2.0);
  EXPECT_EQ(DefaultThreads(t), 2);
}

TEST(CpuTopologyTest, DefaultThreadsRoundsTheQuotaDown) {
  CpuTopology t;
  t.physical_cores = 6;
  EXPECT_EQ(DefaultThreads(t), 6);
  t.quota_cpus = 0.25;
  EXPECT_EQ(DefaultThreads(t), 1);
  t.quota_cpus = 2.0;
  EXPECT_EQ(DefaultThreads(t), 2);
  t.quota_cpus = 5.99;
  EXPECT_EQ(DefaultThreads(t), 5);
  t.quota_cpus = 64.0;
  EXPECT_EQ(DefaultThreads(t), 6);
  t.physical_cores = 0;  // never below one thread
  t.quota_cpus.reset();
  EXPECT_EQ(DefaultThreads(t), 1);
}

TEST(CpuTopologyTest, DescribesTheTopology) {
  CpuTopology t;
  t.online_cpus = 8;
  t.affinity_cpus = 4;
  t.physical_cores = 2;
  t.smt_siblings = 2;
  t.quota_cpus = 1.5;
  EXPECT_EQ(DescribeTopology(t),
            "2 physical cores (4 logical CPUs, 2 SMT siblings per core) of 8 online, CPU quota 1.5");
  t = CpuTopology();
  EXPECT_EQ(DescribeTopology(t), "1 physical core (1 logical CPU) of 1 online, no CPU quota");
}

TEST(CpuTopologyTest, ThisProcessHasAConsistentTopology) {
  const CpuTopology t = ReadCpuTopology();
  EXPECT_GE(t.affinity_cpus, 1);
  EXPECT_LE(t.affinity_cpus, t.online_cpus);
  EXPECT_GE(t.physical_cores, 1);
  EXPECT_LE(t.physical_cores, t.affinity_cpus);
  EXPECT_GE(DefaultThreads(t), 1);
  EXPECT_LE(DefaultThreads(t), t.affinity_cpus);
}

}  // namespace
}  // namespace wfm::model::cpu
