// What the tool prints: JSON from protos, tables, durations, job progress
// lines and the progress display (client/output.h, client/progress.h).
#include "client/output.h"

#include <algorithm>
#include <cstdio>
#include <string>

#include "client/progress.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace wfm::client {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(ProtoToJsonTest, TypedFieldsAndPresence) {
  v1::TrainingJob job;
  job.set_id("j-1");
  job.set_state(v1::RUNNING);
  job.set_step(int64_t{1} << 40);
  job.set_loss(0.25);
  job.set_steps_per_second(std::numeric_limits<double>::quiet_NaN());
  job.mutable_config()->mutable_optimizer()->set_steps(300);
  const nlohmann::json j = ProtoToJson(job);
  EXPECT_EQ(j["id"], "j-1");
  EXPECT_EQ(j["state"], "RUNNING");
  ASSERT_TRUE(j["step"].is_number_integer());  // not a string, unlike proto3 JSON
  EXPECT_EQ(j["step"].get<int64_t>(), int64_t{1} << 40);
  EXPECT_EQ(j["loss"], 0.25);
  EXPECT_TRUE(j["steps_per_second"].is_null());  // NaN has no JSON form
  EXPECT_EQ(j["error"], "");                      // every field present
  EXPECT_EQ(j["config"]["optimizer"]["steps"], 300);
  EXPECT_TRUE(j["config"]["optimizer"]["batch_size"].is_null());  // unset optional
  EXPECT_TRUE(j["config"]["network"].is_null());                  // unset message
  EXPECT_EQ(j["config"]["family"], "FAMILY_UNSPECIFIED");

  v1::Dataset d;
  d.add_label_names("a");
  d.add_label_names("b");
  const nlohmann::json dj = ProtoToJson(d);
  EXPECT_EQ(dj["label_names"], nlohmann::json::array({"a", "b"}));
  // Round trip through text.
  EXPECT_EQ(nlohmann::json::parse(dj.dump()), dj);
}

TEST(TableTest, ColumnsAlign) {
  const std::string t = RenderTable({"NAME", "N"}, {{"alpha", "3"}, {"b", "1234"}}, {false, true});
  EXPECT_EQ(t,
            "NAME      N\n"
            "alpha     3\n"
            "b      1234\n");
  // Multi-byte UTF-8 counts as one column.
  const std::string u = RenderTable({"A", "B"}, {{"β", "x"}, {"ab", "y"}});
  EXPECT_EQ(u, "A   B\nβ   x\nab  y\n");
}

TEST(TableTest, ListTables) {
  v1::Dataset d;
  d.set_name("shapes");
  d.set_kind(v1::POINT_CLOUDS);
  d.set_dim(2);
  d.set_items(600);
  d.set_min_size(48);
  d.set_max_size(64);
  d.set_label_type(v1::LABEL_TYPE_DISCRETE);
  for (const char* l : {"cross", "ring", "square", "star", "tri"}) d.add_label_names(l);
  d.set_size_bytes(3 << 20);
  const std::string t = DatasetsTable({d});
  EXPECT_THAT(t, HasSubstr("shapes"));
  EXPECT_THAT(t, HasSubstr("POINT_CLOUDS"));
  EXPECT_THAT(t, HasSubstr("48-64"));
  EXPECT_THAT(t, HasSubstr("5 (cross,ring,square,star,…)"));
  EXPECT_THAT(t, HasSubstr("3.0 MB"));

  v1::TrainingJob job;
  job.set_id("job-7");
  job.set_state(v1::FAILED);
  job.set_error("out of memory");
  EXPECT_THAT(JobsTable({job}), HasSubstr("FAILED"));
  EXPECT_THAT(JobsTable({job}), HasSubstr("out of memory"));

  // A model with three versions, the second pinned.
  v1::ModelInfo m;
  m.set_name("niche");
  m.set_version(2);
  m.set_serving_version(2);
  m.set_pinned_version(2);
  for (int v = 1; v <= 3; ++v) {
    v1::ModelVersion* version = m.add_versions();
    version->set_version(v);
    version->set_dataset("cells");
  }
  m.mutable_versions(2)->set_init_from_model("base");
  m.mutable_versions(2)->set_init_from_version(4);
  EXPECT_THAT(ModelsTable({m}), HasSubstr("2 (pinned) of 3"));
  const std::string versions = VersionsTable(m);
  EXPECT_THAT(versions, HasSubstr("serving (pinned)"));
  EXPECT_THAT(versions, HasSubstr("base:4"));
  EXPECT_EQ(std::count(versions.begin(), versions.end(), '\n'), 4);  // header + 3 rows

  v1::EvaluateResponse e;
  e.set_family(v1::FAMILY_POINTCLOUD);
  e.mutable_chamfer()->set_one_nna(0.625);
  const std::string text = EvaluationText(e);
  EXPECT_THAT(text, HasSubstr("chamfer"));
  EXPECT_THAT(text, HasSubstr("0.6250"));
  EXPECT_THAT(text, Not(HasSubstr("emd")));
}

TEST(FormatTest, BytesAndDurations) {
  EXPECT_EQ(FormatBytes(512), "512 B");
  EXPECT_EQ(FormatBytes(1536), "1.5 KB");
  EXPECT_EQ(FormatBytes(int64_t{5} << 30), "5.0 GB");
  EXPECT_EQ(FormatDuration(7.4), "7s");
  EXPECT_EQ(FormatDuration(65), "1m05s");
  EXPECT_EQ(FormatDuration(7380), "2h03m");
  EXPECT_EQ(FormatDuration(-1), "?");
  EXPECT_EQ(Bar(5, 10, 10), "[#####.....]");
  EXPECT_EQ(Bar(20, 10, 4), "[####]");
  EXPECT_EQ(Bar(1, 0, 4), "");
  EXPECT_EQ(FormatUnixMs(0), "-");
}

TEST(FormatTest, JobProgressLine) {
  v1::TrainingJob job;
  job.set_state(v1::RUNNING);
  job.set_step(120);
  job.set_total_steps(300);
  job.set_loss(0.123456);
  job.set_steps_per_second(15.2);
  const std::string line = FormatJobProgress(job, 10);
  EXPECT_THAT(line, HasSubstr("RUNNING"));
  EXPECT_THAT(line, HasSubstr("[####......] 120/300"));
  EXPECT_THAT(line, HasSubstr("loss 0.1235"));
  EXPECT_THAT(line, HasSubstr("15.2 steps/s"));
  // ETA from the rate when the server sends none: 180 / 15.2 = 11.8 s.
  EXPECT_THAT(line, HasSubstr("ETA 12s"));
  job.set_state(v1::SUCCEEDED);
  EXPECT_THAT(FormatJobProgress(job), Not(HasSubstr("ETA")));
  EXPECT_TRUE(IsTerminal(v1::CANCELLED));
  EXPECT_FALSE(IsTerminal(v1::QUEUED));
}

std::string Captured(std::FILE* f) {
  std::fflush(f);
  std::rewind(f);
  std::string text;
  char buffer[256];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), f)) > 0) text.append(buffer, n);
  return text;
}

TEST(ProgressLineTest, LogModePrintsChangesAtMostEveryInterval) {
  std::FILE* f = std::tmpfile();
  {
    ProgressLine line(f, /*interactive=*/false, /*quiet=*/false, /*log_interval=*/3600);
    line.Update("step 1");
    line.Update("step 2");  // within the interval: not printed
    line.Update("step 3", /*force=*/true);
    line.Update("step 3", /*force=*/true);  // unchanged: not printed again
    line.Update("step 4");
  }  // destructor: the last message as the final line
  EXPECT_EQ(Captured(f), "step 1\nstep 3\nstep 4\n");
  std::fclose(f);
}

TEST(ProgressLineTest, InteractiveModeRedrawsInPlace) {
  std::FILE* f = std::tmpfile();
  ProgressLine line(f, /*interactive=*/true);
  line.Update("long message", true);
  line.Update("short", true);
  line.Finish("done");
  EXPECT_EQ(Captured(f), "\rlong message\rshort       \rdone \n");
  std::fclose(f);
}

TEST(ProgressLineTest, QuietPrintsNothing) {
  std::FILE* f = std::tmpfile();
  {
    ProgressLine line(f, false, /*quiet=*/true);
    line.Update("x", true);
    line.Finish("y");
  }
  EXPECT_EQ(Captured(f), "");
  std::fclose(f);
}

}  // namespace
}  // namespace wfm::client
