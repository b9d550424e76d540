// Upload headers and chunking (client/upload.h) and spatial cells read from
// .h5ad files (client/cells.h).
#include "client/upload.h"

#include <string>
#include <vector>

#include "client/cells.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace wfm::client {
namespace {

namespace io = ::wfm::model::io;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

const std::string kFixtures = std::string(WFM_SOURCE_DIR) + "/tests/fixtures/";

UploadInfo Info(const std::string& name) {
  UploadInfo info;
  info.name = name;
  return info;
}

// C clouds of sizes 1..C in dimension d with values encoding (cloud, point, j).
io::PointCloudSet MakeClouds(int64_t c, int64_t d) {
  io::PointCloudSet set;
  set.dim = d;
  set.offsets = {0};
  std::vector<std::string> labels;
  for (int64_t i = 0; i < c; ++i) {
    for (int64_t p = 0; p <= i; ++p) {
      for (int64_t j = 0; j < d; ++j) set.points.push_back(static_cast<float>(i * 1000 + p * 10 + j));
    }
    set.offsets.push_back(set.offsets.back() + i + 1);
    labels.push_back("label-" + std::to_string(i % 3));
  }
  set.labels = io::Labels::FromStrings(labels);
  return set;
}

TEST(UploadTest, LabelStrings) {
  EXPECT_THAT(LabelStrings(io::Labels::FromIntegers({3, -1})), ElementsAre("3", "-1"));
  EXPECT_THAT(LabelStrings(io::Labels::FromStrings({"a", "β"})), ElementsAre("a", "β"));
  EXPECT_TRUE(LabelStrings(io::Labels()).empty());
  EXPECT_TRUE(LabelStrings(io::Labels::FromContinuous({1, 2}, 1)).empty());
}

TEST(UploadTest, PointCloudHeaderFromTheData) {
  io::PointCloudSet set = MakeClouds(4, 3);
  absl::StatusOr<v1::DatasetHeader> h = PointCloudHeader({"shapes", "desc", true}, set);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->name(), "shapes");
  EXPECT_EQ(h->description(), "desc");
  EXPECT_TRUE(h->overwrite());
  EXPECT_EQ(h->kind(), v1::POINT_CLOUDS);
  EXPECT_EQ(h->dim(), 3);
  EXPECT_EQ(h->label_type(), v1::LABEL_TYPE_DISCRETE);

  set.labels = io::Labels::FromContinuous(std::vector<float>(8, 0.5f), 2);
  h = PointCloudHeader(Info("c"), set);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->label_type(), v1::LABEL_TYPE_CONTINUOUS);
  EXPECT_EQ(h->condition_dim(), 2);

  set.labels = {};
  h = PointCloudHeader(Info("n"), set);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->label_type(), v1::LABEL_TYPE_NONE);

  set.points[5] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THAT(PointCloudHeader(Info("n"), set).status().message(), HasSubstr("finite"));
}

TEST(UploadTest, GaussianHeaderTakesContinuousLabels) {
  io::GaussianSet g;
  g.dim = 2;
  g.means = {0, 0, 1, 1};
  g.covs = {1, 0, 0, 1, 2, 0.5, 0.5, 1};
  absl::StatusOr<v1::DatasetHeader> h = GaussianHeader(Info("g"), g);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->kind(), v1::GAUSSIANS);
  EXPECT_EQ(h->label_type(), v1::LABEL_TYPE_NONE);
  g.labels = io::Labels::FromContinuous({0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f}, 3);
  h = GaussianHeader(Info("g"), g);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->label_type(), v1::LABEL_TYPE_CONTINUOUS);
  EXPECT_EQ(h->condition_dim(), 3);
  g.labels = {};
  g.covs[0] = -1;  // not positive definite
  EXPECT_THAT(GaussianHeader(Info("g"), g).status().message(), HasSubstr("positive definite"));
}

// Chunks hold whole clouds, stay under the budget unless one cloud alone is
// larger, and concatenate back to the input.
TEST(UploadTest, PointCloudChunksRebuildTheSet) {
  const io::PointCloudSet set = MakeClouds(40, 3);
  const int64_t budget = 600;  // bytes: a few clouds per chunk, the largest alone
  PointCloudChunker chunker(set, budget);
  EXPECT_EQ(chunker.items_total(), 40);
  v1::UploadDatasetRequest request;
  std::vector<float> points;
  std::vector<int64_t> sizes;
  std::vector<std::string> labels;
  int chunks = 0;
  while (chunker.Next(&request)) {
    ASSERT_TRUE(request.has_clouds());
    const v1::PointCloudChunk& c = request.clouds();
    ASSERT_GE(c.sizes_size(), 1);
    EXPECT_EQ(c.labels_size(), c.sizes_size());
    int64_t n = 0;
    for (int64_t s : c.sizes()) n += s;
    EXPECT_EQ(c.points_size(), n * 3);
    if (c.sizes_size() > 1) {
      EXPECT_LE(c.ByteSizeLong(), static_cast<size_t>(budget) + 64);
    }
    points.insert(points.end(), c.points().begin(), c.points().end());
    sizes.insert(sizes.end(), c.sizes().begin(), c.sizes().end());
    labels.insert(labels.end(), c.labels().begin(), c.labels().end());
    ++chunks;
    EXPECT_EQ(chunker.items_sent(), static_cast<int64_t>(sizes.size()));
  }
  EXPECT_GT(chunks, 5);
  EXPECT_EQ(points, set.points);
  ASSERT_EQ(sizes.size(), 40u);
  for (int64_t i = 0; i < 40; ++i) EXPECT_EQ(sizes[i], i + 1);
  EXPECT_EQ(labels, set.labels.strings);
  EXPECT_FALSE(chunker.Next(&request));
}

TEST(UploadTest, DefaultBudgetKeepsMessagesUnderTwoMegabytes) {
  io::PointCloudSet set;
  set.dim = 16;
  set.offsets = {0};
  for (int i = 0; i < 300; ++i) set.offsets.push_back(set.offsets.back() + 256);
  set.points.assign(set.offsets.back() * 16, 0.25f);
  PointCloudChunker chunker(set);
  v1::UploadDatasetRequest request;
  int64_t clouds = 0;
  while (chunker.Next(&request)) {
    EXPECT_LE(request.ByteSizeLong(), 2u << 20);
    clouds += request.clouds().sizes_size();
  }
  EXPECT_EQ(clouds, 300);
}

TEST(UploadTest, ContinuousConditionsTravelWithTheirClouds) {
  io::PointCloudSet set = MakeClouds(10, 2);
  std::vector<float> conditions;
  for (int i = 0; i < 10; ++i) conditions.insert(conditions.end(), {float(i), float(-i)});
  set.labels = io::Labels::FromContinuous(conditions, 2);
  PointCloudChunker chunker(set, 100);
  v1::UploadDatasetRequest request;
  std::vector<float> seen;
  while (chunker.Next(&request)) {
    EXPECT_EQ(request.clouds().conditions_size(), 2 * request.clouds().sizes_size());
    EXPECT_EQ(request.clouds().labels_size(), 0);
    seen.insert(seen.end(), request.clouds().conditions().begin(),
                request.clouds().conditions().end());
  }
  EXPECT_EQ(seen, conditions);
}

TEST(UploadTest, ContinuousConditionsTravelWithTheirGaussians) {
  io::GaussianSet g;
  g.dim = 2;
  std::vector<float> conditions;
  for (int i = 0; i < 9; ++i) {
    g.means.insert(g.means.end(), {double(i), 0.0});
    g.covs.insert(g.covs.end(), {1.0, 0.0, 0.0, 1.0 + i});
    conditions.insert(conditions.end(), {float(i), 0.5f, float(-i)});
  }
  g.labels = io::Labels::FromContinuous(conditions, 3);
  GaussianChunker chunker(g, 200);  // 48 bytes of means and covs + 12 of conditions each
  v1::UploadDatasetRequest request;
  std::vector<float> seen;
  int chunks = 0;
  while (chunker.Next(&request)) {
    ++chunks;
    const int n = request.gaussians().means_size() / 2;
    EXPECT_EQ(n, 3);  // 3 x 60 bytes fit the budget, 4 do not
    EXPECT_EQ(request.gaussians().conditions_size(), 3 * n);
    EXPECT_EQ(request.gaussians().labels_size(), 0);
    seen.insert(seen.end(), request.gaussians().conditions().begin(),
                request.gaussians().conditions().end());
  }
  EXPECT_EQ(chunks, 3);
  EXPECT_EQ(seen, conditions);
}

TEST(UploadTest, GaussianChunksRebuildTheSet) {
  io::GaussianSet g;
  g.dim = 3;
  std::vector<int64_t> labels;
  for (int i = 0; i < 25; ++i) {
    g.means.insert(g.means.end(), {double(i), 1.0, -1.0});
    for (int r = 0; r < 3; ++r) {
      for (int c = 0; c < 3; ++c) g.covs.push_back(r == c ? 1.0 + i : 0.1);
    }
    labels.push_back(i % 2);
  }
  g.labels = io::Labels::FromIntegers(labels);
  GaussianChunker chunker(g, 200);
  v1::UploadDatasetRequest request;
  std::vector<double> means, covs;
  std::vector<std::string> seen_labels;
  while (chunker.Next(&request)) {
    ASSERT_TRUE(request.has_gaussians());
    const auto& c = request.gaussians();
    EXPECT_EQ(c.covs_size(), c.means_size() * 3);
    means.insert(means.end(), c.means().begin(), c.means().end());
    covs.insert(covs.end(), c.covs().begin(), c.covs().end());
    seen_labels.insert(seen_labels.end(), c.labels().begin(), c.labels().end());
  }
  EXPECT_EQ(means, g.means);
  EXPECT_EQ(covs, g.covs);
  ASSERT_EQ(seen_labels.size(), 25u);
  EXPECT_EQ(seen_labels[0], "0");
  EXPECT_EQ(seen_labels[1], "1");
}

TEST(UploadTest, CellChunksRebuildTheCells) {
  SpatialCells cells;
  cells.dim = 4;
  for (int i = 0; i < 50; ++i) {
    for (int j = 0; j < 4; ++j) cells.features.push_back(float(i * 4 + j));
    cells.coords.insert(cells.coords.end(), {float(i), float(2 * i)});
    cells.sample_ids.push_back(i < 20 ? "s1" : "s2");
    cells.labels.push_back(i % 3 == 0 ? "T" : "B");
  }
  ASSERT_TRUE(CellHeader(Info("cells"), cells).ok());
  EXPECT_EQ(CellHeader(Info("cells"), cells)->kind(), v1::SPATIAL_CELLS);
  EXPECT_EQ(CellHeader(Info("cells"), cells)->feature_names_size(), 0);
  cells.feature_names = {"Cd3e", "Cd19", "Ms4a1", "Actb"};
  EXPECT_THAT(CellHeader(Info("cells"), cells)->feature_names(),
              ElementsAre("Cd3e", "Cd19", "Ms4a1", "Actb"));
  CellChunker chunker(cells, 150);
  v1::UploadDatasetRequest request;
  SpatialCells back;
  int chunks = 0;
  while (chunker.Next(&request)) {
    const auto& c = request.cells();
    const int n = c.coords_size() / 2;
    EXPECT_EQ(c.features_size(), n * 4);
    EXPECT_EQ(c.sample_ids_size(), n);
    EXPECT_EQ(c.labels_size(), n);
    back.features.insert(back.features.end(), c.features().begin(), c.features().end());
    back.coords.insert(back.coords.end(), c.coords().begin(), c.coords().end());
    back.sample_ids.insert(back.sample_ids.end(), c.sample_ids().begin(), c.sample_ids().end());
    back.labels.insert(back.labels.end(), c.labels().begin(), c.labels().end());
    ++chunks;
  }
  EXPECT_GT(chunks, 3);
  EXPECT_EQ(back.features, cells.features);
  EXPECT_EQ(back.coords, cells.coords);
  EXPECT_EQ(back.sample_ids, cells.sample_ids);
  EXPECT_EQ(back.labels, cells.labels);
}

TEST(UploadTest, ValidateSpatialCells) {
  SpatialCells cells;
  cells.dim = 2;
  cells.features = {1, 2, 3, 4};
  cells.coords = {0, 0, 1, 1};
  EXPECT_TRUE(ValidateSpatialCells(cells, "c").ok());
  SpatialCells bad = cells;
  bad.features.pop_back();
  EXPECT_THAT(ValidateSpatialCells(bad, "c").message(), HasSubstr("features"));
  bad = cells;
  bad.coords[3] = std::numeric_limits<float>::infinity();
  EXPECT_THAT(ValidateSpatialCells(bad, "c").message(), HasSubstr("coords[1, 1]"));
  bad = cells;
  bad.labels = {"a"};
  EXPECT_THAT(ValidateSpatialCells(bad, "c").message(), HasSubstr("labels: 1 entries for 2"));
  bad = cells;
  bad.sample_ids = {"a", ""};
  EXPECT_THAT(ValidateSpatialCells(bad, "c").message(), HasSubstr("sample_ids[1]"));
}

// The anndata-written fixture: values as make_fixtures.py wrote them.
TEST(CellsTest, ReadsFeaturesCoordinatesLabelsAndSamples) {
  CellReadOptions options;
  options.label_key = "cell_type";
  options.sample_key = "sample";
  absl::StatusOr<SpatialCells> cells =
      ReadSpatialCells(kFixtures + "client/cells.h5ad", options);
  ASSERT_TRUE(cells.ok()) << cells.status();
  EXPECT_EQ(cells->num_cells(), 120);
  EXPECT_EQ(cells->dim, 6);
  ASSERT_EQ(cells->labels.size(), 120u);
  ASSERT_EQ(cells->sample_ids.size(), 120u);
  EXPECT_EQ(cells->sample_ids.front(), "section_a");
  EXPECT_EQ(cells->sample_ids.back(), "section_b");
  // Types lie in bands along x: the first cells (x near 0) are B cells.
  EXPECT_EQ(cells->labels.front(), "B cell");
  for (const std::string& l : cells->labels) {
    EXPECT_TRUE(l == "B cell" || l == "T cell" || l == "tumour") << l;
  }
  // Section b is shifted by 500 in both coordinates.
  EXPECT_LT(cells->coords[0], 100);
  EXPECT_GT(cells->coords[2 * 119], 400);
  // X's features are named by var_names (sent as the data set's feature names).
  EXPECT_THAT(cells->feature_names,
              ElementsAre("gene_0", "gene_1", "gene_2", "gene_3", "gene_4", "gene_5"));

  options.features = "obsm:X_pca";
  absl::StatusOr<SpatialCells> pca = ReadSpatialCells(kFixtures + "client/cells.h5ad", options);
  ASSERT_TRUE(pca.ok()) << pca.status();
  EXPECT_EQ(pca->dim, 3);
  EXPECT_TRUE(pca->feature_names.empty());  // an obsm array names no features
}

TEST(CellsTest, MatchesTheIoFixtureValues) {
  // tests/fixtures/io/cells_dense_f32.h5ad: spatial [10, 2] as in expected.json.
  absl::StatusOr<SpatialCells> cells =
      ReadSpatialCells(kFixtures + "io/cells_dense_f32.h5ad", {});
  ASSERT_TRUE(cells.ok()) << cells.status();
  EXPECT_EQ(cells->num_cells(), 10);
  EXPECT_EQ(cells->dim, 4);
  EXPECT_TRUE(cells->labels.empty());
  EXPECT_TRUE(cells->sample_ids.empty());
}

TEST(CellsTest, Errors) {
  const std::string file = kFixtures + "client/cells.h5ad";
  CellReadOptions options;
  options.spatial_key = "X_pca";  // 3 varying columns: 3-D coordinates, every column kept
  absl::StatusOr<SpatialCells> three = ReadSpatialCells(file, options);
  ASSERT_TRUE(three.ok()) << three.status();
  EXPECT_EQ(three->spatial_dim, 3);
  EXPECT_EQ(three->num_cells(), 120);
  EXPECT_EQ(three->coords.size(), 360u);
  three->spatial_dim = 17;
  EXPECT_THAT(ValidateSpatialCells(*three, "c").message(),
              HasSubstr("coords: spatial dimension 17; must be in [1, 16]"));
  options = {};
  options.label_key = "score";
  EXPECT_THAT(ReadSpatialCells(file, options).status().message(), HasSubstr("float column"));
  EXPECT_EQ(ReadSpatialCells(kFixtures + "client/missing.h5ad", {}).status().code(),
            absl::StatusCode::kNotFound);
}

// fuzz/known_crashes/h5ad: files on which libhdf5 itself crashes, loops or
// exhausts memory. Read in a child process, each is an error and this process
// goes on.
TEST(CellsTest, FilesThatCrashLibhdf5AreErrors) {
  const std::string dir = std::string(WFM_SOURCE_DIR) + "/fuzz/known_crashes/h5ad/";
  CellReadOptions options;
  options.timeout = absl::Seconds(20);
  absl::StatusOr<SpatialCells> cells =
      ReadSpatialCells(dir + "hdf5_1.10.8_H5HG_read_wild_memcpy.h5ad", options);
  EXPECT_EQ(cells.status().code(), absl::StatusCode::kDataLoss) << cells.status();
  EXPECT_THAT(cells.status().message(), HasSubstr("the reader crashed"));

  options.timeout = absl::Seconds(2);
  cells = ReadSpatialCells(dir + "hdf5_1.10.8_H5HG_read_hang_vlen_attribute.h5ad", options);
  EXPECT_EQ(cells.status().code(), absl::StatusCode::kDeadlineExceeded) << cells.status();

  options.timeout = absl::Seconds(60);
  // libhdf5 asks malloc for 2^51 bytes: a plain build gets NULL and libhdf5
  // recovers (the file reads), AddressSanitizer stops the reader instead.
  for (const char* label_key : {"", "cell_type"}) {
    options.label_key = label_key;
    cells = ReadSpatialCells(dir + "hdf5_1.10.8_H5C_protect_huge_malloc.h5ad", options);
    EXPECT_TRUE(cells.ok() || cells.status().code() == absl::StatusCode::kDataLoss)
        << cells.status();
  }
  for (const char* name : {"hdf5_1.10.8_H5HG_read_segv_vlen_strings.h5ad",
                           "hdf5_1.10.8_H5Oopen_leak.h5ad", "hdf5_1.10.8_oom_2.8GB.h5ad",
                           "hdf5_1.10.8_compact_read_overflow.h5ad",
                           "hdf5_1.10.8_H5F_accum_read_null_memcpy.h5ad"}) {
    SCOPED_TRACE(name);
    for (const char* label_key : {"", "cell_type"}) {
      options.label_key = label_key;
      EXPECT_FALSE(ReadSpatialCells(dir + name, options).ok());
    }
  }
}

}  // namespace
}  // namespace wfm::client
