// The bad-input catalogue: one table of malformed requests across every RPC
// of wfm.v1.WfmService, each with the status code and the part of the
// message that names the field and the rule. After every case the server
// must still serve (health SERVING, a plain RPC succeeds), and at the end the
// data folder must hold exactly what it held before the catalogue ran: no
// data set, model, job record or temporary file from a refused request.
#include <chrono>
#include <cmath>
#include <filesystem>
#include <functional>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/server/test_server.h"

namespace wfm::testing {
namespace {

using ::testing::HasSubstr;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr double kNaNd = std::numeric_limits<double>::quiet_NaN();
constexpr double kInfd = std::numeric_limits<double>::infinity();

// ------------------------------------------------------------ messages

pb::UploadDatasetRequest CloudMsg(const std::vector<int64_t>& sizes, const std::vector<float>& points,
                                  const std::vector<std::string>& labels = {},
                                  const std::vector<float>& conditions = {}) {
  pb::UploadDatasetRequest m;
  pb::PointCloudChunk* c = m.mutable_clouds();
  for (int64_t s : sizes) c->add_sizes(s);
  for (float p : points) c->add_points(p);
  for (const auto& l : labels) c->add_labels(l);
  for (float v : conditions) c->add_conditions(v);
  return m;
}

// One triangle in 2D, valid for a POINT_CLOUDS upload of dim 2.
pb::UploadDatasetRequest Triangle(const std::vector<std::string>& labels = {}) {
  return CloudMsg({3}, {0, 0, 1, 0, 0, 1}, labels);
}

pb::UploadDatasetRequest GaussianMsg(const std::vector<double>& means,
                                     const std::vector<double>& covs,
                                     const std::vector<std::string>& labels = {},
                                     const std::vector<float>& conditions = {}) {
  pb::UploadDatasetRequest m;
  pb::GaussianChunk* g = m.mutable_gaussians();
  for (double v : means) g->add_means(v);
  for (double v : covs) g->add_covs(v);
  for (const auto& l : labels) g->add_labels(l);
  for (float v : conditions) g->add_conditions(v);
  return m;
}

pb::UploadDatasetRequest CellMsg(const std::vector<float>& features, const std::vector<float>& coords,
                                 const std::vector<std::string>& sample_ids = {},
                                 const std::vector<std::string>& labels = {},
                                 const std::vector<float>& conditions = {}) {
  pb::UploadDatasetRequest m;
  pb::CellChunk* c = m.mutable_cells();
  for (float v : features) c->add_features(v);
  for (float v : coords) c->add_coords(v);
  for (const auto& s : sample_ids) c->add_sample_ids(s);
  for (const auto& l : labels) c->add_labels(l);
  for (float v : conditions) c->add_conditions(v);
  return m;
}

// A continuous header of condition_dim 3 whose columns are a categorical
// "type" (T, B) and a numeric "age", as `wfm upload --condition-key` sends
// them; `edit` then breaks one rule.
void EncodedConditions(pb::DatasetHeader& h) {
  h.set_label_type(pb::LABEL_TYPE_CONTINUOUS);
  h.set_condition_dim(3);
  pb::ConditionColumn* type = h.add_condition_columns();
  type->set_name("type");
  type->set_kind(pb::CONDITION_KIND_CATEGORICAL);
  type->add_categories("T");
  type->add_categories("B");
  type->set_width(2);
  pb::ConditionColumn* age = h.add_condition_columns();
  age->set_name("age");
  age->set_kind(pb::CONDITION_KIND_NUMERIC);
  age->set_width(1);
  age->set_offset(2);
}

pb::UploadDatasetRequest HeaderMsg(const pb::DatasetHeader& header) {
  pb::UploadDatasetRequest m;
  *m.mutable_header() = header;
  return m;
}

std::chrono::system_clock::time_point Deadline() {
  return std::chrono::system_clock::now() + std::chrono::seconds(60);
}

// Streams exactly `messages` (no header added).
grpc::Status UploadRaw(pb::WfmService::Stub& stub, const std::vector<pb::UploadDatasetRequest>& messages) {
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  pb::Dataset reply;
  auto writer = stub.UploadDataset(&context, &reply);
  for (const auto& m : messages) {
    if (!writer->Write(m)) break;
  }
  writer->WritesDone();
  return writer->Finish();
}

// The unary and server-streaming calls, each with a deadline.
struct Calls {
  pb::WfmService::Stub* stub;

  grpc::Status Up(const pb::DatasetHeader& header,
                  const std::vector<pb::UploadDatasetRequest>& chunks) const {
    return Upload(*stub, header, chunks, nullptr,
                  [](grpc::ClientContext& c) { c.set_deadline(Deadline()); });
  }
  grpc::Status GetDataset(const std::string& name) const {
    grpc::ClientContext c;
    c.set_deadline(Deadline());
    pb::GetDatasetRequest r;
    r.set_name(name);
    pb::Dataset reply;
    return stub->GetDataset(&c, r, &reply);
  }
  grpc::Status DeleteDataset(const std::string& name) const {
    grpc::ClientContext c;
    c.set_deadline(Deadline());
    pb::DeleteDatasetRequest r;
    r.set_name(name);
    pb::DeleteDatasetResponse reply;
    return stub->DeleteDataset(&c, r, &reply);
  }
  grpc::Status Start(const pb::StartTrainingRequest& r) const {
    grpc::ClientContext c;
    c.set_deadline(Deadline());
    pb::TrainingJob reply;
    return stub->StartTraining(&c, r, &reply);
  }
  grpc::Status GetJob(const std::string& id) const {
    grpc::ClientContext c;
    c.set_deadline(Deadline());
    pb::GetTrainingJobRequest r;
    r.set_id(id);
    pb::TrainingJob reply;
    return stub->GetTrainingJob(&c, r, &reply);
  }
  grpc::Status CancelJob(const std::string& id) const {
    grpc::ClientContext c;
    c.set_deadline(Deadline());
    pb::CancelTrainingJobRequest r;
    r.set_id(id);
    pb::TrainingJob reply;
    return stub->CancelTrainingJob(&c, r, &reply);
  }
  grpc::Status WatchJob(const std::string& id) const {
    grpc::Status status;
    (void)Watch(*stub, id, &status);
    return status;
  }
  grpc::Status GetModel(const std::string& name, int64_t version = 0) const {
    grpc::ClientContext c;
    c.set_deadline(Deadline());
    pb::GetModelRequest r;
    r.set_name(name);
    r.set_version(version);
    pb::ModelInfo reply;
    return stub->GetModel(&c, r, &reply);
  }
  grpc::Status DeleteModel(const std::string& name, int64_t version = 0) const {
    grpc::ClientContext c;
    c.set_deadline(Deadline());
    pb::DeleteModelRequest r;
    r.set_name(name);
    r.set_version(version);
    pb::DeleteModelResponse reply;
    return stub->DeleteModel(&c, r, &reply);
  }
  grpc::Status UpdateModel(const std::function<void(pb::UpdateModelRequest&)>& f) const {
    grpc::ClientContext c;
    c.set_deadline(Deadline());
    pb::UpdateModelRequest r;
    r.set_name("pcm");
    f(r);
    pb::ModelInfo reply;
    return stub->UpdateModel(&c, r, &reply);
  }
  grpc::Status Niches(const pb::SampleNichesRequest& r) const {
    return SampleNiches(*stub, r, [](grpc::ClientContext& c) { c.set_deadline(Deadline()); })
        .status;
  }
  grpc::Status Gaussians(const pb::SampleGaussiansRequest& r) const {
    grpc::ClientContext c;
    c.set_deadline(Deadline());
    pb::SampleGaussiansResponse reply;
    return stub->SampleGaussians(&c, r, &reply);
  }
  grpc::Status Evaluate(const pb::EvaluateRequest& r) const {
    grpc::ClientContext c;
    c.set_deadline(Deadline());
    pb::EvaluateResponse reply;
    return stub->Evaluate(&c, r, &reply);
  }
};

// ------------------------------------------------------------ requests

// A valid training request for a tiny model on `dataset`.
pb::StartTrainingRequest Training(const std::string& dataset, const std::string& model,
                                  pb::Family family) {
  pb::StartTrainingRequest r;
  r.set_dataset(dataset);
  r.set_model(model);
  *r.mutable_config() = TinyConfig(family, 5);
  return r;
}
pb::StartTrainingRequest CloudTraining() { return Training("pc", "fresh", pb::FAMILY_POINTCLOUD); }
pb::StartTrainingRequest GaussTraining() { return Training("gs", "fresh", pb::FAMILY_GAUSSIAN); }

pb::SampleGaussiansRequest GaussSample(const std::string& model, int64_t num) {
  pb::SampleGaussiansRequest r;
  r.set_model(model);
  r.set_num_samples(num);
  r.set_steps(5);
  r.set_seed(1);
  return r;
}

pb::EvaluateRequest Eval(const std::string& model, const std::string& dataset) {
  pb::EvaluateRequest r;
  r.set_model(model);
  r.set_dataset(dataset);
  r.set_num_samples(4);
  r.set_steps(5);
  r.set_seed(1);
  return r;
}

// Every path below `root`, relative, folders with a trailing '/'.
std::set<std::string> Tree(const std::string& root) {
  std::set<std::string> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(root)) {
    std::string rel = std::filesystem::relative(e.path(), root).string();
    if (e.is_directory()) rel += "/";
    out.insert(rel);
  }
  return out;
}

struct Case {
  std::string name;
  std::function<grpc::Status()> call;
  grpc::StatusCode code;
  std::string message;  // a part of the message naming the field and the rule
};

class BadInputCatalogueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<TestServer>(SmallRequestLimits);
    ASSERT_TRUE(server_->Start().ok());
    stub_ = server_->Stub();
    // The valid things the malformed requests refer to.
    ASSERT_TRUE(Upload(*stub_, Header("pc", pb::POINT_CLOUDS, 2, pb::LABEL_TYPE_DISCRETE),
                       CloudChunks(Ellipses(8, 1, /*labelled=*/true), 4))
                    .ok());
    ASSERT_TRUE(Upload(*stub_, Header("gs", pb::GAUSSIANS, 2, pb::LABEL_TYPE_DISCRETE),
                       GaussianChunks(RandomGaussians(12, 2, 1, /*labelled=*/true), 6))
                    .ok());
    ASSERT_TRUE(Upload(*stub_, Header("cells", pb::SPATIAL_CELLS, 3, pb::LABEL_TYPE_DISCRETE),
                       CellChunks(RandomCells(2, 12, 3, 1), 12))
                    .ok());
    // Cells with condition vectors (type one-hot, age) and a Gaussian model
    // of their niches conditioned on them.
    pb::DatasetHeader conditioned = Header("ccells", pb::SPATIAL_CELLS, 3);
    EncodedConditions(conditioned);
    std::vector<pb::UploadDatasetRequest> conditioned_cells =
        CellChunks(RandomCells(2, 12, 3, 2), 24);
    for (int64_t i = 0; i < 24; ++i) {
      pb::CellChunk* chunk = conditioned_cells[0].mutable_cells();
      chunk->clear_labels();
      for (float v : {i % 2 == 0 ? 1.0f : 0.0f, i % 2 == 0 ? 0.0f : 1.0f, 20.0f + i}) {
        chunk->add_conditions(v);
      }
    }
    ASSERT_EQ(conditioned_cells.size(), 1u);
    ASSERT_TRUE(Upload(*stub_, conditioned, conditioned_cells).ok());
    ASSERT_EQ(Train(*stub_, "ccells", "gcm", TinyConfig(pb::FAMILY_GAUSSIAN, 5)).state(),
              pb::SUCCEEDED);
    ASSERT_EQ(Train(*stub_, "pc", "pcm", TinyConfig(pb::FAMILY_POINTCLOUD, 5)).state(), pb::SUCCEEDED);
    const pb::TrainingJob gaussian = Train(*stub_, "gs", "gm", TinyConfig(pb::FAMILY_GAUSSIAN, 5));
    ASSERT_EQ(gaussian.state(), pb::SUCCEEDED);
    done_job_ = gaussian.id();
  }

  bool Serving() {
    if (HealthStatus(server_->Channel(), "wfm.v1.WfmService") != 1) return false;
    grpc::ClientContext context;
    context.set_deadline(Deadline());
    pb::ListDatasetsResponse reply;
    return stub_->ListDatasets(&context, {}, &reply).ok() && reply.datasets_size() == 4;
  }

  std::vector<Case> Catalogue();

  std::unique_ptr<TestServer> server_;
  std::unique_ptr<pb::WfmService::Stub> stub_;
  std::string done_job_;
};

std::vector<Case> BadInputCatalogueTest::Catalogue() {
  const Calls x{stub_.get()};
  const auto kInvalid = grpc::StatusCode::INVALID_ARGUMENT;
  const auto kNotFound = grpc::StatusCode::NOT_FOUND;
  const auto kExhausted = grpc::StatusCode::RESOURCE_EXHAUSTED;
  const auto kPrecondition = grpc::StatusCode::FAILED_PRECONDITION;
  const auto kExists = grpc::StatusCode::ALREADY_EXISTS;
  const auto clouds = [](const std::string& name) { return Header(name, pb::POINT_CLOUDS, 2); };
  const auto gaussians = [](const std::string& name) { return Header(name, pb::GAUSSIANS, 2); };
  const auto cells = [](const std::string& name) { return Header(name, pb::SPATIAL_CELLS, 2); };
  const auto with = [](pb::DatasetHeader h, const std::function<void(pb::DatasetHeader&)>& f) {
    f(h);
    return h;
  };
  const auto train = [x](pb::StartTrainingRequest r,
                         const std::function<void(pb::StartTrainingRequest&)>& f) {
    return [x, r, f]() mutable {
      f(r);
      return x.Start(r);
    };
  };
  // A cell upload with EncodedConditions, one rule broken by `f`, and the
  // conditions of two cells (six values unless given).
  const auto encoded = [x](const std::function<void(pb::DatasetHeader&)>& f,
                           std::vector<float> conditions = {1, 0, 30, 0, 1, 70}) {
    return [x, f, conditions]() {
      pb::DatasetHeader h = Header("c", pb::SPATIAL_CELLS, 2);
      EncodedConditions(h);
      f(h);
      return x.Up(h, {CellMsg({1, 2, 3, 4}, {0, 0, 1, 1}, {}, {}, conditions)});
    };
  };
  const auto niches = [x](const std::function<void(pb::SampleNichesRequest&)>& f) {
    return [x, f]() {
      pb::SampleNichesRequest r = NicheRequest("pcm", 2, 5, 1, 5);
      f(r);
      return x.Niches(r);
    };
  };
  const auto sample_gaussians = [x](const std::function<void(pb::SampleGaussiansRequest&)>& f) {
    return [x, f]() {
      pb::SampleGaussiansRequest r = GaussSample("gm", 2);
      f(r);
      return x.Gaussians(r);
    };
  };
  const auto evaluate = [x](const std::function<void(pb::EvaluateRequest&)>& f) {
    return [x, f]() {
      pb::EvaluateRequest r = Eval("pcm", "pc");
      f(r);
      return x.Evaluate(r);
    };
  };
  const std::vector<double> spd = {1.0, 0.2, 0.2, 1.0};
  const std::string long_name(65, 'a');

  return {
      // ---------------------------------------------------- UploadDataset: stream shape
      {"upload_empty_stream", [x] { return UploadRaw(*x.stub, {}); }, kInvalid,
       "upload: the stream ended before the header"},
      {"upload_chunk_before_header", [x] { return UploadRaw(*x.stub, {Triangle()}); }, kInvalid,
       "upload: the first message must be the header"},
      {"upload_second_header",
       [x, clouds] { return UploadRaw(*x.stub, {HeaderMsg(clouds("two")), HeaderMsg(clouds("two"))}); },
       kInvalid, "message 1 is a second header"},
      {"upload_message_without_payload",
       [x, clouds] { return UploadRaw(*x.stub, {HeaderMsg(clouds("empty")), {}}); }, kInvalid,
       "message 1 carries no payload"},
      // ---------------------------------------------------- UploadDataset: names
      {"name_empty", [x, clouds] { return x.Up(clouds(""), {Triangle()}); }, kInvalid,
       "header.name: a name is required"},
      {"name_with_slash", [x, clouds] { return x.Up(clouds("a/b"), {Triangle()}); }, kInvalid,
       "header.name: name may only hold letters, digits, '.', '_' and '-' (found '/')"},
      {"name_dotdot", [x, clouds] { return x.Up(clouds(".."), {Triangle()}); }, kInvalid,
       "header.name: name '..' is reserved"},
      {"name_dot", [x, clouds] { return x.Up(clouds("."), {Triangle()}); }, kInvalid,
       "header.name: name '.' is reserved"},
      {"name_parent_path", [x, clouds] { return x.Up(clouds("../escape"), {Triangle()}); },
       kInvalid, "header.name: name may only hold"},
      {"name_absolute_path", [x, clouds] { return x.Up(clouds("/tmp/escape"), {Triangle()}); },
       kInvalid, "(found '/')"},
      {"name_newline", [x, clouds] { return x.Up(clouds("a\nb"), {Triangle()}); }, kInvalid,
       "header.name: name may only hold letters, digits, '.', '_' and '-' (found byte 0xa)"},
      {"name_nul_byte", [x, clouds] { return x.Up(clouds(std::string("a\0b", 3)), {Triangle()}); },
       kInvalid, "(found byte 0x0)"},
      {"name_escape_sequence", [x, clouds] { return x.Up(clouds("a\x1b[31m"), {Triangle()}); },
       kInvalid, "(found byte 0x1b)"},
      {"name_65_chars", [x, clouds, long_name] { return x.Up(clouds(long_name), {Triangle()}); },
       kInvalid, "header.name: name is 65 characters long, the limit is 64"},
      {"name_space", [x, clouds] { return x.Up(clouds("a b"), {Triangle()}); }, kInvalid,
       "(found ' ')"},
      {"name_taken_without_overwrite", [x, clouds] { return x.Up(clouds("pc"), {Triangle()}); },
       kExists, "header.name: data set 'pc' already exists (set overwrite to replace it)"},
      // ---------------------------------------------------- UploadDataset: header fields
      {"kind_unspecified",
       [x] { return x.Up(Header("k", pb::DATASET_KIND_UNSPECIFIED, 2), {Triangle()}); }, kInvalid,
       "header.kind: required"},
      {"kind_unknown_enum_value",
       [x] { return x.Up(Header("k", static_cast<pb::DatasetKind>(42), 2), {Triangle()}); },
       kInvalid, "header.kind: required"},
      {"label_type_unknown_enum_value",
       [x, clouds, with] {
         return x.Up(with(clouds("l"), [](auto& h) { h.set_label_type(static_cast<pb::LabelType>(9)); }),
                     {Triangle()});
       },
       kInvalid, "header.label_type: unknown value 9"},
      {"dim_zero", [x] { return x.Up(Header("z", pb::POINT_CLOUDS, 0), {Triangle()}); }, kInvalid,
       "header.dim: must be in [1, "},
      {"dim_negative", [x] { return x.Up(Header("z", pb::SPATIAL_CELLS, -4), {}); }, kInvalid,
       "header.dim: must be in [1, "},
      {"gaussian_dim_too_large", [x] { return x.Up(Header("z", pb::GAUSSIANS, 513), {}); },
       kInvalid, "header.dim: must be in [1, 512] for GAUSSIANS, got 513"},
      {"gaussians_continuous_without_condition_dim",
       [x, gaussians, with] {
         return x.Up(
             with(gaussians("c"), [](auto& h) { h.set_label_type(pb::LABEL_TYPE_CONTINUOUS); }),
             {});
       },
       kInvalid, "header.condition_dim: must be in [1, "},
      {"continuous_without_condition_dim",
       [x, clouds, with] {
         return x.Up(with(clouds("c"), [](auto& h) { h.set_label_type(pb::LABEL_TYPE_CONTINUOUS); }),
                     {Triangle()});
       },
       kInvalid, "header.condition_dim: must be in [1, "},
      {"condition_dim_without_continuous",
       [x, clouds, with] { return x.Up(with(clouds("c"), [](auto& h) { h.set_condition_dim(3); }), {Triangle()}); },
       kInvalid, "header.condition_dim: only meaningful with label_type continuous"},
      {"description_too_long",
       [x, clouds, with] {
         return x.Up(with(clouds("c"), [](auto& h) { h.set_description(std::string(5000, 'x')); }),
                     {Triangle()});
       },
       kInvalid, "header.description: 5000 bytes, the limit is 4096"},
      {"feature_names_count_not_dim",
       [x, clouds, with] {
         return x.Up(with(clouds("c"), [](auto& h) { h.add_feature_names("x"); }), {Triangle()});
       },
       kInvalid, "header.feature_names: 1 names for dim 2; give one per dimension or none"},
      {"feature_name_empty",
       [x, clouds, with] {
         return x.Up(with(clouds("c"),
                          [](auto& h) {
                            h.add_feature_names("x");
                            h.add_feature_names("");
                          }),
                     {Triangle()});
       },
       kInvalid, "header.feature_names[1]: empty"},
      {"feature_name_too_long",
       [x, clouds, with] {
         return x.Up(with(clouds("c"),
                          [](auto& h) {
                            h.add_feature_names(std::string(257, 'g'));
                            h.add_feature_names("y");
                          }),
                     {Triangle()});
       },
       kInvalid, "header.feature_names[0]: 257 bytes, the limit is 256"},
      {"feature_names_repeated",
       [x, clouds, with] {
         return x.Up(with(clouds("c"),
                          [](auto& h) {
                            h.add_feature_names("g1");
                            h.add_feature_names("g1");
                          }),
                     {Triangle()});
       },
       kInvalid, "header.feature_names[1]: 'g1' repeats header.feature_names[0]; names must be unique"},
      // ---------------------------------------------------- UploadDataset: point clouds
      {"clouds_none_after_header", [x, clouds] { return x.Up(clouds("none"), {}); }, kInvalid,
       "upload: no clouds received after the header"},
      {"clouds_zero_size_cloud",
       [x, clouds] { return x.Up(clouds("zero"), {CloudMsg({3, 0}, {0, 0, 1, 0, 0, 1})}); },
       kInvalid, "clouds[1].size: must be >= 1, got 0"},
      {"clouds_negative_size",
       [x, clouds] { return x.Up(clouds("neg"), {Triangle(), CloudMsg({-2}, {})}); }, kInvalid,
       "clouds[1].size: must be >= 1, got -2"},
      {"clouds_empty_chunk", [x, clouds] { return x.Up(clouds("empty"), {CloudMsg({}, {1, 2})}); },
       kInvalid, "chunk 0: points holds 2 values, but the sizes of its 0 clouds need 0"},
      {"clouds_points_shorter_than_sizes",
       [x, clouds] { return x.Up(clouds("short"), {CloudMsg({3}, {0, 0, 1, 0})}); }, kInvalid,
       "chunk 0: points holds 4 values, but the sizes of its 1 clouds need more"},
      {"clouds_points_not_multiple_of_dim",
       [x, clouds] { return x.Up(clouds("odd"), {CloudMsg({2}, {0, 0, 1, 0, 5})}); }, kInvalid,
       "chunk 0: points holds 5 values"},
      {"clouds_nan_point",
       [x, clouds] { return x.Up(clouds("nan"), {Triangle(), CloudMsg({3}, {0, 0, 1, 0, kNaN, 1})}); },
       kInvalid, "clouds[1].points: NaN at point 2"},
      {"clouds_inf_point",
       [x, clouds] { return x.Up(clouds("inf"), {CloudMsg({3}, {0, -kInf, 1, 0, 0, 1})}); },
       kInvalid, "clouds[0].points: infinity at point 0"},
      {"clouds_labels_without_label_type",
       [x, clouds] { return x.Up(clouds("lab"), {Triangle({"a"})}); }, kInvalid,
       "chunk 0: labels given but the header's label_type is none"},
      {"clouds_discrete_labels_missing",
       [x] { return x.Up(Header("lab", pb::POINT_CLOUDS, 2, pb::LABEL_TYPE_DISCRETE), {Triangle()}); },
       kInvalid, "chunk 0: 0 labels for 1 clouds (label_type discrete needs one per item)"},
      {"clouds_discrete_label_empty",
       [x] { return x.Up(Header("lab", pb::POINT_CLOUDS, 2, pb::LABEL_TYPE_DISCRETE), {Triangle({""})}); },
       kInvalid, "clouds[0].label: empty"},
      {"clouds_label_too_long",
       [x] {
         return x.Up(Header("lab", pb::POINT_CLOUDS, 2, pb::LABEL_TYPE_DISCRETE),
                     {Triangle({std::string(300, 'l')})});
       },
       kInvalid, "clouds[0].label: 300 bytes, the limit is 256"},
      {"clouds_conditions_for_discrete_labels",
       [x] {
         return x.Up(Header("lab", pb::POINT_CLOUDS, 2, pb::LABEL_TYPE_DISCRETE),
                     {CloudMsg({3}, {0, 0, 1, 0, 0, 1}, {"a"}, {0.5f})});
       },
       kInvalid, "chunk 0: conditions given but the header's label_type is discrete"},
      {"clouds_labels_for_continuous",
       [x, clouds, with] {
         return x.Up(with(clouds("cont"),
                          [](auto& h) {
                            h.set_label_type(pb::LABEL_TYPE_CONTINUOUS);
                            h.set_condition_dim(2);
                          }),
                     {CloudMsg({3}, {0, 0, 1, 0, 0, 1}, {"a"}, {0.5f, 0.5f})});
       },
       kInvalid, "chunk 0: labels given but the header's label_type is continuous"},
      {"clouds_conditions_wrong_shape",
       [x, clouds, with] {
         return x.Up(with(clouds("cont"),
                          [](auto& h) {
                            h.set_label_type(pb::LABEL_TYPE_CONTINUOUS);
                            h.set_condition_dim(2);
                          }),
                     {CloudMsg({3}, {0, 0, 1, 0, 0, 1}, {}, {0.5f})});
       },
       kInvalid, "chunk 0: conditions holds 1 values for 1 clouds of condition_dim 2"},
      {"clouds_nan_condition",
       [x, clouds, with] {
         return x.Up(with(clouds("cont"),
                          [](auto& h) {
                            h.set_label_type(pb::LABEL_TYPE_CONTINUOUS);
                            h.set_condition_dim(2);
                          }),
                     {CloudMsg({3}, {0, 0, 1, 0, 0, 1}, {}, {0.5f, kNaN})});
       },
       kInvalid, "clouds[0].condition: NaN at index 1"},
      {"clouds_gaussian_chunk_in_cloud_upload",
       [x, clouds, spd] { return x.Up(clouds("mixed"), {Triangle(), GaussianMsg({0, 0}, spd)}); },
       kInvalid, "chunk 1: a gaussians chunk in a POINT_CLOUDS upload"},
      {"clouds_over_upload_limit",
       [x, clouds] { return x.Up(clouds("big"), CloudChunks(Ellipses(600, 1), 50)); }, kExhausted,
       "the data set exceeds the server's limit of 65536 bytes (--max-upload-bytes)"},
      {"clouds_message_over_64MiB",
       [x, clouds] {
         pb::UploadDatasetRequest huge;
         huge.mutable_clouds()->add_sizes(int64_t{17} << 20);
         huge.mutable_clouds()->mutable_points()->Resize(34 << 20, 0.0f);
         return x.Up(clouds("huge"), {huge});
       },
       kExhausted, "larger than max"},
      // ---------------------------------------------------- UploadDataset: Gaussians
      {"gaussians_none_after_header", [x, gaussians] { return x.Up(gaussians("none"), {}); },
       kInvalid, "upload: no Gaussians received after the header"},
      {"gaussians_means_not_multiple_of_dim",
       [x, gaussians, spd] { return x.Up(gaussians("g"), {GaussianMsg({0, 0, 1}, spd)}); },
       kInvalid, "chunk 0: means holds 3 values, not a multiple of dim 2"},
      {"gaussians_covs_wrong_shape",
       [x, gaussians] { return x.Up(gaussians("g"), {GaussianMsg({0, 0}, {1, 0, 1})}); }, kInvalid,
       "chunk 0: covs holds 3 values for 1 Gaussians of dim 2 (need n x dim x dim = 4)"},
      {"gaussians_nan_mean",
       [x, gaussians, spd] { return x.Up(gaussians("g"), {GaussianMsg({0, kNaNd}, spd)}); },
       kInvalid, "gaussians[0].mean: NaN at index 1"},
      {"gaussians_inf_cov",
       [x, gaussians, spd] {
         return x.Up(gaussians("g"), {GaussianMsg({0, 0}, spd), GaussianMsg({0, 0}, {1, 0, 0, kInfd})});
       },
       kInvalid, "gaussians[1].cov: infinity at [1, 1]"},
      {"gaussians_non_symmetric_cov",
       [x, gaussians] { return x.Up(gaussians("g"), {GaussianMsg({0, 0}, {1, 0.5, 0.1, 1})}); },
       kInvalid, "gaussians[0].cov: not symmetric ([0, 1] = 0.5, [1, 0] = 0.1)"},
      {"gaussians_indefinite_cov",
       [x, gaussians] { return x.Up(gaussians("g"), {GaussianMsg({0, 0}, {1, 2, 2, 1})}); },
       kInvalid, "gaussians[0].cov: not positive definite"},
      {"gaussians_zero_cov",
       [x, gaussians] { return x.Up(gaussians("g"), {GaussianMsg({0, 0}, {0, 0, 0, 0})}); },
       kInvalid, "gaussians[0].cov: not positive definite"},
      {"gaussians_negative_definite_cov",
       [x, gaussians] {
         return x.Up(gaussians("g"), {GaussianMsg({0, 0, 1, 1}, {1, 0.2, 0.2, 1, -1, 0, 0, -1})});
       },
       kInvalid, "gaussians[1].cov: not positive definite"},
      {"gaussians_labels_without_label_type",
       [x, gaussians, spd] { return x.Up(gaussians("g"), {GaussianMsg({0, 0}, spd, {"a"})}); },
       kInvalid, "chunk 0: labels given but the header's label_type is none"},
      {"gaussians_conditions_without_label_type",
       [x, gaussians, spd] { return x.Up(gaussians("g"), {GaussianMsg({0, 0}, spd, {}, {1})}); },
       kInvalid, "chunk 0: conditions given but the header's label_type is none"},
      {"gaussians_conditions_wrong_length",
       [x, gaussians, spd] {
         pb::DatasetHeader h = gaussians("g");
         EncodedConditions(h);
         return x.Up(h, {GaussianMsg({0, 0}, spd, {}, {1, 0})});
       },
       kInvalid,
       "chunk 0: conditions holds 2 values for 1 gaussians of condition_dim 3 (need gaussians x "
       "condition_dim)"},
      {"gaussians_nan_condition",
       [x, gaussians, spd] {
         pb::DatasetHeader h = gaussians("g");
         EncodedConditions(h);
         return x.Up(h, {GaussianMsg({0, 0}, spd, {}, {1, 0, 30}),
                         GaussianMsg({0, 0}, spd, {}, {0, kNaN, 70})});
       },
       kInvalid, "gaussians[1].condition: NaN at index 1"},
      {"gaussians_condition_columns_inconsistent",
       [x, gaussians, spd] {
         pb::DatasetHeader h = gaussians("g");
         EncodedConditions(h);
         h.set_condition_dim(4);
         return x.Up(h, {GaussianMsg({0, 0}, spd, {}, {1, 0, 30, 0})});
       },
       kInvalid, "header.condition_columns: the widths add up to 3, not condition_dim 4"},
      {"gaussians_cloud_chunk_in_gaussian_upload",
       [x, gaussians] { return x.Up(gaussians("g"), {Triangle()}); }, kInvalid,
       "chunk 0: a clouds chunk in a GAUSSIANS upload"},
      // ---------------------------------------------------- UploadDataset: spatial cells
      {"cells_none_after_header", [x, cells] { return x.Up(cells("none"), {}); }, kInvalid,
       "upload: no cells received after the header"},
      {"cells_features_not_multiple_of_dim",
       [x, cells] { return x.Up(cells("c"), {CellMsg({1, 2, 3}, {0, 0})}); }, kInvalid,
       "chunk 0: features holds 3 values, not a multiple of dim 2"},
      {"cells_coords_not_2d",
       [x, cells] { return x.Up(cells("c"), {CellMsg({1, 2, 3, 4}, {0, 0, 1, 1, 2, 2})}); },
       kInvalid, "chunk 0: coords holds 6 values for 2 cells; coords must be [cells, 2]"},
      {"cells_nan_feature",
       [x, cells] { return x.Up(cells("c"), {CellMsg({1, 2, kNaN, 4}, {0, 0, 1, 1})}); }, kInvalid,
       "cells[1].features: NaN at feature 0"},
      {"cells_inf_coord",
       [x, cells] { return x.Up(cells("c"), {CellMsg({1, 2, 3, 4}, {0, 0, 1, kInf})}); }, kInvalid,
       "cells[1].coords: infinity at index 1"},
      {"cells_sample_ids_count",
       [x, cells] { return x.Up(cells("c"), {CellMsg({1, 2, 3, 4}, {0, 0, 1, 1}, {"s0"})}); },
       kInvalid, "chunk 0: 1 sample_ids for 2 cells (one per cell, or none)"},
      {"cells_sample_ids_in_some_chunks",
       [x, cells] {
         return x.Up(cells("c"), {CellMsg({1, 2}, {0, 0}, {"s0"}), CellMsg({3, 4}, {1, 1})});
       },
       kInvalid, "chunk 1: sample_ids missing but earlier chunks gave them"},
      {"cells_discrete_labels_count",
       [x] {
         return x.Up(Header("c", pb::SPATIAL_CELLS, 2, pb::LABEL_TYPE_DISCRETE),
                     {CellMsg({1, 2, 3, 4}, {0, 0, 1, 1}, {}, {"t"})});
       },
       kInvalid, "chunk 0: 1 labels for 2 cells"},
      {"cells_conditions_wrong_shape", encoded([](auto&) {}, {1, 0, 30}), kInvalid,
       "chunk 0: conditions holds 3 values for 2 cells of condition_dim 3"},
      {"cells_nan_condition", encoded([](auto&) {}, {1, 0, 30, 0, 1, kNaN}), kInvalid,
       "cells[1].condition: NaN at index 2"},
      {"cells_conditions_for_no_labels",
       encoded([](auto& h) {
         h.clear_condition_columns();
         h.set_condition_dim(0);
         h.set_label_type(pb::LABEL_TYPE_NONE);
       }),
       kInvalid,
       "chunk 0: conditions given but the header's label_type is none"},
      {"condition_columns_without_continuous",
       encoded([](auto& h) {
         h.set_label_type(pb::LABEL_TYPE_DISCRETE);
         h.set_condition_dim(0);
       }),
       kInvalid,
       "header.condition_columns: only meaningful with label_type continuous"},
      {"condition_column_empty_name",
       encoded([](auto& h) {
         h.mutable_condition_columns(1)->set_name("");
       }),
       kInvalid,
       "header.condition_columns[1].name: empty"},
      {"condition_column_name_too_long",
       encoded([](auto& h) {
         h.mutable_condition_columns(1)->set_name(std::string(300, 'a'));
       }),
       kInvalid,
       "header.condition_columns[1].name: 300 bytes, the limit is 256"},
      {"condition_column_repeated_name",
       encoded([](auto& h) {
         h.mutable_condition_columns(1)->set_name("type");
       }),
       kInvalid,
       "header.condition_columns[1].name: 'type' repeats header.condition_columns[0]; columns must be unique"},
      {"condition_column_no_kind",
       encoded([](auto& h) {
         h.mutable_condition_columns(1)->set_kind(pb::CONDITION_KIND_UNSPECIFIED);
       }),
       kInvalid,
       "header.condition_columns[1].kind: required"},
      {"condition_column_repeated_category",
       encoded([](auto& h) {
         h.mutable_condition_columns(0)->set_categories(1, "T");
       }),
       kInvalid,
       "header.condition_columns[0].categories[1]: 'T' repeats categories[0]; categories must be unique"},
      {"condition_column_empty_category",
       encoded([](auto& h) {
         h.mutable_condition_columns(0)->set_categories(1, "");
       }),
       kInvalid,
       "header.condition_columns[0].categories[1]: empty"},
      {"condition_column_width_not_categories",
       encoded([](auto& h) {
         h.mutable_condition_columns(0)->add_categories("NK");
       }),
       kInvalid,
       "header.condition_columns[0].width: 2 for 3 categories"},
      {"condition_column_numeric_with_categories",
       encoded([](auto& h) {
         h.mutable_condition_columns(1)->add_categories("x");
       }),
       kInvalid,
       "header.condition_columns[1].categories: only categorical columns have categories"},
      {"condition_column_numeric_width",
       encoded([](auto& h) {
         h.mutable_condition_columns(1)->set_width(2);
         h.set_condition_dim(4);
       }),
       kInvalid,
       "header.condition_columns[1].width: 2; a numeric column has width 1"},
      {"condition_column_bad_offset",
       encoded([](auto& h) {
         h.mutable_condition_columns(1)->set_offset(1);
       }),
       kInvalid,
       "header.condition_columns[1].offset: 1; must be 2"},
      {"condition_columns_short_of_condition_dim",
       encoded([](auto& h) {
         h.set_condition_dim(5);
       }),
       kInvalid,
       "header.condition_columns: the widths add up to 3, not condition_dim 5"},
      {"condition_columns_beyond_condition_dim",
       encoded([](auto& h) {
         h.set_condition_dim(2);
       }),
       kInvalid,
       "header.condition_columns: the widths add up to more than condition_dim 2"},
      // ---------------------------------------------------- GetDataset / DeleteDataset
      {"get_dataset_unknown", [x] { return x.GetDataset("nope"); }, kNotFound,
       "data set 'nope' not found"},
      {"get_dataset_parent_path", [x] { return x.GetDataset("../pc"); }, kInvalid,
       "name: name may only hold"},
      {"get_dataset_empty_name", [x] { return x.GetDataset(""); }, kInvalid,
       "name: a name is required"},
      {"delete_dataset_unknown", [x] { return x.DeleteDataset("nope"); }, kNotFound,
       "data set 'nope' not found"},
      {"delete_dataset_dotdot", [x] { return x.DeleteDataset(".."); }, kInvalid,
       "name: name '..' is reserved"},
      {"delete_dataset_slash", [x] { return x.DeleteDataset("datasets/pc"); }, kInvalid,
       "name: name may only hold"},
      {"delete_dataset_65_chars", [x, long_name] { return x.DeleteDataset(long_name); }, kInvalid,
       "name: name is 65 characters long"},
      // ---------------------------------------------------- StartTraining
      {"train_unknown_dataset", train(CloudTraining(), [](auto& r) { r.set_dataset("nope"); }),
       kNotFound, "data set 'nope' not found"},
      {"train_dataset_empty_name", train(CloudTraining(), [](auto& r) { r.set_dataset(""); }),
       kInvalid, "dataset: a name is required"},
      {"train_model_with_slash", train(CloudTraining(), [](auto& r) { r.set_model("a/../../b"); }),
       kInvalid, "model: name may only hold"},
      {"train_model_dotdot", train(CloudTraining(), [](auto& r) { r.set_model(".."); }), kInvalid,
       "model: name '..' is reserved"},
      {"train_model_control_char", train(CloudTraining(), [](auto& r) { r.set_model("m\tx"); }),
       kInvalid, "model: name may only hold letters, digits, '.', '_' and '-' (found byte 0x9)"},
      {"train_model_65_chars",
       train(CloudTraining(), [long_name](auto& r) { r.set_model(long_name); }), kInvalid,
       "model: name is 65 characters long, the limit is 64"},
      // Fine-tuning (init_from_model): "pcm" is a point-cloud model of "pc"
      // (dim 2, labels round / wide), "gm" a Gaussian one of "gs" (dim 2,
      // labels a / b), "gcm" a Gaussian one of "ccells" (dim 3).
      {"train_init_from_unknown_model",
       train(CloudTraining(), [](auto& r) { r.set_init_from_model("nope"); }), kNotFound,
       "init_from_model: model 'nope' not found"},
      {"train_init_from_bad_name",
       train(CloudTraining(), [](auto& r) { r.set_init_from_model("../pcm"); }), kInvalid,
       "init_from_model: name may only hold"},
      {"train_init_from_version_without_model",
       train(CloudTraining(), [](auto& r) { r.set_init_from_version(1); }), kInvalid,
       "init_from_version: only used with init_from_model"},
      {"train_init_from_negative_version",
       train(CloudTraining(),
             [](auto& r) {
               r.set_init_from_model("pcm");
               r.set_init_from_version(-1);
             }),
       kInvalid, "init_from_version: must be >= 0 (0 = the serving version), got -1"},
      {"train_init_from_missing_version",
       train(CloudTraining(),
             [](auto& r) {
               r.set_init_from_model("pcm");
               r.set_init_from_version(2);
             }),
       kNotFound, "init_from_version: model 'pcm' has no version 2"},
      {"train_init_from_other_family",
       train(CloudTraining(), [](auto& r) { r.set_init_from_model("gm"); }), kInvalid,
       "config.family: pointcloud differs from the base model 'gm' (gaussian)"},
      {"train_init_from_other_width",
       train(CloudTraining(),
             [](auto& r) {
               r.set_init_from_model("pcm");
               r.mutable_config()->mutable_network()->set_width(32);
             }),
       kInvalid, "config.network.width: 32 differs from the base model 'pcm' (16)"},
      {"train_init_from_other_layers",
       train(GaussTraining(),
             [](auto& r) {
               r.set_init_from_model("gm");
               r.mutable_config()->mutable_network()->set_layers(2);
             }),
       kInvalid, "config.network.layers: 2 differs from the base model 'gm' (1)"},
      {"train_init_from_other_dim",
       train(GaussTraining(), [](auto& r) { r.set_init_from_model("gcm"); }), kInvalid,
       "dataset: 'gs' has dim 2, the base model 'gcm' dim 3"},
      {"train_init_from_other_labels",
       train(GaussTraining(),
             [](auto& r) {
               r.set_dataset("pc");
               r.set_init_from_model("gm");
             }),
       kInvalid,
       "dataset: 'pc' has discrete labels (round, wide), the base model 'gm' discrete labels (a, b)"},
      {"train_family_unspecified",
       train(CloudTraining(), [](auto& r) { r.mutable_config()->set_family(pb::FAMILY_UNSPECIFIED); }),
       kInvalid, "config.family: required"},
      {"train_family_unknown_enum_value",
       train(CloudTraining(),
             [](auto& r) { r.mutable_config()->set_family(static_cast<pb::Family>(7)); }),
       kInvalid, "config.family: required"},
      // (Gaussian models train on point clouds too: their means and covariances.)
      {"train_pointcloud_family_on_gaussians",
       train(CloudTraining(), [](auto& r) { r.set_dataset("gs"); }), kInvalid,
       "config.family: pointcloud models train on POINT_CLOUDS or SPATIAL_CELLS data sets; 'gs' "
       "holds GAUSSIANS"},
      {"train_options_of_the_other_family",
       train(CloudTraining(),
             [](auto& r) { r.mutable_config()->mutable_gaussian()->set_velocity("euclidean"); }),
       kInvalid, "config.gaussian: options of the gaussian family given for a pointcloud model"},
      {"train_width_not_divisible_by_heads",
       train(CloudTraining(),
             [](auto& r) {
               r.mutable_config()->mutable_network()->set_width(18);
               r.mutable_config()->mutable_network()->set_heads(4);
             }),
       kInvalid, "network.width: (18) must be divisible by heads (4)"},
      {"train_zero_heads",
       train(CloudTraining(), [](auto& r) { r.mutable_config()->mutable_network()->set_heads(0); }),
       kInvalid, "network.heads: must be in [1, 16]"},
      {"train_dropout_above_one",
       train(CloudTraining(), [](auto& r) { r.mutable_config()->mutable_network()->set_dropout(1.5); }),
       kInvalid, "network.dropout: must be in [0, 1), got 1.5"},
      {"train_unknown_architecture",
       train(GaussTraining(),
             [](auto& r) { r.mutable_config()->mutable_network()->set_architecture("bogus"); }),
       kInvalid, "network.architecture"},
      {"train_zero_steps",
       train(CloudTraining(), [](auto& r) { r.mutable_config()->mutable_optimizer()->set_steps(0); }),
       kInvalid, "steps: must be in [1, 100000000], got 0"},
      {"train_huge_steps",
       train(GaussTraining(),
             [](auto& r) { r.mutable_config()->mutable_optimizer()->set_steps(int64_t{1} << 40); }),
       kInvalid, "steps: must be in [1, 100000000]"},
      {"train_zero_batch",
       train(CloudTraining(),
             [](auto& r) { r.mutable_config()->mutable_optimizer()->set_batch_size(0); }),
       kInvalid, "batch_size: must be in [1, 65536], got 0"},
      {"train_huge_batch",
       train(GaussTraining(),
             [](auto& r) { r.mutable_config()->mutable_optimizer()->set_batch_size(1 << 20); }),
       kInvalid, "batch_size: must be in [1, 65536]"},
      {"train_batch_larger_than_the_data",
       train(CloudTraining(),
             [](auto& r) { r.mutable_config()->mutable_optimizer()->set_batch_size(9); }),
       kInvalid, "config.optimizer.batch_size: 9 is larger than the 8 training items"},
      {"train_negative_learning_rate",
       train(CloudTraining(),
             [](auto& r) { r.mutable_config()->mutable_optimizer()->set_learning_rate(-1e-3); }),
       kInvalid, "learning_rate"},
      {"train_nan_learning_rate",
       train(GaussTraining(),
             [](auto& r) { r.mutable_config()->mutable_optimizer()->set_learning_rate(kNaNd); }),
       kInvalid, "learning_rate"},
      {"train_zero_epsilon",
       train(CloudTraining(), [](auto& r) { r.mutable_config()->mutable_pointcloud()->set_epsilon(0); }),
       kInvalid, "epsilon"},
      {"train_negative_epsilon",
       train(CloudTraining(),
             [](auto& r) { r.mutable_config()->mutable_pointcloud()->set_epsilon(-0.1); }),
       kInvalid, "epsilon"},
      {"train_unknown_monge_map",
       train(CloudTraining(),
             [](auto& r) { r.mutable_config()->mutable_pointcloud()->set_monge_map("magic"); }),
       kInvalid, "monge_map"},
      {"train_unknown_noise",
       train(CloudTraining(),
             [](auto& r) { r.mutable_config()->mutable_pointcloud()->set_noise("pink"); }),
       kInvalid, "config.pointcloud.noise: "},
      {"train_nan_guidance",
       train(CloudTraining(),
             [](auto& r) { r.mutable_config()->mutable_pointcloud()->set_guidance(kNaNd); }),
       kInvalid, "guidance: must be a finite number >= 0"},
      {"train_gaussian_negative_guidance",
       train(Training("gs", "fresh", pb::FAMILY_GAUSSIAN),
             [](auto& r) { r.mutable_config()->mutable_gaussian()->set_guidance(-1.0); }),
       kInvalid, "config.gaussian.guidance: "},
      {"train_gaussian_p_uncond_one",
       train(Training("gs", "fresh", pb::FAMILY_GAUSSIAN),
             [](auto& r) { r.mutable_config()->mutable_gaussian()->set_p_uncond(1.0); }),
       kInvalid, "config.gaussian.p_uncond: "},
      {"train_source_dataset_without_given_noise",
       train(CloudTraining(),
             [](auto& r) { r.mutable_config()->mutable_pointcloud()->set_source_dataset("pc"); }),
       kInvalid, "config.pointcloud.source_dataset: only used with noise given_random or given_matched"},
      {"train_zero_niche_size",
       train(Training("cells", "fresh", pb::FAMILY_POINTCLOUD),
             [](auto& r) { r.mutable_config()->set_niche_size(0); }),
       kInvalid, "config.niche_size: must be in [1, 1024], got 0"},
      {"train_holdout_everything",
       train(CloudTraining(), [](auto& r) { r.mutable_config()->set_holdout_fraction(1.0); }),
       kInvalid, "config.holdout_fraction: must be in [0, 1), got 1"},
      {"train_nan_holdout",
       train(CloudTraining(), [](auto& r) { r.mutable_config()->set_holdout_fraction(kNaNd); }),
       kInvalid, "config.holdout_fraction: must be in [0, 1)"},
      {"train_negative_checkpoint_every",
       train(CloudTraining(), [](auto& r) { r.mutable_config()->set_checkpoint_every(-5); }),
       kInvalid, "config.checkpoint_every: must be >= 0, got -5"},
      // ---------------------------------------------------- training jobs
      {"get_job_empty_id", [x] { return x.GetJob(""); }, kInvalid, "id: a job id is required"},
      {"get_job_unknown", [x] { return x.GetJob("job-404"); }, kNotFound, "job 'job-404' not found"},
      {"get_job_path_id", [x] { return x.GetJob("../../etc/passwd"); }, kNotFound,
       "not found"},
      {"cancel_job_unknown", [x] { return x.CancelJob("job-404"); }, kNotFound,
       "job 'job-404' not found"},
      {"cancel_job_ended", [this, x] { return x.CancelJob(done_job_); }, kPrecondition,
       "SUCCEEDED"},
      {"watch_job_empty_id", [x] { return x.WatchJob(""); }, kInvalid, "id: a job id is required"},
      {"watch_job_unknown", [x] { return x.WatchJob("job-404"); }, kNotFound,
       "job 'job-404' not found"},
      // ---------------------------------------------------- models
      {"get_model_unknown", [x] { return x.GetModel("nope"); }, kNotFound, "'nope'"},
      {"get_model_control_char", [x] { return x.GetModel("pcm\r"); }, kInvalid,
       "name: name may only hold letters, digits, '.', '_' and '-' (found byte 0xd)"},
      {"delete_model_unknown", [x] { return x.DeleteModel("nope"); }, kNotFound, "'nope'"},
      {"delete_model_parent_path", [x] { return x.DeleteModel("../models/pcm"); }, kInvalid,
       "name: name may only hold"},
      {"delete_model_empty", [x] { return x.DeleteModel(""); }, kInvalid,
       "name: a name is required"},
      // Versions: "pcm" has one version, 1.
      {"get_model_negative_version", [x] { return x.GetModel("pcm", -1); }, kInvalid,
       "version: must be 0 (the serving version) or a version from 1 to 1000000000000, got -1"},
      {"get_model_missing_version", [x] { return x.GetModel("pcm", 7); }, kNotFound,
       "model 'pcm' has no version 7"},
      {"delete_model_negative_version", [x] { return x.DeleteModel("pcm", -2); }, kInvalid,
       "version: must be 0 (the serving version) or a version from 1 to"},
      {"delete_model_missing_version", [x] { return x.DeleteModel("pcm", 7); }, kNotFound,
       "model 'pcm' has no version 7"},
      {"delete_model_only_version", [x] { return x.DeleteModel("pcm", 1); }, kPrecondition,
       "version: 1 is the only version of model 'pcm'; delete the model instead"},
      {"update_model_unknown", [x] { return x.UpdateModel([](auto& r) { r.set_name("nope"); }); },
       kNotFound, "'nope'"},
      {"update_model_bad_name", [x] { return x.UpdateModel([](auto& r) { r.set_name("a/b"); }); },
       kInvalid, "name: name may only hold"},
      {"update_model_negative_serving_version",
       [x] { return x.UpdateModel([](auto& r) { r.set_serving_version(-1); }); }, kInvalid,
       "serving_version: must be 0 (the serving version) or a version from 1 to"},
      {"update_model_missing_serving_version",
       [x] { return x.UpdateModel([](auto& r) { r.set_serving_version(3); }); }, kNotFound,
       "serving_version: model 'pcm' has no version 3"},
      {"update_model_negative_keep_versions",
       [x] { return x.UpdateModel([](auto& r) { r.set_keep_versions(-1); }); }, kInvalid,
       "keep_versions: must be 0 (the server's default) to 1000000, got -1"},
      {"update_model_huge_keep_versions",
       [x] { return x.UpdateModel([](auto& r) { r.set_keep_versions(1000001); }); }, kInvalid,
       "keep_versions: must be 0 (the server's default) to 1000000, got 1000001"},
      {"update_model_unknown_residency",
       [x] {
         return x.UpdateModel(
             [](auto& r) { r.set_residency(static_cast<pb::ModelResidency>(7)); });
       },
       kInvalid, "residency: unknown value 7"},
      {"update_model_version_without_residency",
       [x] { return x.UpdateModel([](auto& r) { r.set_version(1); }); }, kInvalid,
       "version: only with residency MODEL_RESIDENCY_LOAD or MODEL_RESIDENCY_UNLOAD"},
      {"update_model_negative_residency_version",
       [x] {
         return x.UpdateModel([](auto& r) {
           r.set_residency(pb::MODEL_RESIDENCY_UNLOAD);
           r.set_version(-1);
         });
       },
       kInvalid, "version: must be 0 (the serving version) or a version from 1 to"},
      {"update_model_load_missing_version",
       [x] {
         return x.UpdateModel([](auto& r) {
           r.set_residency(pb::MODEL_RESIDENCY_LOAD);
           r.set_version(5);
         });
       },
       kNotFound, "model 'pcm' has no version 5"},
      {"update_model_unload_unknown",
       [x] {
         return x.UpdateModel([](auto& r) {
           r.set_name("nope");
           r.set_residency(pb::MODEL_RESIDENCY_UNLOAD);
         });
       },
       kNotFound, "model 'nope' not found"},
      // ---------------------------------------------------- SampleNiches
      {"niches_unknown_model", niches([](auto& r) { r.set_model("nope"); }), kNotFound, "'nope'"},
      {"niches_negative_version", niches([](auto& r) { r.set_version(-1); }), kInvalid,
       "version: must be 0 (the serving version) or a version from 1 to"},
      {"niches_missing_version", niches([](auto& r) { r.set_version(2); }), kNotFound,
       "model 'pcm' has no version 2"},
      {"niches_model_with_slash", niches([](auto& r) { r.set_model("a/b"); }), kInvalid,
       "model: name may only hold"},
      {"niches_gaussian_model", niches([](auto& r) { r.set_model("gm"); }), kPrecondition,
       "model: 'gm' is a gaussian model; sample it with SampleGaussians"},
      {"niches_zero_samples", niches([](auto& r) { r.set_num_samples(0); }), kInvalid,
       "num_samples: must be >= 1, got 0"},
      {"niches_negative_samples", niches([](auto& r) { r.set_num_samples(-1); }), kInvalid,
       "num_samples: must be >= 1, got -1"},
      {"niches_too_many_samples", niches([](auto& r) { r.set_num_samples(17); }), kExhausted,
       "num_samples: 17"},
      {"niches_too_many_points", niches([](auto& r) { r.set_points_per_sample(65); }), kExhausted,
       "points: 65 per sample exceeds the limit of 64"},
      {"niches_negative_points", niches([](auto& r) { r.set_points_per_sample(-5); }), kInvalid,
       "points: must be >= 0"},
      {"niches_negative_steps", niches([](auto& r) { r.set_steps(-3); }), kInvalid,
       "steps: must be >= 0 (0 = the family's default), got -3"},
      {"niches_huge_steps", niches([](auto& r) { r.set_steps(int64_t{1} << 40); }), kExhausted,
       "steps: "},
      {"niches_unknown_solver", niches([](auto& r) { r.set_solver("leapfrog"); }), kInvalid,
       "solver: unknown solver 'leapfrog' (expected one of euler, midpoint, heun, rk4, adaptive)"},
      {"niches_unknown_priority",
       niches([](auto& r) { r.set_priority(static_cast<pb::SamplingPriority>(3)); }), kInvalid,
       "priority: unknown value 3; expected SAMPLING_PRIORITY_NORMAL (0)"},
      {"niches_negative_queue_timeout", niches([](auto& r) { r.set_queue_timeout_seconds(-1); }),
       kInvalid, "queue_timeout_seconds: must be in (0, 86400] seconds"},
      {"niches_zero_queue_timeout", niches([](auto& r) { r.set_queue_timeout_seconds(0); }),
       kInvalid, "(leave it unset for no queue timeout), got 0"},
      {"niches_nan_queue_timeout", niches([](auto& r) { r.set_queue_timeout_seconds(kNaNd); }),
       kInvalid, "queue_timeout_seconds: must be in (0, 86400] seconds"},
      {"niches_huge_queue_timeout", niches([](auto& r) { r.set_queue_timeout_seconds(1e6); }),
       kInvalid, "queue_timeout_seconds: must be in (0, 86400] seconds"},
      {"niches_rtol_without_adaptive",
       niches([](auto& r) {
         r.set_solver("rk4");
         r.set_rtol(1e-3);
       }),
       kInvalid, "rtol: only the adaptive solver takes a tolerance (solver is rk4)"},
      {"niches_atol_with_default_solver", niches([](auto& r) { r.set_atol(1e-3); }), kInvalid,
       "atol: only the adaptive solver takes a tolerance (solver is midpoint)"},
      {"niches_zero_rtol",
       niches([](auto& r) {
         r.set_solver("adaptive");
         r.set_rtol(0.0);
       }),
       kInvalid, "rtol: must be in [1e-8, 1], got 0"},
      {"niches_nan_atol",
       niches([](auto& r) {
         r.set_solver("adaptive");
         r.set_atol(kNaNd);
       }),
       kInvalid, "atol: must be in [0, 1000], got nan"},
      {"niches_adaptive_step_cap_over_limit",
       niches([](auto& r) {
         r.set_solver("adaptive");
         r.set_steps(int64_t{1} << 40);
       }),
       kExhausted, "steps: "},
      {"niches_nan_guidance", niches([](auto& r) { r.set_guidance(kNaNd); }), kInvalid,
       "guidance: must be a finite number >= 0, got nan"},
      {"niches_negative_guidance", niches([](auto& r) { r.set_guidance(-2.0); }), kInvalid,
       "guidance: must be a finite number >= 0, got -2"},
      {"niches_unknown_label", niches([](auto& r) { r.set_label("cat"); }), kInvalid, "label: "},
      {"niches_condition_on_discrete_model", niches([](auto& r) { r.add_condition(0.5f); }),
       kInvalid, "condition: this model is not conditioned on condition vectors"},
      {"niches_negative_samples_per_message", niches([](auto& r) { r.set_samples_per_message(-1); }),
       kInvalid, "samples_per_message: must be >= 0"},
      {"niches_init_count_not_num_samples",
       niches([](auto& r) {
         r.set_points_per_sample(0);
         r.add_init_sizes(2);
         r.mutable_init_points()->Resize(4, 0.5f);
       }),
       kInvalid, "init_sizes: 1 given source clouds for num_samples 2; one source cloud per sample"},
      {"niches_init_points_without_sizes",
       niches([](auto& r) { r.mutable_init_points()->Resize(10, 0.5f); }), kInvalid,
       "init_sizes: required with init_points"},
      {"niches_init_empty_cloud",
       niches([](auto& r) {
         r.set_points_per_sample(0);
         r.add_init_sizes(0);
         r.add_init_sizes(2);
         r.mutable_init_points()->Resize(4, 0.5f);
       }),
       kInvalid, "init_sizes[0]: a source cloud needs >= 1 point, got 0"},
      {"niches_init_cloud_over_point_limit",
       niches([](auto& r) {
         r.set_num_samples(0);
         r.set_points_per_sample(0);
         r.add_init_sizes(65);
         r.mutable_init_points()->Resize(130, 0.5f);
       }),
       kExhausted, "init_sizes[0]: 65 points exceed the limit of 64"},
      {"niches_init_wrong_dimension",
       niches([](auto& r) {
         r.set_num_samples(0);
         r.set_points_per_sample(0);
         r.add_init_sizes(3);
         r.mutable_init_points()->Resize(9, 0.5f);
       }),
       kInvalid, "init_points: 9 values; the 3 points of init_sizes in dimension 2 need 6"},
      {"niches_init_nan",
       niches([](auto& r) {
         r.set_num_samples(0);
         r.set_points_per_sample(0);
         r.add_init_sizes(3);
         r.mutable_init_points()->Resize(6, 0.5f);
         r.set_init_points(3, kNaN);
       }),
       kInvalid, "init_points[1, 1] = nan: values must be finite"},
      {"niches_init_size_not_points_per_sample",
       niches([](auto& r) {
         r.add_init_sizes(3);
         r.add_init_sizes(5);
         r.mutable_init_points()->Resize(16, 0.5f);
       }),
       kInvalid, "points: 5 per sample, but given source cloud 0 has 3 points"},
      // ---------------------------------------------------- SampleGaussians
      {"gaussians_sample_pointcloud_model", sample_gaussians([](auto& r) { r.set_model("pcm"); }),
       kPrecondition, "model: 'pcm' is a pointcloud model; sample it with SampleNiches"},
      {"gaussians_sample_negative_version", sample_gaussians([](auto& r) { r.set_version(-5); }),
       kInvalid, "version: must be 0 (the serving version) or a version from 1 to"},
      {"gaussians_sample_missing_version", sample_gaussians([](auto& r) { r.set_version(4); }),
       kNotFound, "model 'gm' has no version 4"},
      {"gaussians_sample_unknown_model", sample_gaussians([](auto& r) { r.set_model("nope"); }),
       kNotFound, "'nope'"},
      {"gaussians_sample_empty_model", sample_gaussians([](auto& r) { r.set_model(""); }),
       kInvalid, "model: a name is required"},
      {"gaussians_sample_zero_samples", sample_gaussians([](auto& r) { r.set_num_samples(0); }),
       kInvalid, "num_samples: must be >= 1, got 0"},
      {"gaussians_sample_too_many", sample_gaussians([](auto& r) { r.set_num_samples(17); }),
       kExhausted, "num_samples: 17"},
      {"gaussians_sample_negative_steps", sample_gaussians([](auto& r) { r.set_steps(-1); }),
       kInvalid, "steps: must be >= 0 (0 = the family's default), got -1"},
      {"gaussians_sample_unknown_solver", sample_gaussians([](auto& r) { r.set_solver("RK4"); }),
       kInvalid, "solver: unknown solver 'RK4'"},
      {"gaussians_sample_huge_rtol",
       sample_gaussians([](auto& r) {
         r.set_solver("adaptive");
         r.set_rtol(2.0);
       }),
       kInvalid, "rtol: must be in [1e-8, 1], got 2"},
      {"gaussians_sample_rtol_with_euler", sample_gaussians([](auto& r) { r.set_rtol(0.1); }),
       kInvalid, "rtol: only the adaptive solver takes a tolerance (solver is euler)"},
      {"gaussians_sample_unknown_priority",
       sample_gaussians([](auto& r) { r.set_priority(static_cast<pb::SamplingPriority>(-1)); }),
       kInvalid, "priority: unknown value -1"},
      {"gaussians_sample_infinite_queue_timeout",
       sample_gaussians([](auto& r) { r.set_queue_timeout_seconds(kInfd); }), kInvalid,
       "queue_timeout_seconds: must be in (0, 86400] seconds"},
      {"gaussians_sample_negative_queue_timeout",
       sample_gaussians([](auto& r) { r.set_queue_timeout_seconds(-0.5); }), kInvalid,
       "queue_timeout_seconds: must be in (0, 86400] seconds"},
      {"gaussians_sample_unknown_label", sample_gaussians([](auto& r) { r.set_label("zebra"); }),
       kInvalid, "label: "},
      {"gaussians_sample_condition_for_labelled_model",
       sample_gaussians([](auto& r) { r.add_condition(1.0f); }), kInvalid,
       "condition: this model is not conditioned on condition vectors"},
      {"gaussians_sample_condition_wrong_length",
       sample_gaussians([](auto& r) {
         r.set_model("gcm");
         r.add_condition(1.0f);
         r.add_condition(0.0f);
       }),
       kInvalid, "condition: must have 3 values (or 6, one vector per sample), got 2"},
      {"gaussians_sample_nan_condition",
       sample_gaussians([](auto& r) {
         r.set_model("gcm");
         for (float v : {1.0f, 0.0f, kNaN}) r.add_condition(v);
       }),
       kInvalid, "condition: values must be finite"},
      {"gaussians_sample_nan_guidance",
       sample_gaussians([](auto& r) {
         r.set_model("gcm");
         r.set_guidance(kNaNd);
       }),
       kInvalid, "guidance: must be a finite number >= 0, got nan"},
      {"gaussians_sample_negative_guidance",
       sample_gaussians([](auto& r) { r.set_guidance(-0.5); }), kInvalid,
       "guidance: must be a finite number >= 0, got -0.5"},
      {"gaussians_sample_label_for_conditioned_model",
       sample_gaussians([](auto& r) {
         r.set_model("gcm");
         r.set_label("T");
       }),
       kInvalid, "label: this model is not conditioned on labels"},
      {"gaussians_sample_init_count_not_num_samples",
       sample_gaussians([](auto& r) {
         r.mutable_init_means()->Resize(2, 0.0);
         for (double v : {1.0, 0.0, 0.0, 1.0}) r.add_init_covs(v);
       }),
       kInvalid, "init_means: 2 values; one given source mean per sample needs [2, 2] = 4"},
      {"gaussians_sample_init_shapes_inconsistent",
       sample_gaussians([](auto& r) {
         r.set_num_samples(0);
         r.mutable_init_means()->Resize(2, 0.0);
         r.mutable_init_covs()->Resize(3, 1.0);
       }),
       kInvalid, "init_covs: 3 values do not make [n, dim, dim] for the 2 values of init_means"},
      {"gaussians_sample_init_wrong_dimension",
       sample_gaussians([](auto& r) {
         r.set_num_samples(0);
         r.mutable_init_means()->Resize(3, 0.0);
         for (double v : {1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0}) r.add_init_covs(v);
       }),
       kInvalid, "init_means: 3 values; one given source mean per sample needs [1, 2] = 2"},
      {"gaussians_sample_init_nan_mean",
       sample_gaussians([](auto& r) {
         r.set_num_samples(0);
         r.add_init_means(0.0);
         r.add_init_means(kNaNd);
         for (double v : {1.0, 0.0, 0.0, 1.0}) r.add_init_covs(v);
       }),
       kInvalid, "init_means[0, 1] = nan: values must be finite"},
      {"gaussians_sample_init_not_spd",
       sample_gaussians([](auto& r) {
         r.set_num_samples(0);
         r.mutable_init_means()->Resize(4, 0.0);
         for (double v : {1.0, 0.0, 0.0, 1.0, 1.0, 2.0, 2.0, 1.0}) r.add_init_covs(v);
       }),
       kInvalid, "init_covs[1]: not positive definite"},
      {"gaussians_sample_init_not_symmetric",
       sample_gaussians([](auto& r) {
         r.set_num_samples(0);
         r.mutable_init_means()->Resize(2, 0.0);
         for (double v : {1.0, 0.5, 0.0, 1.0}) r.add_init_covs(v);
       }),
       kInvalid, "init_covs[0]: not symmetric"},
      {"gaussians_sample_init_over_sample_limit",
       sample_gaussians([](auto& r) {
         r.set_num_samples(0);
         for (int i = 0; i < 17; ++i) {
           r.add_init_means(0.0);
           r.add_init_means(0.0);
           for (double v : {1.0, 0.0, 0.0, 1.0}) r.add_init_covs(v);
         }
       }),
       kExhausted, "num_samples: 17"},
      // ---------------------------------------------------- Evaluate
      {"evaluate_unknown_model", evaluate([](auto& r) { r.set_model("nope"); }), kNotFound,
       "'nope'"},
      {"evaluate_negative_version", evaluate([](auto& r) { r.set_version(-1); }), kInvalid,
       "version: must be 0 (the serving version) or a version from 1 to"},
      {"evaluate_missing_version", evaluate([](auto& r) { r.set_version(3); }), kNotFound,
       "model 'pcm' has no version 3"},
      {"evaluate_unknown_solver", evaluate([](auto& r) { r.set_solver("rk5"); }), kInvalid,
       "solver: unknown solver 'rk5'"},
      {"evaluate_rtol_with_default_solver", evaluate([](auto& r) { r.set_rtol(1e-3); }), kInvalid,
       "rtol: only the adaptive solver takes a tolerance (solver is midpoint)"},
      {"evaluate_unknown_dataset", evaluate([](auto& r) { r.set_dataset("nope"); }), kNotFound,
       "data set 'nope' not found"},
      {"evaluate_dataset_with_dotdot", evaluate([](auto& r) { r.set_dataset(".."); }), kInvalid,
       "dataset: name '..' is reserved"},
      {"evaluate_dataset_of_other_family", evaluate([](auto& r) { r.set_dataset("gs"); }),
       kInvalid, "dataset: 'gs' holds GAUSSIANS, which a pointcloud model cannot be compared with"},
      {"evaluate_unknown_split", evaluate([](auto& r) { r.set_split("test"); }), kInvalid,
       "split: must be 'all' or 'heldout', got 'test'"},
      {"evaluate_heldout_without_holdout", evaluate([](auto& r) { r.set_split("heldout"); }),
       kPrecondition, "split: model 'pcm' held nothing out"},
      {"evaluate_negative_samples", evaluate([](auto& r) { r.set_num_samples(-4); }), kInvalid,
       "num_samples"},
      {"evaluate_too_many_samples", evaluate([](auto& r) { r.set_num_samples(1 << 20); }),
       kExhausted, "num_samples"},
      {"evaluate_negative_steps", evaluate([](auto& r) { r.set_steps(-2); }), kInvalid, "steps"},
  };
}

TEST_F(BadInputCatalogueTest, EveryMalformedRequestIsRefusedAndTheServerKeepsServing) {
  const std::string data_dir = server_->options().data_dir;
  const std::set<std::string> before = Tree(data_dir);
  ASSERT_TRUE(Serving());
  {
    grpc::ClientContext context;
    pb::ListTrainingJobsResponse jobs;
    ASSERT_TRUE(stub_->ListTrainingJobs(&context, {}, &jobs).ok());
    ASSERT_EQ(jobs.jobs_size(), 3);
  }

  const std::vector<Case> cases = Catalogue();
  ASSERT_GE(cases.size(), 45u);
  std::set<std::string> names;
  for (const Case& c : cases) {
    SCOPED_TRACE("case " + c.name);
    EXPECT_TRUE(names.insert(c.name).second) << "duplicate case name";
    const grpc::Status status = c.call();
    EXPECT_EQ(status.error_code(), c.code) << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr(c.message));
    ASSERT_TRUE(Serving()) << "the server stopped serving";
  }

  // Nothing from the refused requests was stored or queued...
  {
    grpc::ClientContext c1, c2, c3;
    pb::ListDatasetsResponse datasets;
    ASSERT_TRUE(stub_->ListDatasets(&c1, {}, &datasets).ok());
    std::set<std::string> dataset_names;
    for (const auto& d : datasets.datasets()) dataset_names.insert(d.name());
    EXPECT_EQ(dataset_names, (std::set<std::string>{"ccells", "cells", "gs", "pc"}));
    pb::ListModelsResponse models;
    ASSERT_TRUE(stub_->ListModels(&c2, {}, &models).ok());
    std::set<std::string> model_names;
    for (const auto& m : models.models()) model_names.insert(m.name());
    EXPECT_EQ(model_names, (std::set<std::string>{"gcm", "gm", "pcm"}));
    pb::ListTrainingJobsResponse jobs;
    ASSERT_TRUE(stub_->ListTrainingJobs(&c3, {}, &jobs).ok());
    EXPECT_EQ(jobs.jobs_size(), 3);
  }
  // ... and the data folder holds exactly the paths it held before: no
  // partial data set or model, no staging folder, no temporary file.
  const std::set<std::string> after = Tree(data_dir);
  EXPECT_EQ(after, before);
  for (const std::string& path : after) {
    EXPECT_EQ(path.find("/."), std::string::npos) << path;
    EXPECT_NE(path[0], '.') << path;
    EXPECT_EQ(path.find("tmp"), std::string::npos) << path;
  }
  // Nothing was written next to the data folder either.
  std::set<std::string> siblings;
  for (const auto& e : std::filesystem::directory_iterator(
           std::filesystem::path(data_dir).parent_path())) {
    siblings.insert(e.path().filename().string());
  }
  EXPECT_EQ(siblings, (std::set<std::string>{"data"}));
}

}  // namespace
}  // namespace wfm::testing
