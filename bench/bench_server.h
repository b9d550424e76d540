// What `wfm_bench serve` and `wfm_bench load` share: an in-process
// wfm-server on 127.0.0.1:0 over a temporary data folder, client stubs on
// separate connections, and latency percentiles.
#ifndef WFM_BENCH_BENCH_SERVER_H_
#define WFM_BENCH_BENCH_SERVER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "bench/bench_args.h"
#include "server/server_app.h"
#include "wfm/v1/wfm_service.grpc.pb.h"

namespace wfm::bench {

class BenchServer {
 public:
  // `options` without listen, metrics_listen, data_dir and log_level, which
  // are set here (metrics off, warnings only, a folder named after `name`
  // and the process id under the temporary directory).
  static absl::StatusOr<std::unique_ptr<BenchServer>> Start(absl::string_view name,
                                                            server::ServerOptions options);
  // Shuts the server down and removes its folder.
  ~BenchServer();

  server::ServerApp& app() { return *app_; }
  const std::string& address() const { return app_->grpc_address(); }

 private:
  BenchServer(std::unique_ptr<server::ServerApp> app, std::string dir)
      : app_(std::move(app)), dir_(std::move(dir)) {}
  std::unique_ptr<server::ServerApp> app_;
  std::string dir_;
};

// A stub on its own connection (`id` keeps channels apart), connected.
std::unique_ptr<v1::WfmService::Stub> NewBenchStub(const std::string& address, int id);

// The model the serving benchmarks sample: uploads 32 random clouds of
// `points` points in `dim` dimensions as data set `name`, trains a tiny
// point-cloud network of size `net` for 3 steps as model `name` and waits
// for it. false (with the reason on stderr,
// prefixed by `what`) on any error.
struct BenchModelSpec {
  std::string name;
  int64_t dim = 10;
  int64_t points = 8;
  BenchNetwork net{64, 2, 4, 128};  // emb, layers, heads, mlp
  uint64_t seed = 0;
};
bool UploadAndTrainBenchModel(v1::WfmService::Stub& stub, const BenchModelSpec& spec,
                              absl::string_view what);

// BenchServer::Start(command, options) serving the model of `spec`
// (uploaded and trained through connection 0); nullptr (with the reason on
// stderr, prefixed by "wfm_bench <command>: ") on any error.
std::unique_ptr<BenchServer> StartWithBenchModel(absl::string_view command,
                                                 const server::ServerOptions& options,
                                                 const BenchModelSpec& spec);

// The q-quantile (0 < q <= 1) by the nearest-rank method; 0 for no values.
double Percentile(std::vector<double> values, double q);

}  // namespace wfm::bench

#endif  // WFM_BENCH_BENCH_SERVER_H_
