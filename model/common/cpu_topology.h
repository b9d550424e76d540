// The CPUs this process may use, and the default thread count drawn from
// them.
//
//  * affinity: the logical CPUs of the process's affinity mask
//    (sched_getaffinity; taskset and cpuset cgroups narrow it);
//  * physical cores: the distinct cores behind those CPUs. SMT siblings
//    (hyper-threads, /sys/devices/system/cpu/cpuN/topology/
//    thread_siblings_list) share one core's execution units, so a second
//    thread on a sibling adds little floating-point throughput;
//  * quota: the cgroup CPU limit in CPUs (Kubernetes `resources.limits.cpu`):
//    cgroup v2 `cpu.max` ("max 100000" or "QUOTA PERIOD"), cgroup v1
//    `cpu.cfs_quota_us` / `cpu.cfs_period_us` (-1 = none), the smallest along
//    the process's cgroup path (/proc/self/cgroup) up to the mount root. A
//    process over its quota is stopped for the rest of each period, so more
//    busy threads than the quota only add stalls.
//
// Every path is a parameter, so tests read fake sysfs and cgroup trees. No
// torch here.
#ifndef WFM_MODEL_COMMON_CPU_TOPOLOGY_H_
#define WFM_MODEL_COMMON_CPU_TOPOLOGY_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wfm::model::cpu {

struct CpuTopology {
  int online_cpus = 1;     // logical CPUs online on the machine
  int affinity_cpus = 1;   // logical CPUs this process may run on
  int physical_cores = 1;  // distinct cores among the affinity CPUs
  int smt_siblings = 1;    // most logical CPUs of one core (1 = no SMT)
  // The cgroup CPU limit in CPUs (quota / period); nullopt = none.
  std::optional<double> quota_cpus;
};

struct CpuTopologyPaths {
  std::string sys_cpu = "/sys/devices/system/cpu";
  std::string cgroup_root = "/sys/fs/cgroup";
  std::string proc_self_cgroup = "/proc/self/cgroup";
};

// A Linux CPU list ("0-3,8,10-11", trailing newline allowed) as sorted,
// distinct ids; nullopt when malformed.
std::optional<std::vector<int>> ParseCpuList(std::string_view text);

// cgroup v2 `cpu.max`: "max PERIOD" → nullopt; "QUOTA PERIOD" → QUOTA /
// PERIOD. nullopt too when malformed (no limit is assumed).
std::optional<double> ParseCpuMax(std::string_view text);

// cgroup v1: `cpu.cfs_quota_us` (-1 = none) over `cpu.cfs_period_us`;
// nullopt for no limit or malformed text.
std::optional<double> ParseCfsQuota(std::string_view quota_text, std::string_view period_text);

// The topology for the logical CPUs `affinity` (ids), from the files under
// `paths`. Missing topology files count each CPU as its own core; missing
// cgroup files mean no quota.
CpuTopology ReadCpuTopology(const std::vector<int>& affinity, const CpuTopologyPaths& paths);

// This process's topology (its affinity mask, the real /sys and /proc).
CpuTopology ReadCpuTopology();

// The default thread count: one thread per physical core the process may
// run on, at most the quota rounded down, at least 1.
int DefaultThreads(const CpuTopology& topology);

// One line for logs: "2 physical cores (4 logical CPUs, 2 SMT siblings per
// core) of 8 online, CPU quota 1.5".
std::string DescribeTopology(const CpuTopology& topology);

}  // namespace wfm::model::cpu

#endif  // WFM_MODEL_COMMON_CPU_TOPOLOGY_H_
