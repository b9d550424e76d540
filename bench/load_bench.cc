// wfm_bench load: sampling under load over gRPC on loopback against an
// in-process wfm-server (server/server_app.h) holding one small trained
// point-cloud model. For each client count of --clients (default 1, 8, 64),
// that many closed-loop clients (each on its own connection) send
// SampleNiches requests of --num samples for --seconds; a client whose
// request is refused (RESOURCE_EXHAUSTED: the model's queue holds
// --max-queue requests) waits --retry-delay-ms and sends the next one.
// One JSON line per client count: throughput (generated samples per
// second), p50 / p99 latency of the accepted requests, the rejection rate
// (refused / sent), and the process's resident memory (VmRSS now, VmHWM the
// peak since start; server and clients share the process).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "bench/bench_util.h"
#include "bench/subcommands.h"
#include "bench/bench_server.h"
#include "server/server_app.h"
#include "wfm/v1/wfm_service.grpc.pb.h"

namespace wfm::bench {
namespace {

namespace pb = ::wfm::v1;
using Clock = std::chrono::steady_clock;

struct LoadArgs {
  std::vector<int> clients = {1, 8, 64};
  double seconds = 5.0;   // per client count
  int64_t num = 1;        // samples per request
  int64_t points = 8;     // points per generated cloud (a niche)
  int64_t dim = 10;
  int64_t steps = 100;    // integration steps per request
  // A tiny model: one layer of width 32.
  BenchNetwork net{32, 1, 2, 64};  // emb, layers, heads, mlp
  // The server's sampling limits (its defaults).
  int64_t max_queue = 256;
  int64_t max_batch_samples = 64;
  int64_t queue_delay_ms = 5;
  int64_t retry_delay_ms = 10;
  int threads = 1;
  uint64_t seed = 0;
};

// A "Vm..." field of /proc/self/status in MiB (0 when missing).
double ProcStatusMiB(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) {
      std::istringstream value(line.substr(field.size() + 1));
      double kib = 0;
      value >> kib;
      return kib / 1024.0;
    }
  }
  return 0.0;
}

// What one client saw.
struct ClientStats {
  std::vector<double> latencies;  // accepted requests, seconds
  int64_t sent = 0;
  int64_t rejected = 0;
  int64_t failed = 0;  // other errors
  std::string error;
};

void RunClient(pb::WfmService::Stub& stub, const LoadArgs& a, uint64_t seed0,
               Clock::time_point end, ClientStats* out) {
  pb::SampleNichesRequest r;
  r.set_model("load");
  r.set_num_samples(a.num);
  r.set_points_per_sample(a.points);
  r.set_steps(a.steps);
  for (uint64_t i = 0; Clock::now() < end; ++i) {
    r.set_seed(seed0 + i);
    const auto t0 = Clock::now();
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(5));
    auto reader = stub.SampleNiches(&context, r);
    pb::SampleNichesResponse m;
    int64_t clouds = 0;
    while (reader->Read(&m)) clouds += m.sizes_size();
    const grpc::Status s = reader->Finish();
    ++out->sent;
    if (s.ok() && clouds == a.num) {
      out->latencies.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    } else if (s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      ++out->rejected;
      std::this_thread::sleep_for(std::chrono::milliseconds(a.retry_delay_ms));
    } else {
      ++out->failed;
      out->error = s.ok() ? "wrong number of clouds" : s.error_message();
    }
  }
}

int RunLoad(const LoadArgs& a) {
  SetThreads(a.threads);
  server::ServerOptions options;
  options.threads = a.threads;
  options.max_queue = a.max_queue;
  options.max_batch_samples = a.max_batch_samples;
  options.max_queue_delay_ms = a.queue_delay_ms;
  const std::unique_ptr<BenchServer> bench_server =
      StartWithBenchModel("load", options, {"load", a.dim, a.points, a.net, a.seed});
  if (bench_server == nullptr) return 1;
  const std::string address = bench_server->address();
  int rc = 0;
  int next_connection = 1;
  for (const int n : a.clients) {
    if (rc != 0) break;
    std::vector<std::unique_ptr<pb::WfmService::Stub>> stubs;
    for (int c = 0; c < n; ++c) stubs.push_back(NewBenchStub(address, next_connection++));
    std::vector<ClientStats> stats(n);
    std::atomic<int> ready{0};
    Clock::time_point t0, end;
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    for (int c = 0; c < n; ++c) {
      threads.emplace_back([&, c] {
        ++ready;
        while (!go.load()) std::this_thread::yield();
        RunClient(*stubs[c], a, a.seed * 1000003 + static_cast<uint64_t>(c) * 1000000, end,
                  &stats[c]);
      });
    }
    while (ready.load() < n) std::this_thread::yield();
    t0 = Clock::now();
    end = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(a.seconds));
    go = true;
    for (auto& t : threads) t.join();
    const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
    std::vector<double> latencies;
    int64_t sent = 0, rejected = 0, failed = 0;
    std::string error;
    for (const ClientStats& s : stats) {
      latencies.insert(latencies.end(), s.latencies.begin(), s.latencies.end());
      sent += s.sent;
      rejected += s.rejected;
      failed += s.failed;
      if (!s.error.empty()) error = s.error;
    }
    const int64_t accepted = static_cast<int64_t>(latencies.size());
    nlohmann::json record = {
        {"bench", "load"},
        {"clients", n},
        {"seconds", wall},
        {"requests", sent},
        {"accepted", accepted},
        {"rejected", rejected},
        {"failed", failed},
        {"rejection_rate", sent > 0 ? static_cast<double>(rejected) / static_cast<double>(sent) : 0.0},
        {"samples_per_second", static_cast<double>(accepted * a.num) / wall},
        {"p50_seconds", Percentile(latencies, 0.5)},
        {"p99_seconds", Percentile(latencies, 0.99)},
        {"rss_mib", ProcStatusMiB("VmRSS")},
        {"peak_rss_mib", ProcStatusMiB("VmHWM")},
        {"num", a.num}, {"points", a.points}, {"dim", a.dim}, {"steps", a.steps},
        {"nfe", 2 * a.steps},  // network evaluations per sample (midpoint rule)
        {"emb", a.net.emb}, {"layers", a.net.layers}, {"heads", a.net.heads}, {"mlp", a.net.mlp},
        {"max_queue", a.max_queue}, {"max_batch_samples", a.max_batch_samples},
        {"max_queue_delay_ms", a.queue_delay_ms}, {"retry_delay_ms", a.retry_delay_ms}};
    if (!error.empty()) record["error"] = error;
    Emit(record);
    if (failed > 0) rc = 1;
  }
  return rc;
}

}  // namespace

void AddLoadCommand(CLI::App& app) {
  auto args = std::make_shared<LoadArgs>();
  CLI::App* cmd = app.add_subcommand(
      "load", "sampling under load: throughput, p50/p99 latency, rejection rate per client count");
  cmd->add_option("--clients", args->clients, "client counts, one run each (e.g. 1,8,64)")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--seconds", args->seconds, "duration of each run")->capture_default_str();
  cmd->add_option("--num", args->num, "samples per request")->capture_default_str();
  cmd->add_option("--points", args->points, "points per generated cloud")->capture_default_str();
  cmd->add_option("--dim", args->dim)->capture_default_str();
  cmd->add_option("--steps", args->steps, "integration steps")->capture_default_str();
  AddNetworkOptions(cmd, &args->net);
  cmd->add_option("--max-queue", args->max_queue, "server: waiting requests per model")
      ->capture_default_str();
  cmd->add_option("--max-batch-samples", args->max_batch_samples,
                  "server: samples merged into one call")
      ->capture_default_str();
  cmd->add_option("--max-queue-delay-ms", args->queue_delay_ms)->capture_default_str();
  cmd->add_option("--retry-delay-ms", args->retry_delay_ms,
                  "a refused client's pause before its next request")
      ->capture_default_str();
  cmd->add_option("--threads", args->threads, kThreadsHelp)
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--seed", args->seed)->capture_default_str();
  cmd->callback([args] {
    for (int n : args->clients) {
      if (n < 1) throw CLI::ValidationError("--clients", "every count must be >= 1");
    }
    const int rc = RunLoad(*args);
    if (rc != 0) std::exit(rc);
  });
}

}  // namespace wfm::bench
