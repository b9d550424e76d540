// server/proto_convert outside the training configuration: data set headers
// and records, upload chunks, job status, model info, sampling requests and
// replies, and evaluation options and results. Every field is set to a
// distinct value and read back on the other side; defaults and refusals are
// checked with their messages.
#include "server/proto_convert.h"

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/testing/status.h"

namespace wfm::server {
namespace {

namespace pb = ::wfm::v1;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

pb::DatasetHeader FullHeader() {
  pb::DatasetHeader h;
  h.set_name("cells-1");
  h.set_kind(pb::SPATIAL_CELLS);
  h.set_dim(7);
  h.set_label_type(pb::LABEL_TYPE_DISCRETE);
  h.set_condition_dim(0);
  h.set_description("two sections");
  h.set_overwrite(true);
  return h;
}

TEST(ProtoConvertTest, HeaderFieldsAndKinds) {
  WFM_ASSERT_OK_AND_ASSIGN(const DatasetHeader h, HeaderFromProto(FullHeader()));
  EXPECT_EQ(h.name, "cells-1");
  EXPECT_EQ(h.kind, DatasetKind::kSpatialCells);
  EXPECT_EQ(h.dim, 7);
  EXPECT_EQ(h.label_type, LabelType::kDiscrete);
  EXPECT_EQ(h.condition_dim, 0);
  EXPECT_EQ(h.description, "two sections");
  EXPECT_TRUE(h.overwrite);

  pb::DatasetHeader p = FullHeader();
  const std::vector<std::pair<pb::DatasetKind, DatasetKind>> kinds = {
      {pb::POINT_CLOUDS, DatasetKind::kPointClouds},
      {pb::GAUSSIANS, DatasetKind::kGaussians},
      {pb::SPATIAL_CELLS, DatasetKind::kSpatialCells}};
  for (const auto& [proto, kind] : kinds) {
    p.set_kind(proto);
    WFM_ASSERT_OK_AND_ASSIGN(const DatasetHeader k, HeaderFromProto(p));
    EXPECT_EQ(k.kind, kind) << proto;
  }
  const std::vector<std::pair<pb::LabelType, LabelType>> labels = {
      {pb::LABEL_TYPE_UNSPECIFIED, LabelType::kNone},
      {pb::LABEL_TYPE_NONE, LabelType::kNone},
      {pb::LABEL_TYPE_DISCRETE, LabelType::kDiscrete},
      {pb::LABEL_TYPE_CONTINUOUS, LabelType::kContinuous}};
  for (const auto& [proto, type] : labels) {
    p.set_label_type(proto);
    p.set_condition_dim(3);
    WFM_ASSERT_OK_AND_ASSIGN(const DatasetHeader l, HeaderFromProto(p));
    EXPECT_EQ(l.label_type, type) << proto;
    EXPECT_EQ(l.condition_dim, 3);
  }
}

TEST(ProtoConvertTest, HeaderRefusesAMissingKindAndUnknownLabelTypes) {
  pb::DatasetHeader h = FullHeader();
  h.set_kind(pb::DATASET_KIND_UNSPECIFIED);
  EXPECT_EQ(HeaderFromProto(h).status(),
            absl::InvalidArgumentError(
                "header.kind: required (POINT_CLOUDS, GAUSSIANS or SPATIAL_CELLS)"));
  h.set_kind(static_cast<pb::DatasetKind>(17));  // a newer client's value
  EXPECT_TRUE(absl::IsInvalidArgument(HeaderFromProto(h).status()));
  h = FullHeader();
  h.set_label_type(static_cast<pb::LabelType>(42));
  EXPECT_EQ(HeaderFromProto(h).status(),
            absl::InvalidArgumentError("header.label_type: unknown value 42"));
}

TEST(ProtoConvertTest, DatasetRecordEveryField) {
  DatasetInfo info;
  info.name = "shapes";
  info.kind = DatasetKind::kGaussians;
  info.dim = 3;
  info.label_type = LabelType::kContinuous;
  info.condition_dim = 2;
  info.items = 40;
  info.points = 400;
  info.min_size = 5;
  info.max_size = 15;
  info.samples = 2;
  info.label_names = {"a", "b"};
  info.size_bytes = 12345;
  info.created_unix_ms = 1700000000123;
  info.description = "d";
  pb::Dataset d;
  ToProto(info, &d);
  EXPECT_EQ(d.name(), "shapes");
  EXPECT_EQ(d.kind(), pb::GAUSSIANS);
  EXPECT_EQ(d.dim(), 3);
  EXPECT_EQ(d.label_type(), pb::LABEL_TYPE_CONTINUOUS);
  EXPECT_EQ(d.condition_dim(), 2);
  EXPECT_EQ(d.items(), 40);
  EXPECT_EQ(d.points(), 400);
  EXPECT_EQ(d.min_size(), 5);
  EXPECT_EQ(d.max_size(), 15);
  EXPECT_EQ(d.samples(), 2);
  EXPECT_THAT(d.label_names(), ElementsAre("a", "b"));
  EXPECT_EQ(d.size_bytes(), 12345);
  EXPECT_EQ(d.created_unix_ms(), 1700000000123);
  EXPECT_EQ(d.description(), "d");
  for (const auto& [kind, proto] : std::vector<std::pair<DatasetKind, pb::DatasetKind>>{
           {DatasetKind::kPointClouds, pb::POINT_CLOUDS},
           {DatasetKind::kSpatialCells, pb::SPATIAL_CELLS}}) {
    info.kind = kind;
    ToProto(info, &d);
    EXPECT_EQ(d.kind(), proto);
  }
  info.label_type = LabelType::kNone;
  ToProto(info, &d);
  EXPECT_EQ(d.label_type(), pb::LABEL_TYPE_NONE);
  info.label_type = LabelType::kDiscrete;
  ToProto(info, &d);
  EXPECT_EQ(d.label_type(), pb::LABEL_TYPE_DISCRETE);
}

TEST(ProtoConvertTest, ChunkViewsShowTheMessagesArrays) {
  pb::PointCloudChunk clouds;
  for (int64_t s : {2, 1}) clouds.add_sizes(s);
  for (float v : {1.f, 2.f, 3.f, 4.f, 5.f, 6.f}) clouds.add_points(v);
  clouds.add_labels("x");
  clouds.add_labels("y");
  for (float v : {0.5f, 0.25f}) clouds.add_conditions(v);
  const CloudChunkView c = ChunkView(clouds);
  EXPECT_EQ(c.sizes.data(), clouds.sizes().data());  // a view, not a copy
  EXPECT_THAT(c.sizes, ElementsAre(2, 1));
  EXPECT_EQ(c.points.data(), clouds.points().data());
  EXPECT_THAT(c.points, ElementsAre(1, 2, 3, 4, 5, 6));
  EXPECT_THAT(c.labels, ElementsAre("x", "y"));
  EXPECT_THAT(c.conditions, ElementsAre(0.5f, 0.25f));

  pb::GaussianChunk gaussians;
  for (double v : {1.0, -1.0}) gaussians.add_means(v);
  for (double v : {2.0, 0.5, 0.5, 1.0}) gaussians.add_covs(v);
  gaussians.add_labels("g");
  for (float v : {1.0f, 0.0f, 40.0f}) gaussians.add_conditions(v);
  const GaussianChunkView g = ChunkView(gaussians);
  EXPECT_EQ(g.means.data(), gaussians.means().data());
  EXPECT_THAT(g.means, ElementsAre(1.0, -1.0));
  EXPECT_THAT(g.covs, ElementsAre(2.0, 0.5, 0.5, 1.0));
  EXPECT_THAT(g.labels, ElementsAre("g"));
  EXPECT_THAT(g.conditions, ElementsAre(1.0f, 0.0f, 40.0f));

  pb::CellChunk cells;
  for (float v : {0.1f, 0.2f, 0.3f}) cells.add_features(v);
  for (float v : {7.f, 8.f}) cells.add_coords(v);
  cells.add_sample_ids("s0");
  const CellChunkView e = ChunkView(cells);
  EXPECT_EQ(e.features.data(), cells.features().data());
  EXPECT_THAT(e.features, ElementsAre(0.1f, 0.2f, 0.3f));
  EXPECT_THAT(e.coords, ElementsAre(7.f, 8.f));
  EXPECT_THAT(e.sample_ids, ElementsAre("s0"));
  EXPECT_THAT(e.labels, IsEmpty());

  const CloudChunkView empty = ChunkView(pb::PointCloudChunk());
  EXPECT_TRUE(empty.sizes.empty());
  EXPECT_TRUE(empty.points.empty());
  EXPECT_TRUE(empty.labels.empty());
}

TEST(ProtoConvertTest, JobStatusEveryFieldAndState) {
  JobStatus s;
  s.id = "job-7";
  s.request.model = "m";
  s.request.dataset = "d";
  s.request.config.family = model::Family::kGaussian;
  s.state = JobState::kRunning;
  s.step = 12;
  s.total_steps = 100;
  s.loss = 0.25;
  s.steps_per_second = 3.5;
  s.eta_seconds = 25.1;
  s.error = "e";
  s.created_unix_ms = 1;
  s.started_unix_ms = 2;
  s.finished_unix_ms = 3;
  s.request.init_from_model = "base";
  s.request.init_from_version = 1;
  s.checkpoint_step = 10;
  s.resumes = 2;
  s.resumed_from_step = 5;
  pb::TrainingJob j;
  ToProto(s, &j);
  EXPECT_EQ(j.id(), "job-7");
  EXPECT_EQ(j.model(), "m");
  EXPECT_EQ(j.dataset(), "d");
  EXPECT_EQ(j.family(), pb::FAMILY_GAUSSIAN);
  EXPECT_EQ(j.state(), pb::RUNNING);
  EXPECT_EQ(j.step(), 12);
  EXPECT_EQ(j.total_steps(), 100);
  EXPECT_EQ(j.loss(), 0.25);
  EXPECT_EQ(j.steps_per_second(), 3.5);
  EXPECT_EQ(j.eta_seconds(), 25.1);
  EXPECT_EQ(j.error(), "e");
  EXPECT_EQ(j.created_unix_ms(), 1);
  EXPECT_EQ(j.started_unix_ms(), 2);
  EXPECT_EQ(j.finished_unix_ms(), 3);
  EXPECT_EQ(j.init_from_model(), "base");
  EXPECT_EQ(j.init_from_version(), 1);
  EXPECT_EQ(j.checkpoint_step(), 10);
  EXPECT_EQ(j.resumes(), 2);
  EXPECT_EQ(j.resumed_from_step(), 5);
  EXPECT_TRUE(j.has_config());
  const std::vector<std::pair<JobState, pb::JobState>> states = {
      {JobState::kQueued, pb::QUEUED},       {JobState::kRunning, pb::RUNNING},
      {JobState::kSucceeded, pb::SUCCEEDED}, {JobState::kFailed, pb::FAILED},
      {JobState::kCancelled, pb::CANCELLED}};
  for (const auto& [state, proto] : states) {
    s.state = state;
    ToProto(s, &j);
    EXPECT_EQ(j.state(), proto) << JobStateName(state);
  }
  s.request.config.family = model::Family::kPointCloud;
  ToProto(s, &j);
  EXPECT_EQ(j.family(), pb::FAMILY_POINTCLOUD);
}

TEST(ProtoConvertTest, ModelInfoEveryFieldOutsideTheConfiguration) {
  ModelInfo info;
  info.name = "niches";
  info.family = model::Family::kPointCloud;
  info.dim = 6;
  info.labels.kind = model::LabelSpace::Kind::kDiscrete;
  info.labels.names = {"B cell", "T cell"};
  info.config_json = {{"emb", 16}};
  info.summary.dataset = "cells";
  info.summary.items = 120;
  info.summary.steps = 30;
  info.summary.final_loss = 0.5;
  info.summary.recent_loss = 0.75;
  info.summary.seconds = 2.5;
  info.summary.steps_per_second = 12.0;
  info.summary.world_size = 2;
  info.origin.niche_size = 6;
  info.origin.holdout_fraction = 0.1;
  info.created_unix_ms = 99;
  info.parameters = 4321;
  info.size_bytes = 8765;
  info.default_guidance = 1.5;
  info.origin.init_from_model = "base";
  info.origin.init_from_version = 1;
  pb::ModelInfo m;
  ToProto(info, &m);
  EXPECT_EQ(m.name(), "niches");
  EXPECT_EQ(m.init_from_model(), "base");
  EXPECT_EQ(m.init_from_version(), 1);
  EXPECT_EQ(m.family(), pb::FAMILY_POINTCLOUD);
  EXPECT_EQ(m.dim(), 6);
  EXPECT_EQ(m.label_type(), pb::LABEL_TYPE_DISCRETE);
  EXPECT_THAT(m.labels(), ElementsAre("B cell", "T cell"));
  EXPECT_EQ(m.condition_dim(), 0);
  EXPECT_EQ(m.config().niche_size(), 6);
  EXPECT_EQ(m.config().holdout_fraction(), 0.1);
  EXPECT_EQ(nlohmann::json::parse(m.config_json()), info.config_json);
  EXPECT_EQ(m.summary().dataset(), "cells");
  EXPECT_EQ(m.summary().items(), 120);
  EXPECT_EQ(m.summary().steps(), 30);
  EXPECT_EQ(m.summary().final_loss(), 0.5);
  EXPECT_EQ(m.summary().recent_loss(), 0.75);
  EXPECT_EQ(m.summary().seconds(), 2.5);
  EXPECT_EQ(m.summary().steps_per_second(), 12.0);
  EXPECT_EQ(m.summary().world_size(), 2);
  EXPECT_EQ(m.created_unix_ms(), 99);
  EXPECT_EQ(m.parameters(), 4321);
  EXPECT_EQ(m.size_bytes(), 8765);
  EXPECT_EQ(m.default_guidance(), 1.5);

  // Continuous conditions; a model not trained on niches has no niche size.
  info.family = model::Family::kGaussian;
  info.labels.kind = model::LabelSpace::Kind::kContinuous;
  info.labels.names.clear();
  info.labels.cond_dim = 4;
  info.origin.niche_size = 0;
  pb::ModelInfo g;
  ToProto(info, &g);
  EXPECT_EQ(g.family(), pb::FAMILY_GAUSSIAN);
  EXPECT_EQ(g.label_type(), pb::LABEL_TYPE_CONTINUOUS);
  EXPECT_EQ(g.condition_dim(), 4);
  EXPECT_THAT(g.labels(), IsEmpty());
  EXPECT_FALSE(g.config().has_niche_size());
  info.labels.kind = model::LabelSpace::Kind::kNone;
  ToProto(info, &g);
  EXPECT_EQ(g.label_type(), pb::LABEL_TYPE_NONE);
}

TEST(ProtoConvertTest, CloudSampleRequests) {
  pb::SampleNichesRequest req;
  req.set_model("m");
  req.set_num_samples(5);
  req.set_points_per_sample(64);
  req.set_label("tumour");
  req.add_condition(0.5f);
  req.add_condition(-1.f);
  req.set_guidance(2.5);
  req.set_steps(30);
  req.set_seed(123456789012345ULL);
  req.set_trajectory(true);
  req.set_samples_per_message(2);
  WFM_ASSERT_OK_AND_ASSIGN(const model::CloudSampleRequest r, CloudRequestFromProto(req));
  EXPECT_EQ(r.num_samples, 5);
  EXPECT_EQ(r.points, 64);
  EXPECT_EQ(r.label, "tumour");
  EXPECT_THAT(r.condition, ElementsAre(0.5f, -1.f));
  ASSERT_TRUE(r.guidance.has_value());
  EXPECT_EQ(*r.guidance, 2.5);
  EXPECT_EQ(r.steps, 30);
  EXPECT_EQ(r.seed, 123456789012345ULL);
  EXPECT_TRUE(r.trajectory);

  // Unset guidance stays unset (the model's default); steps 0 become the
  // point clouds' default, 1 midpoint step.
  pb::SampleNichesRequest plain;
  plain.set_num_samples(1);
  WFM_ASSERT_OK_AND_ASSIGN(const model::CloudSampleRequest d, CloudRequestFromProto(plain));
  EXPECT_FALSE(d.guidance.has_value());
  EXPECT_EQ(d.steps, 1);
  EXPECT_EQ(d.solver, model::OdeSolver::kMidpoint);
  EXPECT_EQ(d.points, 0);
  EXPECT_FALSE(d.trajectory);

  plain.set_steps(-3);
  EXPECT_EQ(CloudRequestFromProto(plain).status(),
            absl::InvalidArgumentError("steps: must be >= 0 (0 = the family's default), got -3"));
  plain.set_steps(0);
  plain.set_samples_per_message(-1);
  EXPECT_EQ(CloudRequestFromProto(plain).status(),
            absl::InvalidArgumentError(
                "samples_per_message: must be >= 0 (0 = the server's choice), got -1"));
}

TEST(ProtoConvertTest, GaussianSampleRequestsAndReplies) {
  pb::SampleGaussiansRequest req;
  req.set_model("g");
  req.set_num_samples(3);
  req.set_label("a");
  req.set_steps(7);
  req.set_seed(9);
  req.set_trajectory(true);
  WFM_ASSERT_OK_AND_ASSIGN(const model::GaussianSampleRequest r, GaussianRequestFromProto(req));
  EXPECT_EQ(r.num_samples, 3);
  EXPECT_EQ(r.label, "a");
  EXPECT_EQ(r.steps, 7);
  EXPECT_EQ(r.seed, 9u);
  EXPECT_TRUE(r.trajectory);
  EXPECT_FALSE(r.reference_cov_sign);
  EXPECT_THAT(r.condition, IsEmpty());
  EXPECT_FALSE(r.guidance.has_value());  // unset: the model's default
  req.add_condition(0.5f);
  req.add_condition(-2.0f);
  req.set_guidance(0.0);  // set, even to 0
  WFM_ASSERT_OK_AND_ASSIGN(const model::GaussianSampleRequest c, GaussianRequestFromProto(req));
  EXPECT_THAT(c.condition, ElementsAre(0.5f, -2.0f));
  EXPECT_EQ(c.guidance, std::optional<double>(0.0));
  req.clear_condition();
  req.clear_guidance();
  req.set_steps(0);
  WFM_ASSERT_OK_AND_ASSIGN(const model::GaussianSampleRequest d, GaussianRequestFromProto(req));
  EXPECT_EQ(d.steps, 16);  // the Gaussians' default: 16 Euler steps
  req.set_steps(-1);
  EXPECT_EQ(GaussianRequestFromProto(req).status(),
            absl::InvalidArgumentError("steps: must be >= 0 (0 = the family's default), got -1"));

  model::GeneratedGaussians g;
  g.dim = 1;
  g.means = {0.5, -0.5};
  g.covs = {2.0, 3.0};
  g.labels = {"a", "b"};
  g.trajectory_means = {1, 2, 3, 4};
  g.trajectory_covs = {5, 6, 7, 8};
  pb::SampleGaussiansResponse without;
  ToProto(g, /*frames=*/0, &without);
  EXPECT_EQ(without.dim(), 1);
  EXPECT_THAT(without.means(), ElementsAre(0.5, -0.5));
  EXPECT_THAT(without.covs(), ElementsAre(2.0, 3.0));
  EXPECT_THAT(without.labels(), ElementsAre("a", "b"));
  EXPECT_EQ(without.frames(), 0);
  EXPECT_THAT(without.trajectory_means(), IsEmpty());
  EXPECT_THAT(without.trajectory_covs(), IsEmpty());
  EXPECT_THAT(without.conditions(), IsEmpty());
  model::GeneratedGaussians conditioned = g;
  conditioned.labels.clear();
  conditioned.conditions = {1.0f, 0.0f, 0.0f, 1.0f};
  pb::SampleGaussiansResponse with_conditions;
  ToProto(conditioned, /*frames=*/0, &with_conditions);
  EXPECT_THAT(with_conditions.conditions(), ElementsAre(1.0f, 0.0f, 0.0f, 1.0f));
  EXPECT_THAT(with_conditions.labels(), IsEmpty());
  pb::SampleGaussiansResponse with;
  ToProto(g, /*frames=*/2, &with);
  EXPECT_EQ(with.frames(), 2);
  EXPECT_THAT(with.trajectory_means(), ElementsAre(1, 2, 3, 4));
  EXPECT_THAT(with.trajectory_covs(), ElementsAre(5, 6, 7, 8));
}

TEST(ProtoConvertTest, EvaluateOptionsDefaultsAndValues) {
  const EvaluateOptions d = EvaluateOptionsFromProto(pb::EvaluateRequest());
  EXPECT_EQ(d.split, "all");
  EXPECT_EQ(d.num_samples, 0);
  EXPECT_EQ(d.max_reference, 0);
  EXPECT_EQ(d.steps, 100);
  EXPECT_EQ(d.seed, 0u);
  EXPECT_TRUE(d.emd);  // unset: true

  pb::EvaluateRequest req;
  req.set_split("heldout");
  req.set_num_samples(8);
  req.set_max_reference(16);
  req.set_steps(12);
  req.set_seed(77);
  req.set_emd(false);
  const EvaluateOptions o = EvaluateOptionsFromProto(req);
  EXPECT_EQ(o.split, "heldout");
  EXPECT_EQ(o.num_samples, 8);
  EXPECT_EQ(o.max_reference, 16);
  EXPECT_EQ(o.steps, 12);
  EXPECT_EQ(o.seed, 77u);
  EXPECT_FALSE(o.emd);
  // Values the evaluator refuses pass through unchanged, for it to name.
  req.set_num_samples(-4);
  req.set_split("bogus");
  EXPECT_EQ(EvaluateOptionsFromProto(req).num_samples, -4);
  EXPECT_EQ(EvaluateOptionsFromProto(req).split, "bogus");
}

TEST(ProtoConvertTest, EvaluationResultsOfBothFamilies) {
  EvaluationResult r;
  r.family = model::Family::kPointCloud;
  r.generated = 8;
  r.reference = 10;
  r.chamfer = {0.55, 0.01, 0.7};
  r.emd = {0.6, 0.02, 0.8};
  r.has_emd = true;
  r.seconds = 1.25;
  pb::EvaluateResponse with_emd;
  ToProto(r, &with_emd);
  EXPECT_EQ(with_emd.family(), pb::FAMILY_POINTCLOUD);
  EXPECT_EQ(with_emd.generated(), 8);
  EXPECT_EQ(with_emd.reference(), 10);
  EXPECT_EQ(with_emd.chamfer().one_nna(), 0.55);
  EXPECT_EQ(with_emd.chamfer().mmd(), 0.01);
  EXPECT_EQ(with_emd.chamfer().cov(), 0.7);
  ASSERT_TRUE(with_emd.has_emd());
  EXPECT_EQ(with_emd.emd().one_nna(), 0.6);
  EXPECT_EQ(with_emd.emd().mmd(), 0.02);
  EXPECT_EQ(with_emd.emd().cov(), 0.8);
  EXPECT_FALSE(with_emd.has_bures());
  EXPECT_EQ(with_emd.seconds(), 1.25);
  r.has_emd = false;
  pb::EvaluateResponse without_emd;
  ToProto(r, &without_emd);
  EXPECT_FALSE(without_emd.has_emd());
  EXPECT_TRUE(without_emd.has_chamfer());

  EvaluationResult g;
  g.family = model::Family::kGaussian;
  g.generated = 3;
  g.reference = 4;
  g.bures = {0.5, 0.125, 0.75};
  g.mean_error = 0.03;
  g.covariance_error = 0.04;
  pb::EvaluateResponse gaussian;
  ToProto(g, &gaussian);
  EXPECT_EQ(gaussian.family(), pb::FAMILY_GAUSSIAN);
  EXPECT_EQ(gaussian.bures().one_nna(), 0.5);
  EXPECT_EQ(gaussian.bures().mmd(), 0.125);
  EXPECT_EQ(gaussian.bures().cov(), 0.75);
  EXPECT_EQ(gaussian.mean_error(), 0.03);
  EXPECT_EQ(gaussian.covariance_error(), 0.04);
  EXPECT_FALSE(gaussian.has_chamfer());
  EXPECT_FALSE(gaussian.has_emd());
}

// Given sources travel unchanged and define num_samples when it is 0; a
// num_samples that is set is kept (the model checks it against the count).
TEST(ProtoConvertTest, GivenSourcesOfSampleRequests) {
  pb::SampleNichesRequest niches;
  niches.set_model("m");
  for (float v : {1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f}) niches.add_init_points(v);
  niches.add_init_sizes(1);
  niches.add_init_sizes(2);
  WFM_ASSERT_OK_AND_ASSIGN(model::CloudSampleRequest c, CloudRequestFromProto(niches));
  EXPECT_EQ(c.num_samples, 2);
  EXPECT_EQ(c.init_sizes, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(c.init_points, (std::vector<float>{1, 2, 3, 4, 5, 6}));
  niches.set_num_samples(5);
  WFM_ASSERT_OK_AND_ASSIGN(c, CloudRequestFromProto(niches));
  EXPECT_EQ(c.num_samples, 5);

  pb::SampleGaussiansRequest gaussians;
  gaussians.set_model("m");
  for (double v : {0.5, -0.5, 1.0, 2.0}) gaussians.add_init_means(v);
  for (double v : {1.0, 0.0, 0.0, 1.0, 2.0, 1.0, 1.0, 2.0}) gaussians.add_init_covs(v);
  WFM_ASSERT_OK_AND_ASSIGN(model::GaussianSampleRequest g, GaussianRequestFromProto(gaussians));
  EXPECT_EQ(g.num_samples, 2);
  EXPECT_EQ(g.init_means, (std::vector<double>{0.5, -0.5, 1.0, 2.0}));
  EXPECT_EQ(g.init_covs.size(), 8u);
  gaussians.add_init_covs(1.0);  // 9 values: no [n, d, d] for 4 means
  EXPECT_EQ(GaussianRequestFromProto(gaussians).status(),
            absl::InvalidArgumentError(
                "init_covs: 9 values do not make [n, dim, dim] for the 4 values of init_means [n, dim]"));
  gaussians.set_num_samples(3);  // set: kept, the model names the mismatch
  WFM_ASSERT_OK_AND_ASSIGN(g, GaussianRequestFromProto(gaussians));
  EXPECT_EQ(g.num_samples, 3);
}

TEST(ProtoConvertTest, QueuePolicyOfSampleRequests) {
  pb::SampleNichesRequest niches;
  WFM_ASSERT_OK_AND_ASSIGN(QueuePolicy p, QueuePolicyFromProto(niches));
  EXPECT_EQ(p.priority, QueuePriority::kNormal);  // 0 = normal
  EXPECT_EQ(p.timeout, absl::InfiniteDuration());  // unset = none
  niches.set_priority(pb::SAMPLING_PRIORITY_HIGH);
  niches.set_queue_timeout_seconds(2.5);
  WFM_ASSERT_OK_AND_ASSIGN(p, QueuePolicyFromProto(niches));
  EXPECT_EQ(p.priority, QueuePriority::kHigh);
  EXPECT_EQ(p.timeout, absl::Milliseconds(2500));
  niches.set_queue_timeout_seconds(kMaxQueueTimeoutSeconds);  // the bound itself is allowed
  EXPECT_TRUE(QueuePolicyFromProto(niches).ok());

  pb::SampleGaussiansRequest gaussians;
  gaussians.set_priority(pb::SAMPLING_PRIORITY_LOW);
  WFM_ASSERT_OK_AND_ASSIGN(p, QueuePolicyFromProto(gaussians));
  EXPECT_EQ(p.priority, QueuePriority::kLow);
  gaussians.set_priority(static_cast<pb::SamplingPriority>(7));  // an open enum keeps it
  EXPECT_EQ(QueuePolicyFromProto(gaussians).status(),
            absl::InvalidArgumentError(
                "priority: unknown value 7; expected SAMPLING_PRIORITY_NORMAL (0), "
                "SAMPLING_PRIORITY_LOW (1) or SAMPLING_PRIORITY_HIGH (2)"));
  gaussians.set_priority(pb::SAMPLING_PRIORITY_NORMAL);
  for (double bad : {0.0, -1.0, 86400.5, std::numeric_limits<double>::quiet_NaN(),
                     std::numeric_limits<double>::infinity()}) {
    gaussians.set_queue_timeout_seconds(bad);
    const absl::Status s = QueuePolicyFromProto(gaussians).status();
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << bad;
    EXPECT_THAT(std::string(s.message()),
                ::testing::StartsWith("queue_timeout_seconds: must be in (0, 86400] seconds"))
        << bad;
  }
}

}  // namespace
}  // namespace wfm::server
