// With --auth-token-file, the wfm-server binary refuses a call without a
// valid token when its headers arrive, before any request message is read
// or parsed: raw bytes that are no protobuf message come back
// UNAUTHENTICATED (with the token: INTERNAL, the parser's failure, so the
// token check did come first), and a large unauthenticated message leaves
// the server's peak resident memory (VmHWM) far below the message's size,
// where reading it (as the same message with the token is read) raises the
// peak by about that much. Health checking
// stays open; rejections are counted in wfm_rpc_requests_total.
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <future>
#include <string>

#include <gtest/gtest.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/support/byte_buffer.h>

#include "absl/strings/str_cat.h"
#include "tests/server/client_util.h"
#include "tests/testing/connected.h"
#include "tests/testing/http.h"
#include "tests/testing/server_process.h"
#include "tests/testing/temp_dir.h"

namespace wfm::testing {
namespace {

constexpr char kToken[] = "correct-horse-battery";
constexpr char kListDatasets[] = "/wfm.v1.WfmService/ListDatasets";

// A unary call of `method` whose request is `bytes` as they are (not
// necessarily a protobuf message), with the token when one is given.
grpc::Status RawCall(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                     const std::string& bytes, const std::string& token = "") {
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(2));
  if (!token.empty()) context.AddMetadata("authorization", std::string("Bearer ") + token);
  grpc::Slice slice(bytes);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&context, method, grpc::StubOptions(), &request, &response,
                 [&done](grpc::Status status) { done.set_value(std::move(status)); });
  return done.get_future().get();
}

class AuthBeforeReadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string token_file = dir_.path() + "/token";
    std::ofstream(token_file) << kToken << "\n";
    ServerProcessOptions options;
    options.data_dir = dir_.path() + "/data";
    options.extra_flags = {"--auth-token-file", token_file};
    // Under AddressSanitizer freed memory waits in a quarantine and keeps
    // adding to the peak; without it the peak is what is held at once, as
    // in a release build (the option is ignored there).
    const char* asan = std::getenv("ASAN_OPTIONS");
    options.env["ASAN_OPTIONS"] =
        absl::StrCat(asan != nullptr ? asan : "", asan != nullptr ? ":" : "", "quarantine_size_mb=0");
    server_ = std::make_unique<ChildServer>(options);
    ASSERT_FALSE(server_->WaitReady().empty()) << server_->Log();
    channel_ = Connected(server_->Channel());
  }

  TempDir dir_;
  std::unique_ptr<ChildServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(AuthBeforeReadTest, RawBytesWithoutATokenAreRefusedBeforeTheyAreParsed) {
  const std::string garbage(1024, '\xff');  // no valid protobuf message
  const grpc::Status without = RawCall(channel_, kListDatasets, garbage);
  EXPECT_EQ(without.error_code(), grpc::StatusCode::UNAUTHENTICATED) << without.error_message();
  const grpc::Status wrong = RawCall(channel_, kListDatasets, garbage, "correct-horse");
  EXPECT_EQ(wrong.error_code(), grpc::StatusCode::UNAUTHENTICATED) << wrong.error_message();
  EXPECT_EQ(wrong.error_message().find("correct-horse"), std::string::npos);
  // With the token the same bytes reach the parser, which refuses them.
  const grpc::Status with = RawCall(channel_, kListDatasets, garbage, kToken);
  EXPECT_NE(with.error_code(), grpc::StatusCode::UNAUTHENTICATED) << with.error_message();
  EXPECT_NE(with.error_code(), grpc::StatusCode::OK);
  // A well-formed call with the token succeeds; health checking is open.
  EXPECT_TRUE(RawCall(channel_, kListDatasets, "", kToken).ok());
  EXPECT_EQ(HealthStatus(channel_, "wfm.v1.WfmService"), 1);
  // Refusals are counted per method and code.
  const std::string& address = server_->metrics_address();
  const auto [code, metrics] = HttpGet(std::stoi(address.substr(address.rfind(':') + 1)), "/metrics");
  ASSERT_EQ(code, 200);
  EXPECT_EQ(MetricValue(metrics, "wfm_rpc_requests_total",
                        {{"method", "ListDatasets"}, {"code", "UNAUTHENTICATED"}}),
            2);
}

TEST_F(AuthBeforeReadTest, ALargeMessageWithoutATokenIsNotRead) {
  constexpr int64_t kMessageBytes = int64_t{60} << 20;  // below the 64 MiB receive limit
  const std::string large(kMessageBytes, '\x01');
  const auto peak_bytes = [this] {
    const std::optional<int64_t> kib = server_->ProcStatusKiB("VmHWM");
    EXPECT_TRUE(kib.has_value());
    return kib.value_or(0) * 1024;
  };
  const int64_t start = peak_bytes();
  for (int i = 0; i < 3; ++i) {
    const grpc::Status status = RawCall(channel_, kListDatasets, large);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << status.error_message();
  }
  const int64_t refused = peak_bytes();
  // Reading one such message would raise the peak by at least its size; a
  // refusal at the headers costs only the transport's socket reads (gRPC
  // reads in chunks of up to 4 MiB whatever the message: about 8 MiB here,
  // the same for 1 and 60 MiB messages).
  EXPECT_LT(refused - start, kMessageBytes / 2) << "VmHWM " << start << " -> " << refused << " bytes";
  // The control: with the token the same message is read whole before the
  // parser refuses it, and the peak does rise by about its size (less what
  // the refused calls already raised it by).
  const grpc::Status with = RawCall(channel_, kListDatasets, large, kToken);
  EXPECT_EQ(with.error_code(), grpc::StatusCode::INTERNAL) << with.error_message();
  const int64_t read = peak_bytes();
  EXPECT_GE(read - refused, kMessageBytes / 2) << "VmHWM " << refused << " -> " << read << " bytes";
  // The server still serves callers with the token.
  EXPECT_TRUE(RawCall(channel_, kListDatasets, "", kToken).ok());
}

}  // namespace
}  // namespace wfm::testing
