#include "client/cli.h"

#include <grpc/support/log.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "client/commands.h"
#include "client/output.h"
#include "client/progress.h"
#include "model/common/status.h"

namespace wfm::client {
namespace {

constexpr char kExitPayload[] = "type.wfm.dev/wfm.cli.ExitCode";

constexpr char kFooter[] = R"(Exit status: 0 success, 1 local failure (files), 2 bad usage, 3 training
job FAILED or CANCELLED, 4 server not SERVING, 10 + gRPC code for errors the
server returned (13 INVALID_ARGUMENT, 15 NOT_FOUND, 24 UNAVAILABLE, ...).
Environment: WFM_SERVER (default for --server), WFM_TOKEN (bearer token).)";

// gRPC's own log lines (e.g. "E1128 ... Handshake failed") would add a second
// line to every error; the failure reaches the user as the call's status.
// Setting GRPC_VERBOSITY keeps gRPC's logging for debugging.
void DropGrpcLog(gpr_log_func_args*) {}

absl::Status HealthCommand(CliContext& context, const std::string& service, bool json) {
  WFM_ASSIGN_OR_RETURN(Client * client, context.client());
  WFM_ASSIGN_OR_RETURN(const HealthStatus status, client->CheckHealth(service));
  const std::string name(HealthStatusName(status));
  if (json) {
    PrintJson({{"server", context.global.server}, {"service", service}, {"status", name}});
  } else {
    std::printf("%s: %s\n", context.global.server.c_str(), name.c_str());
  }
  if (status != HealthStatus::kServing) {
    return WithExitCode(absl::UnavailableError(absl::StrCat(
                            "the server at ", context.global.server, " reports ", name,
                            service.empty() ? "" : absl::StrCat(" for ", service))),
                        kExitNotServing);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status WithExitCode(absl::Status status, int code) {
  status.SetPayload(kExitPayload, absl::Cord(absl::StrCat(code)));
  return status;
}

int ExitCodeFor(const absl::Status& status) {
  if (status.ok()) return kExitOk;
  if (const absl::optional<absl::Cord> code = status.GetPayload(kExitPayload)) {
    int value = kExitFailure;
    if (absl::SimpleAtoi(std::string(*code), &value)) return value;
  }
  if (IsRpcError(status)) return kExitRpcBase + static_cast<int>(status.code());
  return kExitFailure;
}

std::string ErrorLine(const absl::Status& status, const std::string& server) {
  std::string message(status.message());
  message = absl::StrReplaceAll(message, {{"\r\n", " | "}, {"\n", " | "}, {"\r", " | "}});
  const std::string code = absl::StatusCodeToString(status.code());
  if (message.empty()) message = code;
  if (!IsRpcError(status)) return message;
  const std::string method = RpcMethod(status);
  switch (status.code()) {
    case absl::StatusCode::kUnavailable:
      return absl::StrCat("cannot reach the wfm server at ", server, ": ", message,
                          " (UNAVAILABLE from ", method, ")");
    case absl::StatusCode::kUnauthenticated:
      return absl::StrCat(message, " (UNAUTHENTICATED from ", method,
                          "; pass --token or --token-file, or set WFM_TOKEN)");
    case absl::StatusCode::kDeadlineExceeded:
      // The server's queue timeout (wfm sample --queue-timeout), not the call's deadline.
      if (absl::StartsWith(message, "queue_timeout_seconds:")) {
        return absl::StrCat(message, " (DEADLINE_EXCEEDED from ", method, "; see --queue-timeout)");
      }
      return absl::StrCat(message, " (DEADLINE_EXCEEDED: ", method,
                          " took longer than its deadline; see --timeout)");
    default:
      return absl::StrCat(message, " (", code, " from ", method, ")");
  }
}

absl::StatusOr<Client*> CliContext::client() {
  if (client_ != nullptr) return client_.get();
  ClientOptions options;
  options.server = global.server;
  if (!global.token.empty()) {
    options.token = global.token;
  } else if (!global.token_file.empty()) {
    std::ifstream in(global.token_file);
    if (!in) return absl::NotFoundError(absl::StrCat("--token-file ", global.token_file, ": cannot open"));
    std::stringstream text;
    text << in.rdbuf();
    options.token = std::string(absl::StripAsciiWhitespace(text.str()));
    if (options.token.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("--token-file ", global.token_file, ": empty"));
    }
  } else if (const char* env = std::getenv("WFM_TOKEN")) {
    options.token = std::string(absl::StripAsciiWhitespace(env));
  }
  options.tls = global.tls;
  options.tls_ca_file = global.tls_ca;
  options.tls_cert_file = global.tls_cert;
  options.tls_key_file = global.tls_key;
  options.tls_server_name = global.tls_server_name;
  if (global.timeout > 0) options.deadlines.unary = global.timeout;
  WFM_ASSIGN_OR_RETURN(client_, Client::Connect(options));
  return client_.get();
}

bool CliContext::interactive() const { return ProgressLine::StderrIsTerminal(); }

std::string Extension(const std::string& path) {
  const size_t slash = path.rfind('/');
  const size_t dot = path.rfind('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return "";
  return absl::AsciiStrToLower(path.substr(dot));
}

void PrintJson(const nlohmann::json& json) {
  std::cout << json.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
}

absl::StatusOr<v1::TrainingJob> FollowJob(Client& client, const std::string& id, bool interactive,
                                          bool quiet) {
  ProgressLine line(stderr, interactive, quiet);
  v1::TrainingJob last;
  absl::StatusOr<v1::TrainingJob> watched =
      client.WatchTrainingJob(id, [&](const v1::TrainingJob& job) {
        line.Update(FormatJobProgress(job), IsTerminal(job.state()));
      });
  if (!watched.ok()) {
    // Streams that break (a proxy's idle timeout, a server restart) are
    // followed by polling; real errors (NOT_FOUND, ...) are returned.
    if (watched.status().code() != absl::StatusCode::kUnavailable &&
        watched.status().code() != absl::StatusCode::kInternal) {
      return watched.status();
    }
  } else {
    last = *watched;
  }
  while (!watched.ok() || !IsTerminal(last.state())) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    WFM_ASSIGN_OR_RETURN(last, client.GetTrainingJob(id));
    line.Update(FormatJobProgress(last), IsTerminal(last.state()));
    watched = last;
  }
  line.Finish(FormatJobProgress(last));
  return last;
}

absl::Status JobOutcome(const v1::TrainingJob& job) {
  if (job.state() == v1::SUCCEEDED) return absl::OkStatus();
  std::string message = absl::StrCat("training job ", job.id(), " (model ", job.model(), ") ended ",
                                     JobStateName(job.state()), " at step ", job.step(), "/",
                                     job.total_steps());
  if (!job.error().empty()) absl::StrAppend(&message, ": ", job.error());
  return WithExitCode(absl::AbortedError(message), kExitJobFailed);
}

int RunCli(int argc, char** argv) {
  if (std::getenv("GRPC_VERBOSITY") == nullptr) gpr_set_log_function(DropGrpcLog);
  CliContext context;
  GlobalOptions& g = context.global;
  CLI::App app("wfm: train and sample Wasserstein Flow Matching models on a wfm server", "wfm");
  app.require_subcommand(1);
  app.fallthrough();
  app.footer(kFooter);
  app.set_version_flag("--version", "wfm 0.1.0");
  app.add_option("--server", g.server,
                 "wfm server: host:port, a gRPC target (dns:///NAME:PORT balances over every "
                 "address of the name) or a comma-separated list of IP:PORT addresses; calls "
                 "are spread round-robin")
      ->envname("WFM_SERVER")
      ->capture_default_str();
  CLI::Option* token = app.add_option("--token", g.token, "bearer token (also: env WFM_TOKEN)");
  app.add_option("--token-file", g.token_file, "file holding the bearer token")
      ->excludes(token);
  app.add_option("--tls-ca", g.tls_ca, "PEM file of the CA that signed the server's certificate (turns TLS on)");
  app.add_flag("--tls", g.tls, "TLS with the system's root certificates");
  app.add_option("--tls-cert", g.tls_cert, "client certificate (PEM) for servers that require one");
  app.add_option("--tls-key", g.tls_key, "client certificate's private key (PEM)");
  app.add_option("--tls-server-name", g.tls_server_name,
                 "name to check the server's certificate against (default: the host)");
  app.add_option("--timeout", g.timeout, "deadline of short calls in seconds (default 30)")
      ->check(CLI::PositiveNumber);
  app.add_flag("-q,--quiet", g.quiet, "no progress display");

  CLI::App* health = app.add_subcommand("health", "exit 0 when the server reports SERVING");
  auto health_service = std::make_shared<std::string>(kServiceName);
  auto health_json = std::make_shared<bool>(false);
  health->add_option("--service", *health_service,
                     "health service name ('' = the whole server)")
      ->capture_default_str();
  health->add_flag("--json", *health_json, "print one JSON document");
  health->callback([&context, health_service, health_json] {
    context.action = [&context, health_service, health_json] {
      return HealthCommand(context, *health_service, *health_json);
    };
  });

  AddDataCommands(app, context);
  AddTrainCommands(app, context);
  AddSampleCommands(app, context);
  AddDemoCommand(app, context);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    std::string message = absl::StrReplaceAll(e.what(), {{"\n", " "}});
    // "wfm frobnicate": CLI11 reports the missing subcommand; name the word.
    const std::vector<std::string> rest = app.remaining();
    if (app.get_subcommands().empty() && !rest.empty() && rest.front().rfind("-", 0) != 0) {
      message = absl::StrCat("unknown command '", rest.front(), "'");
    }
    std::fprintf(stderr, "wfm: error: %s (see wfm --help)\n", message.c_str());
    return kExitUsage;
  }
  if (!context.action) {
    std::fprintf(stderr, "wfm: error: no command given (see wfm --help)\n");
    return kExitUsage;
  }
  absl::Status status;
  try {
    status = context.action();
  } catch (const std::exception& e) {
    status = absl::InternalError(absl::StrCat("unexpected failure: ", e.what()));
  }
  if (status.ok()) return kExitOk;
  std::fflush(stdout);
  std::fprintf(stderr, "wfm: error: %s\n", ErrorLine(status, g.server).c_str());
  return ExitCodeFor(status);
}

}  // namespace wfm::client
