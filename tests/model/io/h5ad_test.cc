// .h5ad reading against files written by the anndata library (and an
// anndata 0.7 layout checked by it), writing checked by anndata itself, bad
// files, and atomic writes.
#include "model/io/h5ad.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <string>
#include <vector>

#include "tests/model/io/io_test_util.h"

namespace wfm::model::io {
namespace {

using namespace ::wfm::model::io::testing;  // NOLINT(build/namespaces): the io test helpers

class H5adFixtureTest : public ::testing::TestWithParam<std::string> {
 protected:
  const nlohmann::json& want() const { return Expected()["h5ad"][GetParam()]; }
};

TEST_P(H5adFixtureTest, ShapesNamesAndX) {
  auto file = H5adFile::Open(FixturePath(GetParam()));
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->n_obs(), want()["n_obs"].get<int64_t>());
  EXPECT_EQ(file->n_vars(), want()["n_vars"].get<int64_t>());
  auto x = file->ReadX();
  ASSERT_TRUE(x.ok()) << x.status();
  EXPECT_EQ(x->rows, file->n_obs());
  EXPECT_EQ(x->cols, file->n_vars());
  EXPECT_EQ(x->values, Floats(want()["X"]));
  auto obs_names = file->ObsNames();
  ASSERT_TRUE(obs_names.ok()) << obs_names.status();
  EXPECT_EQ(*obs_names, want()["obs_names"].get<std::vector<std::string>>());
  auto var_names = file->VarNames();
  ASSERT_TRUE(var_names.ok()) << var_names.status();
  EXPECT_EQ(*var_names, want()["var_names"].get<std::vector<std::string>>());
}

TEST_P(H5adFixtureTest, Obsm) {
  auto file = H5adFile::Open(FixturePath(GetParam()));
  ASSERT_TRUE(file.ok()) << file.status();
  auto keys = file->ObsmKeys();
  ASSERT_TRUE(keys.ok()) << keys.status();
  EXPECT_THAT(*keys, ElementsAre("X_pca", "spatial"));
  for (const std::string key : {"spatial", "X_pca"}) {
    SCOPED_TRACE(key);
    auto m = file->ReadObsm(key);
    ASSERT_TRUE(m.ok()) << m.status();
    const nlohmann::json& spec = want()["obsm"][key];
    EXPECT_EQ(m->rows, spec["shape"][0].get<int64_t>());
    EXPECT_EQ(m->cols, spec["shape"][1].get<int64_t>());
    EXPECT_EQ(m->values, Floats(spec["values"]));
  }
  auto features = file->ReadFeatures("obsm:X_pca");
  ASSERT_TRUE(features.ok()) << features.status();
  EXPECT_EQ(features->cols, 5);
}

TEST_P(H5adFixtureTest, ObsColumnsOfEveryKind) {
  auto file = H5adFile::Open(FixturePath(GetParam()));
  ASSERT_TRUE(file.ok()) << file.status();
  for (const auto& [name, spec] : want()["obs"].items()) {
    SCOPED_TRACE(name);
    auto column = file->ReadObsColumn(name);
    ASSERT_TRUE(column.ok()) << column.status();
    const std::string kind = spec["kind"];
    if (kind == "categorical") {
      ASSERT_EQ(column->kind, ObsColumn::Kind::kCategorical);
      EXPECT_EQ(column->categories, spec["categories"].get<std::vector<std::string>>());
      EXPECT_EQ(column->codes, spec["codes"].get<std::vector<int64_t>>());
      EXPECT_FALSE(column->ordered);
    } else if (kind == "integer") {
      ASSERT_EQ(column->kind, ObsColumn::Kind::kInteger);
      EXPECT_EQ(column->integers, spec["values"].get<std::vector<int64_t>>());
    } else if (kind == "float") {
      ASSERT_EQ(column->kind, ObsColumn::Kind::kFloat);
      EXPECT_EQ(column->floats, spec["values"].get<std::vector<double>>());
    } else if (kind == "bool") {
      ASSERT_EQ(column->kind, ObsColumn::Kind::kBool);
      std::vector<int64_t> want_values;
      for (bool b : spec["values"]) want_values.push_back(b ? 1 : 0);
      EXPECT_EQ(column->integers, want_values);
    } else {
      ASSERT_EQ(column->kind, ObsColumn::Kind::kString);
      EXPECT_EQ(column->strings, spec["values"].get<std::vector<std::string>>());
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AnndataFiles, H5adFixtureTest,
                         ::testing::Values("cells_dense_f32.h5ad", "cells_dense_f64.h5ad",
                                           "cells_dense_int.h5ad", "cells_csr.h5ad",
                                           "cells_csc.h5ad", "cells_legacy_07.h5ad"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param.substr(6, info.param.size() - 11);
                           for (char& c : name) c = c == '.' ? '_' : c;
                           return name;
                         });

TEST(H5adReadTest, ColumnOrderAndLabels) {
  auto file = H5adFile::Open(FixturePath("cells_dense_f32.h5ad"));
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_THAT(*file->ObsColumns(), ElementsAre("cell_type", "sample", "cluster", "region",
                                               "n_counts", "score", "flag", "note"));
  // Integer categories read as text, as pandas prints them.
  EXPECT_THAT(file->ReadObsColumn("cluster")->categories, ElementsAre("1", "3", "7"));

  auto cell_type = ObsColumnToLabels(*file->ReadObsColumn("cell_type"), "cell_type");
  ASSERT_TRUE(cell_type.ok());
  EXPECT_EQ(cell_type->kind, Labels::Kind::kString);
  EXPECT_EQ(cell_type->strings[5], "\xce\xb2-cell");
  auto score = ObsColumnToLabels(*file->ReadObsColumn("score"), "score");
  ASSERT_TRUE(score.ok());
  EXPECT_EQ(score->kind, Labels::Kind::kContinuous);
  EXPECT_EQ(score->values[0], -1.0f);
  auto region = ObsColumnToLabels(*file->ReadObsColumn("region"), "region");
  EXPECT_EQ(region.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(region.status().message(), HasSubstr("obs/region: cell 1 has no category"));
  EXPECT_EQ(file->ReadObsColumn("region")->ToStrings()[1], "");
}

TEST(H5adReadTest, MissingKeysNameWhatIsAvailable) {
  auto file = H5adFile::Open(FixturePath("cells_csr.h5ad"));
  ASSERT_TRUE(file.ok()) << file.status();
  auto umap = file->ReadObsm("X_umap");
  EXPECT_EQ(umap.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(
      umap.status().message(),
      AllOf(HasSubstr("cells_csr.h5ad: obsm/X_umap: not found; available: X_pca, spatial")));
  auto column = file->ReadObsColumn("batch");
  EXPECT_THAT(column.status().message(),
              HasSubstr("obs/batch: not found; available columns: cell_type, sample"));
  EXPECT_THAT(file->ReadFeatures("pca").status().message(), HasSubstr("expected X or obsm:KEY"));
}

TEST(H5adReadTest, NanInObsmIsRejected) {
  auto file = H5adFile::Open(FixturePath("bad_nan_spatial.h5ad"));
  ASSERT_TRUE(file.ok()) << file.status();
  auto spatial = file->ReadObsm("spatial");
  EXPECT_EQ(spatial.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(spatial.status().message(),
              AllOf(HasSubstr("obsm/spatial"), HasSubstr("[3, 1] = nan"), HasSubstr("finite")));
}

// ReadObsmArray: a dense obsm array of any rank as float64 with its shape
// (Gaussians' covariances [n_obs, d, d]); the same values as ReadObsm for a
// matrix, the same rules (known key, first dimension n_obs, finite).
TEST(H5adReadTest, ObsmArraysKeepTheirShapeAndDoublePrecision) {
  auto file = H5adFile::Open(FixturePath("cells_dense_f64.h5ad"));
  ASSERT_TRUE(file.ok()) << file.status();
  auto matrix = file->ReadObsm("spatial");
  ASSERT_TRUE(matrix.ok()) << matrix.status();
  auto array = file->ReadObsmArray("spatial");
  ASSERT_TRUE(array.ok()) << array.status();
  EXPECT_THAT(array->shape, ElementsAre(file->n_obs(), matrix->cols));
  ASSERT_EQ(array->values.size(), matrix->values.size());
  for (size_t i = 0; i < array->values.size(); ++i) {
    EXPECT_EQ(static_cast<float>(array->values[i]), matrix->values[i]) << i;
  }
  EXPECT_THAT(file->ReadObsmArray("X_umap").status().message(),
              HasSubstr("obsm/X_umap: not found; available: X_pca, spatial"));
  auto bad = H5adFile::Open(FixturePath("bad_nan_spatial.h5ad"));
  ASSERT_TRUE(bad.ok()) << bad.status();
  EXPECT_THAT(bad->ReadObsmArray("spatial").status().message(),
              AllOf(HasSubstr("obsm/spatial"), HasSubstr("= nan"), HasSubstr("finite")));
}

// indptr [0, 1, 5, 3] with nnz 3: row 1 would read past data and indices.
// The whole of indptr is checked before any entry is read (a fuzzer found
// the overrun: fuzz/regressions/h5ad/asan_sparse_indptr_overrun.h5ad).
TEST(H5adReadTest, SparseIndptrIsCheckedBeforeAnyEntryIsRead) {
  auto file = H5adFile::Open(FixturePath("bad_indptr_not_monotonic.h5ad"));
  ASSERT_TRUE(file.ok()) << file.status();
  auto x = file->ReadX();
  EXPECT_EQ(x.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(x.status().message(),
              AllOf(HasSubstr("X"), HasSubstr("indptr[3] < indptr[2]: indptr must be non-decreasing")));
}

PointCloudSet GeneratedNiches();

// Captures what is written to file descriptor 2 while `body` runs.
template <typename Body>
std::string CaptureStderr(Body body) {
  TempDir dir;
  const std::string path = dir.File("stderr");
  fflush(stderr);
  const int saved = dup(2);
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  dup2(fd, 2);
  close(fd);
  body();
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  return ReadBytes(path);
}

TEST(H5adReadTest, TruncatedFileIsAClearErrorAndHdf5PrintsNothing) {
  TempDir dir;
  const std::string bytes = ReadBytes(FixturePath("cells_dense_f32.h5ad"));
  const std::string path = dir.File("truncated.h5ad");
  WriteBytes(path, bytes.substr(0, bytes.size() / 2));
  absl::Status status;
  const std::string printed = CaptureStderr([&] { status = H5adFile::Open(path).status(); });
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(status.message(), AllOf(HasSubstr(path), HasSubstr("truncated")));
  EXPECT_EQ(printed, "");
}

TEST(H5adReadTest, NoHdf5ObjectOutlivesItsFile) {
  ASSERT_EQ(OpenHdf5ObjectCount(), 0);
  {
    auto file = H5adFile::Open(FixturePath("cells_legacy_07.h5ad"));
    ASSERT_TRUE(file.ok()) << file.status();
    EXPECT_GE(OpenHdf5ObjectCount(), 1);  // the file itself
    const int64_t baseline = OpenHdf5ObjectCount();
    ASSERT_TRUE(file->ReadX().ok());
    ASSERT_TRUE(file->ReadObsm("spatial").ok());
    ASSERT_TRUE(file->ReadObsColumn("cell_type").ok());  // dereferences categories
    ASSERT_TRUE(file->ObsNames().ok());
    EXPECT_FALSE(file->ReadObsm("missing").ok());
    EXPECT_FALSE(file->ReadObsColumn("missing").ok());
    EXPECT_EQ(OpenHdf5ObjectCount(), baseline);
  }
  EXPECT_EQ(OpenHdf5ObjectCount(), 0);
  TempDir dir;
  ASSERT_TRUE(WriteNichesH5ad(dir.File("n.h5ad"), GeneratedNiches()).ok());
  EXPECT_EQ(OpenHdf5ObjectCount(), 0);
  EXPECT_FALSE(H5adFile::Open(FixturePath("clouds_int_labels.npz")).ok());
  EXPECT_EQ(OpenHdf5ObjectCount(), 0);
}

TEST(H5adReadTest, NotHdf5AndMissingFiles) {
  TempDir dir;
  const std::string path = dir.File("text.h5ad");
  WriteBytes(path, "plain text");
  EXPECT_THAT(H5adFile::Open(path).status().message(), HasSubstr("not an HDF5"));
  EXPECT_EQ(H5adFile::Open(dir.File("missing.h5ad")).status().code(), absl::StatusCode::kNotFound);
}

PointCloudSet GeneratedNiches() {
  PointCloudSet set;
  set.dim = 3;
  set.offsets = {0, 2, 5, 6};
  for (int i = 0; i < 18; ++i) set.points.push_back(0.25f * i - 1.0f);
  return set;
}

// The JSON check_h5ad.py compares anndata's view of a written file with.
nlohmann::ordered_json NicheExpectation(const PointCloudSet& set,
                                        const std::vector<std::string>& var_names) {
  nlohmann::ordered_json want;
  want["n_obs"] = set.num_points();
  want["n_vars"] = set.dim;
  want["X"] = std::vector<double>(set.points.begin(), set.points.end());
  std::vector<std::string> obs_names;
  for (int64_t i = 0; i < set.num_points(); ++i) obs_names.push_back(std::to_string(i));
  want["obs_names"] = obs_names;
  want["var_names"] = var_names;
  std::vector<int64_t> sample;
  for (int64_t c = 0; c < set.num_clouds(); ++c) {
    for (int64_t j = set.offsets[c]; j < set.offsets[c + 1]; ++j) sample.push_back(c);
  }
  want["obs"]["sample"] = {{"kind", "integer"}, {"values", sample}};
  want["obsm"] = nlohmann::ordered_json::object();
  return want;
}

TEST(WriteNichesH5adTest, AnndataReadsStringConditions) {
  TempDir dir;
  PointCloudSet set = GeneratedNiches();
  set.labels = Labels::FromStrings({"tumour", "\xce\xb2-cell", "tumour"});
  const std::string path = dir.File("niches.h5ad");
  ASSERT_TRUE(WriteNichesH5ad(path, set).ok());
  EXPECT_THAT(dir.List(), ElementsAre("niches.h5ad"));

  nlohmann::ordered_json want = NicheExpectation(set, {"f0", "f1", "f2"});
  // Categories sorted (UTF-8 byte order): "tumour" < "β-cell".
  want["obs"]["condition"] = {{"kind", "categorical"},
                              {"categories", {"tumour", "\xce\xb2-cell"}},
                              {"codes", {0, 0, 1, 1, 1, 0}}};
  WriteBytes(dir.File("want.json"), want.dump());
  const auto result = RunPythonChecker("check_h5ad.py", {path, dir.File("want.json")});
  EXPECT_EQ(result.exit_code, 0) << result.output;

  // Our reader agrees.
  auto file = H5adFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->ReadX()->values, set.points);
  EXPECT_THAT(file->ReadObsColumn("sample")->integers, ElementsAre(0, 0, 1, 1, 1, 2));
  EXPECT_THAT(
      file->ReadObsColumn("condition")->ToStrings(),
      ElementsAre("tumour", "tumour", "\xce\xb2-cell", "\xce\xb2-cell", "\xce\xb2-cell", "tumour"));
}

TEST(WriteNichesH5adTest, IntegerConditionsSortNumericallyAndVarNamesAreKept) {
  TempDir dir;
  PointCloudSet set = GeneratedNiches();
  set.labels = Labels::FromIntegers({10, 2, 10});
  NichesH5adOptions options;
  options.var_names = {"PC1", "PC2", "PC3"};
  const std::vector<float> spatial = {0, 0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0};
  options.obsm.push_back({"spatial", 2, absl::MakeConstSpan(spatial)});
  const std::string path = dir.File("niches.h5ad");
  ASSERT_TRUE(WriteNichesH5ad(path, set, options).ok());
  nlohmann::ordered_json want = NicheExpectation(set, options.var_names);
  want["obs"]["condition"] = {
      {"kind", "categorical"}, {"categories", {"2", "10"}}, {"codes", {1, 1, 0, 0, 0, 1}}};
  want["obsm"]["spatial"] = {{"shape", {6, 2}},
                             {"values", std::vector<double>(spatial.begin(), spatial.end())}};
  WriteBytes(dir.File("want.json"), want.dump());
  const auto result = RunPythonChecker("check_h5ad.py", {path, dir.File("want.json")});
  EXPECT_EQ(result.exit_code, 0) << result.output;
}

TEST(WriteNichesH5adTest, ContinuousConditionsGoToObsm) {
  TempDir dir;
  PointCloudSet set = GeneratedNiches();
  set.labels = Labels::FromContinuous({0.5f, 1.0f, -1.0f, 2.0f, 0.0f, 3.0f}, 2);
  const std::string path = dir.File("niches.h5ad");
  ASSERT_TRUE(WriteNichesH5ad(path, set).ok());
  nlohmann::ordered_json want = NicheExpectation(set, {"f0", "f1", "f2"});
  want["obsm"]["condition"] = {
      {"shape", {6, 2}},
      {"values", {0.5, 1.0, 0.5, 1.0, -1.0, 2.0, -1.0, 2.0, -1.0, 2.0, 0.0, 3.0}}};
  WriteBytes(dir.File("want.json"), want.dump());
  const auto result = RunPythonChecker("check_h5ad.py", {path, dir.File("want.json")});
  EXPECT_EQ(result.exit_code, 0) << result.output;
}

TEST(WriteH5adTest, EveryColumnKindReadsBackInAnndata) {
  TempDir dir;
  const std::vector<float> x = {1, 2, 3, 4, 5, 6};
  H5adContent content;
  content.n_obs = 3;
  content.n_vars = 2;
  content.x = absl::MakeConstSpan(x);
  content.obs_names = {"a", "b", "c"};
  H5adColumn ints{"count", ObsColumn::Kind::kInteger, {5, -6, 7}, {}, {}, {}, {}};
  H5adColumn flags{"flag", ObsColumn::Kind::kBool, {1, 0, 1}, {}, {}, {}, {}};
  H5adColumn floats{"score", ObsColumn::Kind::kFloat, {}, {0.5, -1e-3, 2.0}, {}, {}, {}};
  H5adColumn text{"note", ObsColumn::Kind::kString, {}, {}, {"x", "", "z z"}, {}, {}};
  H5adColumn cats{"type", ObsColumn::Kind::kCategorical, {}, {}, {}, {"B", "T"}, {1, -1, 0}};
  content.obs = {ints, flags, floats, text, cats};
  const std::string path = dir.File("all.h5ad");
  ASSERT_TRUE(WriteH5ad(path, content).ok());

  nlohmann::ordered_json want;
  want["n_obs"] = 3;
  want["n_vars"] = 2;
  want["X"] = std::vector<double>(x.begin(), x.end());
  want["obs_names"] = content.obs_names;
  want["var_names"] = {"f0", "f1"};
  want["obs"]["count"] = {{"kind", "integer"}, {"values", {5, -6, 7}}};
  want["obs"]["flag"] = {{"kind", "bool"}, {"values", {true, false, true}}};
  want["obs"]["score"] = {{"kind", "float"}, {"values", {0.5, -1e-3, 2.0}}};
  want["obs"]["note"] = {{"kind", "string"}, {"values", {"x", "", "z z"}}};
  want["obs"]["type"] = {
      {"kind", "categorical"}, {"categories", {"B", "T"}}, {"codes", {1, -1, 0}}};
  want["obsm"] = nlohmann::ordered_json::object();
  WriteBytes(dir.File("want.json"), want.dump());
  const auto result = RunPythonChecker("check_h5ad.py", {path, dir.File("want.json")});
  EXPECT_EQ(result.exit_code, 0) << result.output;

  auto file = H5adFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->ReadObsColumn("flag")->kind, ObsColumn::Kind::kBool);
  EXPECT_THAT(file->ReadObsColumn("type")->codes, ElementsAre(1, -1, 0));
}

TEST(WriteH5adTest, InvalidContentIsRejectedBeforeWriting) {
  TempDir dir;
  const std::vector<float> x = {1, 2};
  H5adContent content;
  content.n_obs = 2;
  content.n_vars = 1;
  content.x = absl::MakeConstSpan(x);
  content.obs = {H5adColumn{"c", ObsColumn::Kind::kCategorical, {}, {}, {}, {"A"}, {0, 3}}};
  EXPECT_THAT(WriteH5ad(dir.File("x.h5ad"), content).message(),
              HasSubstr("obs/c: code 3 of cell 1 is outside [-1, 1)"));
  content.obs = {H5adColumn{"c", ObsColumn::Kind::kInteger, {1}, {}, {}, {}, {}}};
  EXPECT_THAT(WriteH5ad(dir.File("x.h5ad"), content).message(),
              HasSubstr("obs/c: 1 values; needs n_obs = 2"));
  content.obs.clear();
  content.obs_names = {"same", "same"};
  EXPECT_THAT(WriteH5ad(dir.File("x.h5ad"), content).message(), HasSubstr("appears twice"));
  EXPECT_TRUE(dir.List().empty());
}

TEST(WriteH5adTest, FailedWritesKeepTheOldFileAndLeaveNoTemporaryFile) {
  TempDir dir;
  const std::string path = dir.File("niches.h5ad");
  ASSERT_TRUE(WriteNichesH5ad(path, GeneratedNiches()).ok());
  const std::string old_bytes = ReadBytes(path);

  EXPECT_EQ(WriteNichesH5ad(dir.File("missing/x.h5ad"), GeneratedNiches()).code(),
            absl::StatusCode::kNotFound);

  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    signal(SIGXFSZ, SIG_IGN);
    rlimit limit = {16 << 10, 16 << 10};
    setrlimit(RLIMIT_FSIZE, &limit);
    PointCloudSet big;
    big.dim = 8;
    big.points.assign(8 << 16, 0.5f);
    big.offsets = {0, 1 << 16};
    _exit(WriteNichesH5ad(path, big).ok() ? 0 : 1);
  }
  int wait_status = 0;
  ASSERT_EQ(waitpid(child, &wait_status, 0), child);
  ASSERT_TRUE(WIFEXITED(wait_status));
  EXPECT_EQ(WEXITSTATUS(wait_status), 1) << "the limited write must fail";
  EXPECT_EQ(ReadBytes(path), old_bytes);
  EXPECT_THAT(dir.List(), ElementsAre("niches.h5ad"));
}

}  // namespace
}  // namespace wfm::model::io
