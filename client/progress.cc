#include "client/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace wfm::client {

std::string FormatDuration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const int64_t s = static_cast<int64_t>(std::llround(seconds));
  if (s < 60) return absl::StrCat(s, "s");
  if (s < 3600) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  return absl::StrFormat("%dh%02dm", s / 3600, (s % 3600) / 60);
}

std::string Bar(int64_t done, int64_t total, int width) {
  if (total <= 0 || width <= 0) return "";
  const double frac = std::clamp(static_cast<double>(done) / static_cast<double>(total), 0.0, 1.0);
  const int filled = static_cast<int>(std::floor(frac * width));
  return absl::StrCat("[", std::string(filled, '#'), std::string(width - filled, '.'), "]");
}

std::string JobStateName(v1::JobState state) {
  const std::string& name = v1::JobState_Name(state);
  return state == v1::JOB_STATE_UNSPECIFIED || name.empty() ? "UNKNOWN" : name;
}

bool IsTerminal(v1::JobState state) {
  return state == v1::SUCCEEDED || state == v1::FAILED || state == v1::CANCELLED;
}

std::string FormatJobProgress(const v1::TrainingJob& job, int bar_width) {
  std::string line = absl::StrFormat("%-9s", JobStateName(job.state()));
  if (job.total_steps() > 0) {
    absl::StrAppend(&line, " ", Bar(job.step(), job.total_steps(), bar_width), " ", job.step(),
                    "/", job.total_steps());
  } else {
    absl::StrAppend(&line, " step ", job.step());
  }
  if (job.step() > 0) absl::StrAppend(&line, absl::StrFormat("  loss %.4g", job.loss()));
  if (job.steps_per_second() > 0) {
    absl::StrAppend(&line, absl::StrFormat("  %.1f steps/s", job.steps_per_second()));
  }
  if (job.state() == v1::RUNNING || job.state() == v1::QUEUED) {
    double eta = job.eta_seconds();
    if (eta <= 0 && job.steps_per_second() > 0 && job.total_steps() > job.step()) {
      eta = static_cast<double>(job.total_steps() - job.step()) / job.steps_per_second();
    }
    if (eta > 0) absl::StrAppend(&line, "  ETA ", FormatDuration(eta));
  }
  return line;
}

bool ProgressLine::StderrIsTerminal() {
  const char* term = std::getenv("TERM");
  return isatty(STDERR_FILENO) == 1 && !(term != nullptr && std::string(term) == "dumb");
}

ProgressLine::ProgressLine(std::FILE* out, bool interactive, bool quiet, double log_interval)
    : out_(out), interactive_(interactive), quiet_(quiet), log_interval_(log_interval) {}

ProgressLine::~ProgressLine() {
  if (!finished_ && drawn_) Finish();
}

void ProgressLine::Update(absl::string_view message, bool force) {
  if (quiet_ || finished_) return;
  last_ = std::string(message);
  const auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - last_time_).count();
  if (interactive_) {
    if (!force && drawn_ && since < 0.1) return;
    const size_t width = last_.size();
    std::fprintf(out_, "\r%s%s", last_.c_str(),
                 width < last_width_ ? std::string(last_width_ - width, ' ').c_str() : "");
    std::fflush(out_);
    last_width_ = width;
  } else {
    if (last_ == last_printed_) return;
    if (!force && drawn_ && since < log_interval_) return;
    std::fprintf(out_, "%s\n", last_.c_str());
    std::fflush(out_);
    last_printed_ = last_;
  }
  drawn_ = true;
  last_time_ = now;
}

void ProgressLine::Finish(absl::string_view message) {
  if (quiet_ || finished_) return;
  if (!message.empty()) last_ = std::string(message);
  finished_ = true;
  if (last_.empty()) return;
  if (interactive_) {
    const size_t width = last_.size();
    std::fprintf(out_, "\r%s%s\n", last_.c_str(),
                 width < last_width_ ? std::string(last_width_ - width, ' ').c_str() : "");
  } else if (last_ != last_printed_ || !drawn_) {
    std::fprintf(out_, "%s\n", last_.c_str());
  }
  std::fflush(out_);
}

}  // namespace wfm::client
