// Progress display on stderr for long commands (train --watch, watch,
// uploads, sampling). On a terminal one line is redrawn in place (at most
// ~10 times a second); otherwise (logs, CI, tests) a plain line is printed
// when the message changes, at most every `log_interval` seconds, plus the
// final one.
#ifndef WFM_CLIENT_PROGRESS_H_
#define WFM_CLIENT_PROGRESS_H_

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

#include "absl/strings/string_view.h"
#include "wfm/v1/types.pb.h"

namespace wfm::client {

// "7s", "1m05s", "2h03m"; "?" for negative or non-finite values.
std::string FormatDuration(double seconds);
// "[#########.........]" of `width` cells for done/total (empty when total <= 0).
std::string Bar(int64_t done, int64_t total, int width);
// One line for a training job update, e.g.
// "RUNNING [######......] 120/300 loss 0.1234  15.2 steps/s  ETA 12s".
std::string FormatJobProgress(const v1::TrainingJob& job, int bar_width = 24);
// "QUEUED", "RUNNING", ... ("UNKNOWN" for unset).
std::string JobStateName(v1::JobState state);
bool IsTerminal(v1::JobState state);

class ProgressLine {
 public:
  // `interactive`: redraw in place (stderr is a terminal). `quiet`: print
  // nothing at all.
  ProgressLine(std::FILE* out, bool interactive, bool quiet = false, double log_interval = 2.0);
  ~ProgressLine();  // Finish() with the last message when not finished

  // Shows `message`; rate-limited unless `force`.
  void Update(absl::string_view message, bool force = false);
  // Shows `message` (or the last one) as the final line and ends it.
  void Finish(absl::string_view message = {});

  // Whether stderr is a terminal (and TERM is not "dumb").
  static bool StderrIsTerminal();

 private:
  std::FILE* out_;
  bool interactive_, quiet_;
  double log_interval_;
  bool finished_ = false;
  bool drawn_ = false;
  std::string last_, last_printed_;
  size_t last_width_ = 0;
  std::chrono::steady_clock::time_point last_time_{};
};

}  // namespace wfm::client

#endif  // WFM_CLIENT_PROGRESS_H_
