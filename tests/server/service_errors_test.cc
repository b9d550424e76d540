// Every error path, one test per status code: the right code, a message
// naming the field, and a server that keeps serving afterwards.
#include <chrono>
#include <limits>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/server/test_server.h"

namespace wfm::testing {
namespace {

using ::testing::HasSubstr;

class ErrorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<TestServer>(SmallRequestLimits);
    ASSERT_TRUE(server_->Start().ok());
    stub_ = server_->Stub();
  }

  // Uploads and trains a small point-cloud model "m" on data set "d".
  void TrainModel() {
    ASSERT_TRUE(Upload(*stub_, Header("d", pb::POINT_CLOUDS, 2), CloudChunks(Ellipses(6, 1), 6)).ok());
    ASSERT_EQ(Train(*stub_, "d", "m", TinyConfig(pb::FAMILY_POINTCLOUD, 5)).state(), pb::SUCCEEDED);
  }

  // The server answers a plain call afterwards.
  void ExpectServing() {
    pb::ListDatasetsResponse reply;
    EXPECT_TRUE(Call(*stub_, &pb::WfmService::Stub::ListDatasets, {}, &reply).ok());
  }

  std::unique_ptr<TestServer> server_;
  std::unique_ptr<pb::WfmService::Stub> stub_;
};

TEST_F(ErrorsTest, InvalidArgumentNamesTheItemAndField) {
  model::io::PointCloudSet set = Ellipses(6, 1);
  set.points[(set.offsets[3] + 2) * 2] = std::numeric_limits<float>::quiet_NaN();
  grpc::Status nan = Upload(*stub_, Header("nan", pb::POINT_CLOUDS, 2), CloudChunks(set, 2));
  EXPECT_EQ(nan.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(nan.error_message(), "clouds[3].points: NaN at point 2");

  pb::UploadDatasetRequest bad_shape;
  bad_shape.mutable_clouds()->add_sizes(3);
  bad_shape.mutable_clouds()->add_points(1.0f);
  grpc::Status shape = Upload(*stub_, Header("shape", pb::POINT_CLOUDS, 2), {bad_shape});
  EXPECT_EQ(shape.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(shape.error_message(), HasSubstr("points holds 1 values"));

  pb::UploadDatasetRequest coords;
  coords.mutable_cells()->add_features(1.0f);
  coords.mutable_cells()->add_coords(1.0f);
  grpc::Status cells = Upload(*stub_, Header("cells", pb::SPATIAL_CELLS, 1), {coords});
  EXPECT_THAT(cells.error_message(), HasSubstr("coords must be [cells, 2]"));

  grpc::Status name = Upload(*stub_, Header("../escape", pb::POINT_CLOUDS, 2), {});
  EXPECT_EQ(name.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(name.error_message(), HasSubstr("header.name"));

  grpc::Status kind = Upload(*stub_, Header("k", pb::DATASET_KIND_UNSPECIFIED, 2), {});
  EXPECT_THAT(kind.error_message(), HasSubstr("header.kind"));

  TrainModel();
  pb::SampleNichesRequest steps = NicheRequest("m", 1, 5, 1, -3);
  EXPECT_THAT(SampleNiches(*stub_, steps).status.error_message(), HasSubstr("steps"));
  pb::SampleNichesRequest label = NicheRequest("m", 1, 5, 1);
  label.set_label("cat");
  Niches labelled = SampleNiches(*stub_, label);
  EXPECT_EQ(labelled.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(labelled.status.error_message(), HasSubstr("label"));
  EXPECT_EQ(SampleNiches(*stub_, NicheRequest("m", 0, 5, 1)).status.error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  pb::StartTrainingRequest start;
  start.set_dataset("d");
  start.set_model("m2");
  *start.mutable_config() = TinyConfig(pb::FAMILY_POINTCLOUD, 5);
  start.mutable_config()->mutable_network()->set_width(15);
  pb::TrainingJob job;
  grpc::ClientContext context;
  grpc::Status width = stub_->StartTraining(&context, start, &job);
  EXPECT_EQ(width.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(width.error_message(), HasSubstr("width"));
  start.mutable_config()->set_family(pb::FAMILY_UNSPECIFIED);
  grpc::ClientContext context2;
  EXPECT_THAT(stub_->StartTraining(&context2, start, &job).error_message(),
              HasSubstr("config.family"));
  ExpectServing();
}

TEST_F(ErrorsTest, NotFoundForUnknownNames) {
  pb::Dataset d;
  grpc::Status s = CallNamed(*stub_, &pb::WfmService::Stub::GetDataset, "nope", &d);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(s.error_message(), HasSubstr("nope"));
  pb::ModelInfo m;
  EXPECT_EQ(CallNamed(*stub_, &pb::WfmService::Stub::GetModel, "nope", &m).error_code(),
            grpc::StatusCode::NOT_FOUND);
  pb::TrainingJob j;
  EXPECT_EQ(GetTrainingJob(*stub_, "job-404", &j).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(
      StartTraining(*stub_, "nope", "m", TinyConfig(pb::FAMILY_POINTCLOUD, 5), &j).error_code(),
      grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(SampleNiches(*stub_, NicheRequest("nope", 1, 5, 1)).status.error_code(),
            grpc::StatusCode::NOT_FOUND);
  ExpectServing();
}

TEST_F(ErrorsTest, AlreadyExistsWithoutOverwrite) {
  const auto chunks = CloudChunks(Ellipses(4, 1), 4);
  ASSERT_TRUE(Upload(*stub_, Header("twice", pb::POINT_CLOUDS, 2), chunks).ok());
  grpc::Status again = Upload(*stub_, Header("twice", pb::POINT_CLOUDS, 2), chunks);
  EXPECT_EQ(again.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_THAT(again.error_message(), HasSubstr("overwrite"));
  pb::DatasetHeader overwrite = Header("twice", pb::POINT_CLOUDS, 2);
  overwrite.set_overwrite(true);
  EXPECT_TRUE(Upload(*stub_, overwrite, chunks).ok());
  ExpectServing();
}

TEST_F(ErrorsTest, ResourceExhaustedBeyondTheLimits) {
  TrainModel();
  Niches many = SampleNiches(*stub_, NicheRequest("m", 17, 5, 1));
  EXPECT_EQ(many.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(many.status.error_message(), HasSubstr("num_samples"));
  Niches points = SampleNiches(*stub_, NicheRequest("m", 1, 65, 1));
  EXPECT_EQ(points.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(points.status.error_message(), HasSubstr("points"));
  grpc::Status big =
      Upload(*stub_, Header("big", pb::POINT_CLOUDS, 2), CloudChunks(Ellipses(600, 1), 50));
  EXPECT_EQ(big.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(big.error_message(), HasSubstr("--max-upload-bytes"));
  ExpectServing();
  EXPECT_TRUE(SampleNiches(*stub_, NicheRequest("m", 16, 64, 1)).status.ok());
}

TEST_F(ErrorsTest, FailedPreconditionForTheWrongState) {
  TrainModel();
  pb::ListTrainingJobsResponse jobs;
  ASSERT_TRUE(Call(*stub_, &pb::WfmService::Stub::ListTrainingJobs, {}, &jobs).ok());
  ASSERT_EQ(jobs.jobs_size(), 1);
  pb::CancelTrainingJobRequest cancel;
  cancel.set_id(jobs.jobs(0).id());
  pb::TrainingJob job;
  grpc::ClientContext c1;
  grpc::Status ended = stub_->CancelTrainingJob(&c1, cancel, &job);
  EXPECT_EQ(ended.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(ended.error_message(), HasSubstr("SUCCEEDED"));

  pb::SampleGaussiansRequest gaussians;
  gaussians.set_model("m");
  gaussians.set_num_samples(1);
  pb::SampleGaussiansResponse reply;
  grpc::ClientContext c2;
  EXPECT_EQ(stub_->SampleGaussians(&c2, gaussians, &reply).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);

  pb::EvaluateRequest eval;
  eval.set_model("m");
  eval.set_dataset("d");
  eval.set_split("heldout");
  pb::EvaluateResponse result;
  grpc::ClientContext c3;
  grpc::Status heldout = stub_->Evaluate(&c3, eval, &result);
  EXPECT_EQ(heldout.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(heldout.error_message(), HasSubstr("held nothing out"));
  ExpectServing();
}

TEST_F(ErrorsTest, DeadlineExceededStopsALongSample) {
  TrainModel();
  Niches late = SampleNiches(*stub_, NicheRequest("m", 16, 64, 1, 10000), [](grpc::ClientContext& c) {
    c.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
  });
  EXPECT_EQ(late.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  // The work stopped: a new request is served well within its own deadline.
  Niches next = SampleNiches(*stub_, NicheRequest("m", 1, 5, 2), [](grpc::ClientContext& c) {
    c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  });
  EXPECT_TRUE(next.status.ok()) << next.status.error_message();
}

}  // namespace
}  // namespace wfm::testing
