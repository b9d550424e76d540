// Internals of the `wfm` tool shared by its command files (cmd_*.cc): the
// global options, the lazily connected client, and the registration of each
// group of commands on the CLI11 app.
#ifndef WFM_CLIENT_COMMANDS_H_
#define WFM_CLIENT_COMMANDS_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/client.h"

namespace wfm::client {

struct GlobalOptions {
  std::string server = "localhost:50051";
  std::string token;
  std::string token_file;
  std::string tls_ca;
  std::string tls_cert;
  std::string tls_key;
  std::string tls_server_name;
  bool tls = false;
  double timeout = 0;  // seconds for unary calls; 0 = the default
  bool quiet = false;  // no progress display
};

// Shared by every command: the options and the action chosen by parsing.
class CliContext {
 public:
  GlobalOptions global;
  // Set by the chosen subcommand's callback; run after parsing.
  std::function<absl::Status()> action;

  // The client for `global`, connected on first use (token from --token,
  // --token-file or WFM_TOKEN).
  absl::StatusOr<Client*> client();
  // Whether progress lines are drawn in place (stderr is a terminal).
  bool interactive() const;

 private:
  std::unique_ptr<Client> client_;
};

// Adds an option that sets `out` only when given (unset = the server's
// default).
template <typename T>
CLI::Option* AddOptional(CLI::App* app, const std::string& name, std::optional<T>* out,
                         const std::string& description) {
  return app->add_option_function<T>(name, [out](const T& value) { *out = value; }, description);
}

// The command groups (cmd_data.cc, cmd_train.cc, cmd_sample.cc, cmd_demo.cc).
void AddDataCommands(CLI::App& app, CliContext& context);    // health upload datasets delete-dataset
void AddTrainCommands(CLI::App& app, CliContext& context);   // train watch cancel jobs models delete-model
void AddSampleCommands(CLI::App& app, CliContext& context);  // sample evaluate
void AddDemoCommand(CLI::App& app, CliContext& context);     // demo

// Follows a training job until it ends: a progress line on stderr (unless
// quiet), then the final state. Uses WatchTrainingJob and falls back to
// polling GetTrainingJob once a second if the stream ends early.
absl::StatusOr<v1::TrainingJob> FollowJob(Client& client, const std::string& id, bool interactive,
                                          bool quiet);
// OK for SUCCEEDED; FAILED or CANCELLED: an error that exits with
// kExitJobFailed, naming the job and the server's error text.
absl::Status JobOutcome(const v1::TrainingJob& job);

// Lower-case extension of `path` including the dot (".npz"), "" without one.
std::string Extension(const std::string& path);
// Prints a JSON document (2-space indent) and a newline on stdout.
void PrintJson(const nlohmann::json& json);

}  // namespace wfm::client

#endif  // WFM_CLIENT_COMMANDS_H_
