// Fixtures of the data set store, job record, validation and manager
// suites: headers, stores on temporary folders, uploads of the synthetic data
// sets of server_test_util.h, and a job manager with its stores.
#ifndef WFM_TESTS_SERVER_STORE_TEST_UTIL_H_
#define WFM_TESTS_SERVER_STORE_TEST_UTIL_H_

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/dataset_store.h"
#include "server/job_manager.h"
#include "server/metrics.h"
#include "server/model_registry.h"
#include "tests/server/server_test_util.h"

namespace wfm::testing {

// The matchers of the suites (which bring these names in with
// `using namespace ::wfm::testing`).
using ::testing::ElementsAre;
using ::testing::HasSubstr;

using server::CellChunkView;
using server::CloudChunkView;
using server::DatasetHeader;
using server::DatasetInfo;
using server::DatasetKind;
using server::DatasetStore;
using server::DatasetStoreOptions;
using server::DatasetUpload;
using server::GaussianChunkView;
using server::LabelType;

// The header of an upload of `kind` named `name`.
inline DatasetHeader StoreHeader(const std::string& name, DatasetKind kind, int64_t dim,
                                 LabelType labels = LabelType::kNone) {
  DatasetHeader h;
  h.name = name;
  h.kind = kind;
  h.dim = dim;
  h.label_type = labels;
  return h;
}

inline DatasetHeader CloudHeader(const std::string& name, LabelType labels = LabelType::kNone) {
  DatasetHeader h = StoreHeader(name, DatasetKind::kPointClouds, 2, labels);
  h.description = "test clouds";
  return h;
}

inline std::unique_ptr<DatasetStore> OpenStore(const std::string& root, int64_t limit = 1 << 30) {
  DatasetStoreOptions options;
  options.root = root;
  options.max_upload_bytes = limit;
  absl::StatusOr<std::unique_ptr<DatasetStore>> store = DatasetStore::Open(options);
  EXPECT_TRUE(store.ok()) << store.status();
  return std::move(store).value();
}

// Uploads `set` in chunks of `per_chunk` clouds.
inline absl::StatusOr<DatasetInfo> UploadClouds(DatasetStore& store, const DatasetHeader& header,
                                                const model::io::PointCloudSet& set,
                                                int64_t per_chunk) {
  absl::StatusOr<std::unique_ptr<DatasetUpload>> upload = store.BeginUpload(header);
  if (!upload.ok()) return upload.status();
  for (int64_t c = 0; c < set.num_clouds(); c += per_chunk) {
    const int64_t end = std::min(set.num_clouds(), c + per_chunk);
    std::vector<int64_t> sizes;
    for (int64_t i = c; i < end; ++i) sizes.push_back(set.cloud_size(i));
    CloudChunkView chunk;
    chunk.sizes = sizes;
    chunk.points = absl::MakeConstSpan(set.points.data() + set.offsets[c] * set.dim,
                                       (set.offsets[end] - set.offsets[c]) * set.dim);
    if (set.labels.kind == model::io::Labels::Kind::kString) {
      chunk.labels.assign(set.labels.strings.begin() + c, set.labels.strings.begin() + end);
    }
    absl::Status s = (*upload)->AddClouds(chunk);
    if (!s.ok()) return s;
  }
  return (*upload)->Finish();
}

// Stores `set` / `cells` as the data set `name` through an upload.
inline void StoreClouds(DatasetStore& datasets, const std::string& name,
                        const model::io::PointCloudSet& set) {
  auto upload = datasets.BeginUpload(
      StoreHeader(name, DatasetKind::kPointClouds, set.dim,
                  set.labels.empty() ? LabelType::kNone : LabelType::kDiscrete));
  ASSERT_TRUE(upload.ok()) << upload.status();
  std::vector<int64_t> sizes;
  for (int64_t c = 0; c < set.num_clouds(); ++c) sizes.push_back(set.cloud_size(c));
  ASSERT_TRUE((*upload)->AddClouds(CloudChunkView{sizes, set.points, set.labels.strings, {}}).ok());
  ASSERT_TRUE((*upload)->Finish().ok());
}

inline void StoreGaussians(DatasetStore& datasets, const std::string& name,
                           const model::io::GaussianSet& set) {
  auto upload = datasets.BeginUpload(StoreHeader(name, DatasetKind::kGaussians, set.dim));
  ASSERT_TRUE((*upload)->AddGaussians(GaussianChunkView{set.means, set.covs, {}, {}}).ok());
  ASSERT_TRUE((*upload)->Finish().ok());
}

inline void StoreCells(DatasetStore& datasets, const std::string& name,
                       const testing::Cells& cells) {
  auto upload = datasets.BeginUpload(
      StoreHeader(name, DatasetKind::kSpatialCells, cells.dim, LabelType::kDiscrete));
  const CellChunkView chunk{cells.features, cells.coords, cells.sample_ids, cells.labels, {}};
  ASSERT_TRUE((*upload)->AddCells(chunk).ok());
  ASSERT_TRUE((*upload)->Finish().ok());
}

}  // namespace wfm::testing

namespace wfm::server {

// A temporary data folder for a data set store rooted at root().
class DatasetsTest : public ::testing::Test {
 protected:
  testing::TempDir dir_;
  std::string root() const { return dir_.path() + "/datasets"; }
};

// A data set store, a model registry and a job manager on a temporary
// data folder.
class JobsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    DatasetStoreOptions store;
    store.root = dir_.path() + "/datasets";
    datasets_ = *DatasetStore::Open(store);
    models_ = *ModelRegistry::Open(dir_.path() + "/models");
    OpenJobs();
  }

  void OpenJobs(int max_jobs = 1, bool resume_interrupted = true) {
    jobs_.reset();
    JobManagerOptions options;
    options.root = dir_.path() + "/jobs";
    options.max_jobs = max_jobs;
    options.resume_interrupted = resume_interrupted;
    auto jobs = JobManager::Open(options, datasets_.get(), models_.get(), &metrics_);
    ASSERT_TRUE(jobs.ok()) << jobs.status();
    jobs_ = std::move(jobs).value();
  }

  void StoreClouds(const std::string& name, const model::io::PointCloudSet& set) {
    testing::StoreClouds(*datasets_, name, set);
  }
  void StoreGaussians(const std::string& name, const model::io::GaussianSet& set) {
    testing::StoreGaussians(*datasets_, name, set);
  }
  void StoreCells(const std::string& name, const testing::Cells& cells) {
    testing::StoreCells(*datasets_, name, cells);
  }

  TrainingRequest PointCloudRequest(const std::string& dataset, const std::string& model,
                                    int64_t steps = 20) {
    TrainingRequest r;
    r.dataset = dataset;
    r.model = model;
    r.config.family = model::Family::kPointCloud;
    r.config.pointcloud = testing::TinyPointCloudConfig(steps);
    return r;
  }

  // Waits for the job to end (at most a minute); its last status.
  JobStatus WaitForEnd(const std::string& id) { return WaitForEndOf(*jobs_, id); }
  // The same, of a job of `jobs`.
  JobStatus WaitForEndOf(JobManager& jobs, const std::string& id) {
    JobStatus last;
    for (int i = 0; i < 600; ++i) {
      absl::StatusOr<JobStatus> s = jobs.WaitForUpdate(id, last.version, absl::Milliseconds(100));
      if (!s.ok()) {
        ADD_FAILURE() << s.status();
        return last;
      }
      last = *std::move(s);
      if (IsTerminal(last.state)) return last;
    }
    ADD_FAILURE() << "job " << id << " did not end";
    return last;
  }

  // Waits until the job has run at least `steps` steps.
  void WaitForStep(const std::string& id, int64_t steps) {
    int64_t version = -1;
    for (int i = 0; i < 600; ++i) {
      auto s = jobs_->WaitForUpdate(id, version, absl::Milliseconds(100));
      if (!s.ok()) {
        ADD_FAILURE() << s.status();
        return;
      }
      if (s->step >= steps || IsTerminal(s->state)) return;
      version = s->version;
    }
  }

  testing::TempDir dir_;
  Metrics metrics_{"test"};
  std::unique_ptr<DatasetStore> datasets_;
  std::unique_ptr<ModelRegistry> models_;
  std::unique_ptr<JobManager> jobs_;
};

}  // namespace wfm::server

#endif  // WFM_TESTS_SERVER_STORE_TEST_UTIL_H_
