// Restarts: data sets, models and job records survive; with
// --resume-interrupted-jobs=false a job interrupted by the server's death is
// reported FAILED as README describes (resumption: job_manager_test and the
// crash tests).
#include <filesystem>
#include <fstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/server/test_server.h"

namespace wfm::testing {
namespace {

TEST(RestartTest, DatasetsModelsAndJobsSurvive) {
  TestServer server;
  ASSERT_TRUE(server.Start().ok());
  Niches before;
  std::string job_id;
  {
    auto stub = server.Stub();
    ASSERT_TRUE(Upload(*stub, Header("d", pb::POINT_CLOUDS, 2), CloudChunks(Ellipses(6, 1), 3)).ok());
    ASSERT_TRUE(Upload(*stub, Header("g", pb::GAUSSIANS, 2), GaussianChunks(RandomGaussians(8, 2, 1), 8)).ok());
    const pb::TrainingJob job = Train(*stub, "d", "m", TinyConfig(pb::FAMILY_POINTCLOUD, 8));
    ASSERT_EQ(job.state(), pb::SUCCEEDED);
    job_id = job.id();
    before = SampleNiches(*stub, NicheRequest("m", 2, 6, 11));
    ASSERT_TRUE(before.status.ok());
  }
  server.Stop();

  // A job that was running when the server died (its record says RUNNING).
  const std::string jobs = server.options().data_dir + "/jobs";
  std::ifstream in(jobs + "/" + job_id + ".json");
  nlohmann::json record = nlohmann::json::parse(in);
  record["id"] = "job-5";
  record["state"] = "RUNNING";
  record["step"] = 3;
  record["request"]["model"] = "m-next";
  std::ofstream(jobs + "/job-5.json") << record.dump();

  server.options().resume_interrupted_jobs = false;
  ASSERT_TRUE(server.Start().ok());
  EXPECT_NE(server.app().ready_line().find("1 models, 2 data sets"), std::string::npos)
      << server.app().ready_line();
  auto stub = server.Stub();
  pb::ListDatasetsResponse datasets;
  ASSERT_TRUE(Call(*stub, &pb::WfmService::Stub::ListDatasets, {}, &datasets).ok());
  ASSERT_EQ(datasets.datasets_size(), 2);
  EXPECT_EQ(datasets.datasets(0).name(), "d");
  EXPECT_EQ(datasets.datasets(1).name(), "g");
  EXPECT_EQ(datasets.datasets(1).kind(), pb::GAUSSIANS);
  // The reloaded model samples exactly as before.
  const Niches after = SampleNiches(*stub, NicheRequest("m", 2, 6, 11));
  ASSERT_TRUE(after.status.ok());
  EXPECT_EQ(after.points, before.points);

  pb::ListTrainingJobsResponse list;
  ASSERT_TRUE(Call(*stub, &pb::WfmService::Stub::ListTrainingJobs, {}, &list).ok());
  ASSERT_EQ(list.jobs_size(), 2);
  EXPECT_EQ(list.jobs(0).id(), job_id);
  EXPECT_EQ(list.jobs(0).state(), pb::SUCCEEDED);
  EXPECT_EQ(list.jobs(1).id(), "job-5");
  EXPECT_EQ(list.jobs(1).state(), pb::FAILED);
  EXPECT_EQ(list.jobs(1).error(), "interrupted by a server restart at step 3");
}

TEST(RestartTest, ACorruptModelFolderIsSkipped) {
  TestServer server;
  ASSERT_TRUE(server.Start().ok());
  {
    auto stub = server.Stub();
    ASSERT_TRUE(Upload(*stub, Header("d", pb::POINT_CLOUDS, 2), CloudChunks(Ellipses(6, 1), 3)).ok());
    ASSERT_EQ(Train(*stub, "d", "ok", TinyConfig(pb::FAMILY_POINTCLOUD, 3)).state(), pb::SUCCEEDED);
    ASSERT_EQ(Train(*stub, "d", "broken", TinyConfig(pb::FAMILY_POINTCLOUD, 3)).state(), pb::SUCCEEDED);
  }
  server.Stop();
  std::filesystem::resize_file(server.options().data_dir + "/models/broken/1/model.wfm", 1000);
  ASSERT_TRUE(server.Start().ok());
  auto stub = server.Stub();
  pb::ListModelsResponse models;
  ASSERT_TRUE(Call(*stub, &pb::WfmService::Stub::ListModels, {}, &models).ok());
  ASSERT_EQ(models.models_size(), 1);
  EXPECT_EQ(models.models(0).name(), "ok");
}

}  // namespace
}  // namespace wfm::testing
