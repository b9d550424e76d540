#include "model/common/cpu_topology.h"

#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>

namespace wfm::model::cpu {
namespace {

std::optional<std::string> ReadSmallFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return std::nullopt;
  return text;
}

bool IsDirectory(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string_view Trim(std::string_view s) {
  const size_t begin = s.find_first_not_of(" \t\r\n");
  if (begin == std::string_view::npos) return {};
  const size_t end = s.find_last_not_of(" \t\r\n");
  return s.substr(begin, end - begin + 1);
}

std::optional<long long> ParseInteger(std::string_view s) {
  s = Trim(s);
  long long value = 0;
  const char* end = s.data() + s.size();
  const auto [ptr, ec] = std::from_chars(s.data(), end, value);
  if (s.empty() || ec != std::errc() || ptr != end) return std::nullopt;
  return value;
}

// "/a/b" -> {"/a/b", "/a", ""}: the cgroup and its ancestors, relative to
// the controller's mount point.
std::vector<std::string> SelfAndAncestors(std::string path) {
  while (!path.empty() && path.back() == '/') path.pop_back();
  std::vector<std::string> out;
  while (true) {
    out.push_back(path);
    if (path.empty()) break;
    const size_t slash = path.rfind('/');
    path = slash == std::string::npos ? std::string() : path.substr(0, slash);
  }
  return out;
}

std::optional<double> Smaller(std::optional<double> a, std::optional<double> b) {
  if (!a.has_value()) return b;
  if (!b.has_value()) return a;
  return std::min(*a, *b);
}

struct SelfCgroups {
  std::optional<std::string> v1_cpu;  // path in the v1 hierarchy holding "cpu"
  std::string v1_controllers;         // that hierarchy's controller list
  std::optional<std::string> v2;      // path in the unified hierarchy
};

SelfCgroups ParseSelfCgroups(const std::string& text) {
  SelfCgroups out;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    const size_t first = line.find(':');
    const size_t second = first == std::string::npos ? first : line.find(':', first + 1);
    if (second == std::string::npos) continue;
    const std::string id = line.substr(0, first);
    const std::string controllers = line.substr(first + 1, second - first - 1);
    const std::string path = line.substr(second + 1);
    if (id == "0" && controllers.empty()) {
      out.v2 = path;
      continue;
    }
    std::istringstream names(controllers);
    std::string name;
    while (std::getline(names, name, ',')) {
      if (name == "cpu") {
        out.v1_cpu = path;
        out.v1_controllers = controllers;
      }
    }
  }
  return out;
}

std::optional<double> CgroupQuota(const CpuTopologyPaths& paths) {
  const std::optional<std::string> self = ReadSmallFile(paths.proc_self_cgroup);
  if (!self.has_value()) return std::nullopt;
  const SelfCgroups cgroups = ParseSelfCgroups(*self);
  std::optional<double> quota;
  if (cgroups.v1_cpu.has_value()) {
    // The cpu controller is bound to a v1 hierarchy (v1 or hybrid set-ups):
    // the limits live there, and cpu.max of the unified tree does not exist.
    const std::string mounts[] = {paths.cgroup_root + "/" + cgroups.v1_controllers,
                                  paths.cgroup_root + "/cpu", paths.cgroup_root + "/cpu,cpuacct"};
    for (const std::string& mount : mounts) {
      if (!IsDirectory(mount)) continue;
      for (const std::string& dir : SelfAndAncestors(*cgroups.v1_cpu)) {
        const auto q = ReadSmallFile(mount + dir + "/cpu.cfs_quota_us");
        const auto p = ReadSmallFile(mount + dir + "/cpu.cfs_period_us");
        if (q.has_value() && p.has_value()) quota = Smaller(quota, ParseCfsQuota(*q, *p));
      }
      return quota;
    }
    return std::nullopt;
  }
  if (cgroups.v2.has_value()) {
    for (const std::string& mount : {paths.cgroup_root, paths.cgroup_root + "/unified"}) {
      if (!ReadSmallFile(mount + "/cgroup.controllers").has_value()) continue;
      for (const std::string& dir : SelfAndAncestors(*cgroups.v2)) {
        if (const auto max = ReadSmallFile(mount + dir + "/cpu.max")) {
          quota = Smaller(quota, ParseCpuMax(*max));
        }
      }
      return quota;
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::vector<int>> ParseCpuList(std::string_view text) {
  text = Trim(text);
  if (text.empty()) return std::nullopt;
  std::set<int> ids;
  while (!text.empty()) {
    const size_t comma = text.find(',');
    const std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    const size_t dash = item.find('-');
    const auto first = ParseInteger(item.substr(0, dash));
    const auto last = dash == std::string_view::npos ? first : ParseInteger(item.substr(dash + 1));
    if (!first.has_value() || !last.has_value() || *first < 0 || *last < *first ||
        *last > 1 << 20) {
      return std::nullopt;
    }
    for (long long id = *first; id <= *last; ++id) ids.insert(static_cast<int>(id));
    if (comma != std::string_view::npos && text.empty()) return std::nullopt;  // "0-3,"
  }
  return std::vector<int>(ids.begin(), ids.end());
}

std::optional<double> ParseCpuMax(std::string_view text) {
  text = Trim(text);
  const size_t space = text.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  const std::string_view quota = text.substr(0, space);
  const auto period = ParseInteger(text.substr(space + 1));
  if (quota == "max" || !period.has_value() || *period <= 0) return std::nullopt;
  const auto q = ParseInteger(quota);
  if (!q.has_value() || *q <= 0) return std::nullopt;
  return static_cast<double>(*q) / static_cast<double>(*period);
}

std::optional<double> ParseCfsQuota(std::string_view quota_text, std::string_view period_text) {
  const auto quota = ParseInteger(quota_text);
  const auto period = ParseInteger(period_text);
  if (!quota.has_value() || !period.has_value() || *quota <= 0 || *period <= 0) {
    return std::nullopt;
  }
  return static_cast<double>(*quota) / static_cast<double>(*period);
}

CpuTopology ReadCpuTopology(const std::vector<int>& affinity, const CpuTopologyPaths& paths) {
  CpuTopology t;
  t.affinity_cpus = std::max<int>(1, static_cast<int>(affinity.size()));
  const auto online_text = ReadSmallFile(paths.sys_cpu + "/online");
  const auto online = online_text.has_value() ? ParseCpuList(*online_text) : std::nullopt;
  t.online_cpus = online.has_value() ? static_cast<int>(online->size()) : t.affinity_cpus;
  t.online_cpus = std::max(t.online_cpus, t.affinity_cpus);

  // A core is named by its sibling list; a CPU without one is its own core.
  std::set<std::vector<int>> cores;
  int siblings = 1;
  for (int cpu : affinity) {
    const auto text = ReadSmallFile(paths.sys_cpu + "/cpu" + std::to_string(cpu) +
                                    "/topology/thread_siblings_list");
    std::optional<std::vector<int>> list = text.has_value() ? ParseCpuList(*text) : std::nullopt;
    if (!list.has_value() || std::find(list->begin(), list->end(), cpu) == list->end()) {
      list = std::vector<int>{cpu};
    }
    siblings = std::max(siblings, static_cast<int>(list->size()));
    cores.insert(*list);
  }
  t.physical_cores = std::max<int>(1, static_cast<int>(cores.size()));
  t.smt_siblings = siblings;
  t.quota_cpus = CgroupQuota(paths);
  return t;
}

CpuTopology ReadCpuTopology() {
  std::vector<int> affinity;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
      if (CPU_ISSET(cpu, &set)) affinity.push_back(cpu);
    }
  }
  if (affinity.empty()) {
    const long n = sysconf(_SC_NPROCESSORS_ONLN);
    for (int cpu = 0; cpu < std::max(1L, n); ++cpu) affinity.push_back(cpu);
  }
  return ReadCpuTopology(affinity, CpuTopologyPaths());
}

int DefaultThreads(const CpuTopology& topology) {
  int threads = std::max(1, topology.physical_cores);
  if (topology.quota_cpus.has_value()) {
    const double quota = std::floor(*topology.quota_cpus + 1e-9);
    threads = std::min(threads, static_cast<int>(std::max(1.0, quota)));
  }
  return threads;
}

std::string DescribeTopology(const CpuTopology& t) {
  std::ostringstream out;
  out << t.physical_cores << (t.physical_cores == 1 ? " physical core" : " physical cores") << " ("
      << t.affinity_cpus << (t.affinity_cpus == 1 ? " logical CPU" : " logical CPUs");
  if (t.smt_siblings > 1) out << ", " << t.smt_siblings << " SMT siblings per core";
  out << ") of " << t.online_cpus << " online, ";
  if (t.quota_cpus.has_value()) {
    out << "CPU quota " << *t.quota_cpus;
  } else {
    out << "no CPU quota";
  }
  return out.str();
}

}  // namespace wfm::model::cpu
