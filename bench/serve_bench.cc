// wfm_bench serve: end-to-end sampling over gRPC on loopback against an
// in-process wfm-server (server/server_app.h) holding one small trained
// point-cloud model.
//
//   (a) one client, `--num` samples per request: gRPC throughput vs the
//       in-process sampler (PointCloudModel::Sample) on the same model and
//       requests, calls interleaved; overhead = 1 - grpc / in-process.
//   (b) `--clients` concurrent clients (own channels) each asking for one
//       sample per request, `--rounds` requests each, vs the same requests
//       sent one after another: throughput ratio (dynamic batching), and the
//       mean batch the server merged.
//   (c) p50 / p99 request latency of (a) over gRPC and of (b) concurrent.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "bench/bench_util.h"
#include "bench/subcommands.h"
#include "model/sample/pointcloud_model.h"
#include "server/metrics.h"
#include "server/model_registry.h"
#include "bench/bench_server.h"
#include "server/server_app.h"
#include "wfm/v1/wfm_service.grpc.pb.h"

namespace wfm::bench {
namespace {

namespace pb = ::wfm::v1;
using Clock = std::chrono::steady_clock;

struct ServeArgs {
  // Defaults: niche-sized clouds (the k = 8 neighbours of a cell, 10
  // features), the service's main use.
  int64_t points = 8;      // points per generated cloud
  int64_t dim = 10;
  int64_t num = 16;        // samples per request in (a)
  int64_t steps = 100;     // integration steps per request
  BenchNetwork net{64, 2, 4, 128};  // emb, layers, heads, mlp
  int64_t requests = 20;   // requests of (a), per side
  int clients = 8;         // (b)
  int64_t rounds = 10;     // requests per client in (b)
  int64_t queue_delay_ms = 5;
  int threads = 1;
  uint64_t seed = 0;
};

double Seconds(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// A metric's value in the text exposition (the first sample of that name).
double MetricSum(const std::string& text, const std::string& name) {
  double total = 0.0;
  size_t at = 0;
  while ((at = text.find("\n" + name, at)) != std::string::npos) {
    const size_t end = text.find('\n', at + 1);
    const std::string line = text.substr(at + 1, end - at - 1);
    at = end;
    const size_t space = line.rfind(' ');
    const std::string metric = line.substr(0, std::min(line.find('{'), line.find(' ')));
    if (metric == name) total += std::stod(line.substr(space + 1));
  }
  return total;
}

// One SampleNiches call; its wall time in seconds (< 0 on error).
double SampleOnce(pb::WfmService::Stub& stub, int64_t num, const ServeArgs& a, uint64_t seed) {
  pb::SampleNichesRequest r;
  r.set_model("bench");
  r.set_num_samples(num);
  r.set_points_per_sample(a.points);
  r.set_steps(a.steps);
  r.set_seed(seed);
  const auto t0 = Clock::now();
  grpc::ClientContext context;
  auto reader = stub.SampleNiches(&context, r);
  pb::SampleNichesResponse m;
  int64_t clouds = 0;
  while (reader->Read(&m)) clouds += m.sizes_size();
  const grpc::Status s = reader->Finish();
  const double t = Seconds(t0);
  if (!s.ok() || clouds != num) {
    std::cerr << "wfm_bench serve: sample: " << s.error_message() << "\n";
    return -1.0;
  }
  return t;
}

int RunServe(const ServeArgs& a) {
  SetThreads(a.threads);
  server::ServerOptions options;
  options.threads = a.threads;
  options.max_queue_delay_ms = a.queue_delay_ms;
  const std::unique_ptr<BenchServer> bench_server =
      StartWithBenchModel("serve", options, {"bench", a.dim, a.points, a.net, a.seed});
  if (bench_server == nullptr) return 1;
  server::ServerApp* const app = &bench_server->app();
  const std::string address = bench_server->address();
  auto stub = NewBenchStub(address, 0);
  const std::shared_ptr<const model::PointCloudModel> model =
      (*app->models().Get("bench"))->pointcloud;

  // (a) one client vs the in-process sampler, interleaved.
  auto inproc = [&](uint64_t seed) {
    model::CloudSampleRequest r;
    r.num_samples = a.num;
    r.points = a.points;
    r.steps = a.steps;
    r.seed = seed;
    const auto t0 = Clock::now();
    const bool ok = model->Sample({r}).ok();
    return ok ? Seconds(t0) : -1.0;
  };
  for (int w = 0; w < 2; ++w) {
    inproc(1000 + w);
    SampleOnce(*stub, a.num, a, 1000 + w);
  }
  std::vector<double> t_inproc, t_grpc;
  for (int64_t i = 0; i < a.requests; ++i) {
    t_inproc.push_back(inproc(i));
    t_grpc.push_back(SampleOnce(*stub, a.num, a, i));
    if (t_inproc.back() < 0 || t_grpc.back() < 0) return 1;
  }
  double sum_inproc = 0, sum_grpc = 0;
  for (double t : t_inproc) sum_inproc += t;
  for (double t : t_grpc) sum_grpc += t;
  const double inproc_rate = a.requests * a.num / sum_inproc;
  const double grpc_rate = a.requests * a.num / sum_grpc;

  // (b) 8 concurrent one-sample clients vs the same requests in sequence.
  const int64_t total = a.clients * a.rounds;
  auto sequential = [&] {
    const auto t0 = Clock::now();
    for (int64_t i = 0; i < total; ++i) {
      if (SampleOnce(*stub, 1, a, 5000 + i) < 0) return -1.0;
    }
    return Seconds(t0);
  };
  std::vector<double> concurrent_latency;
  auto concurrent = [&] {
    std::vector<std::unique_ptr<pb::WfmService::Stub>> stubs;
    for (int c = 0; c < a.clients; ++c) stubs.push_back(NewBenchStub(address, c + 1));
    std::vector<std::vector<double>> latencies(a.clients);
    std::atomic<bool> failed{false};
    std::atomic<int> ready{0};
    std::vector<std::thread> threads;
    Clock::time_point t0;
    for (int c = 0; c < a.clients; ++c) {
      threads.emplace_back([&, c] {
        if (++ready == a.clients) t0 = Clock::now();
        while (ready.load() < a.clients) std::this_thread::yield();
        for (int64_t i = 0; i < a.rounds; ++i) {
          const double t = SampleOnce(*stubs[c], 1, a, 5000 + c * a.rounds + i);
          if (t < 0) failed = true;
          latencies[c].push_back(t);
        }
      });
    }
    for (auto& t : threads) t.join();
    const double seconds = Seconds(t0);
    for (const auto& l : latencies) concurrent_latency.insert(concurrent_latency.end(), l.begin(), l.end());
    return failed ? -1.0 : seconds;
  };
  sequential();  // warm-up of the one-sample path
  const std::string before = app->metrics().Text();
  double t_seq = 1e300, t_conc = 1e300;
  for (int rep = 0; rep < 2; ++rep) {
    t_seq = std::min(t_seq, sequential());
    concurrent_latency.clear();
    t_conc = std::min(t_conc, concurrent());
  }
  if (t_seq < 0 || t_conc < 0) return 1;
  const std::string after = app->metrics().Text();
  const double calls = MetricSum(after, "wfm_sampling_batch_size_count") -
                       MetricSum(before, "wfm_sampling_batch_size_count");
  const double merged = MetricSum(after, "wfm_sampling_batch_size_sum") -
                        MetricSum(before, "wfm_sampling_batch_size_sum");

  nlohmann::json record = {
      {"bench", "serve"},
      {"points", a.points}, {"dim", a.dim}, {"steps", a.steps},
      {"nfe", 2 * a.steps},  // network evaluations per sample (midpoint rule)
      {"emb", a.net.emb},
      {"layers", a.net.layers}, {"heads", a.net.heads}, {"mlp", a.net.mlp},
      {"single_num", a.num}, {"single_requests", a.requests},
      {"inproc_samples_per_second", inproc_rate},
      {"grpc_samples_per_second", grpc_rate},
      {"grpc_overhead", 1.0 - grpc_rate / inproc_rate},
      {"single_p50_seconds", Percentile(t_grpc, 0.5)},
      {"single_p99_seconds", Percentile(t_grpc, 0.99)},
      {"inproc_p50_seconds", Percentile(t_inproc, 0.5)},
      {"clients", a.clients}, {"rounds", a.rounds},
      {"sequential_samples_per_second", total / t_seq},
      {"concurrent_samples_per_second", total / t_conc},
      {"batching_speedup", t_seq / t_conc},
      // Over the timed sequential and concurrent runs together.
      {"mean_requests_per_call", calls > 0 ? merged / calls : 0.0},
      {"concurrent_p50_seconds", Percentile(concurrent_latency, 0.5)},
      {"concurrent_p99_seconds", Percentile(concurrent_latency, 0.99)},
      {"max_queue_delay_ms", a.queue_delay_ms}};
  Emit(record);
  return 0;
}

}  // namespace

void AddServeCommand(CLI::App& app) {
  auto args = std::make_shared<ServeArgs>();
  CLI::App* cmd = app.add_subcommand(
      "serve", "sampling over gRPC on loopback: overhead, dynamic batching, latency");
  cmd->add_option("--points", args->points, "points per generated cloud")->capture_default_str();
  cmd->add_option("--dim", args->dim)->capture_default_str();
  cmd->add_option("--num", args->num, "samples per request, single client")->capture_default_str();
  cmd->add_option("--steps", args->steps, "integration steps")->capture_default_str();
  AddNetworkOptions(cmd, &args->net);
  cmd->add_option("--requests", args->requests, "requests per side, single client")
      ->capture_default_str();
  cmd->add_option("--clients", args->clients, "concurrent one-sample clients")
      ->capture_default_str();
  cmd->add_option("--rounds", args->rounds, "requests per concurrent client")
      ->capture_default_str();
  cmd->add_option("--max-queue-delay-ms", args->queue_delay_ms)->capture_default_str();
  cmd->add_option("--threads", args->threads, kThreadsHelp)
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--seed", args->seed)->capture_default_str();
  cmd->callback([args] {
    const int rc = RunServe(*args);
    if (rc != 0) std::exit(rc);
  });
}

}  // namespace wfm::bench
