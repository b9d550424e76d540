// The data set store: data sets uploaded by clients, validated as they
// arrive (dataset_validation.h), persisted under <data-dir>/datasets/<name>/
// (one folder per data set, repository/dataset_record.h) and reloaded at
// start-up. Get and Load also find, by name, a data set that another server
// sharing the data folder published since start-up (read from its folder),
// so that jobs started or taken over here can train on it.
//
// A new data set is written into a staging folder (files fsynced) and renamed
// into place, so a reader or a restarted server sees a data set completely or
// not at all. A folder whose record is unreadable or does not match its data
// file is logged and skipped at start-up; it never stops the server.
//
// No gRPC here: the service converts its messages into the plain views of
// dataset_validation.h.
#ifndef WFM_SERVER_DATASET_STORE_H_
#define WFM_SERVER_DATASET_STORE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "model/common/mutex.h"
#include "model/io/point_sets.h"
#include "repository/dataset_record.h"
#include "repository/fs_util.h"
#include "server/dataset_validation.h"

namespace wfm::server {

class Metrics;

struct DatasetStoreOptions {
  std::string root;                         // <data-dir>/datasets
  int64_t max_upload_bytes = int64_t{1} << 30;  // payload bytes of one upload
};

class DatasetStore;

// One upload in progress: chunks are validated as they arrive (messages name
// the item across chunks, "clouds[12].points: NaN at point 3"); Finish()
// writes and publishes. Dropping an unfinished upload discards it.
class DatasetUpload {
 public:
  ~DatasetUpload();
  DatasetUpload(const DatasetUpload&) = delete;
  DatasetUpload& operator=(const DatasetUpload&) = delete;

  // INVALID_ARGUMENT for a chunk of another kind or with bad content;
  // RESOURCE_EXHAUSTED beyond max_upload_bytes. After an error the upload is
  // unusable (every later call fails the same way).
  absl::Status AddClouds(const CloudChunkView& chunk);
  absl::Status AddGaussians(const GaussianChunkView& chunk);
  absl::Status AddCells(const CellChunkView& chunk);

  // Payload bytes received so far.
  int64_t bytes() const { return bytes_; }

  // Checks the whole data set (at least one item, ...), writes it and
  // publishes it. ALREADY_EXISTS when the name was taken meanwhile (without
  // overwrite).
  absl::StatusOr<DatasetInfo> Finish();

 private:
  friend class DatasetStore;
  DatasetUpload(DatasetStore* store, DatasetHeader header);
  absl::Status AddBytes(int64_t bytes);
  absl::Status Fail(absl::Status status);

  DatasetStore* store_;
  DatasetHeader header_;
  absl::Status error_;
  int64_t bytes_ = 0;
  int64_t chunks_ = 0;
  bool finished_ = false;
  model::io::PointCloudSet clouds_;
  std::vector<std::string> cloud_labels_;
  std::vector<float> cloud_conditions_;
  model::io::GaussianSet gaussians_;
  std::vector<std::string> gaussian_labels_;
  std::vector<float> gaussian_conditions_;  // continuous: [Gaussians, condition_dim]
  CellSet cells_;
  std::vector<std::string> cell_labels_;
  std::vector<float> cell_conditions_;  // continuous: [cells, condition_dim]
  bool cells_have_sample_ids_ = false;
};

class DatasetStore {
 public:
  // Creates options.root when missing and loads every data set folder in it
  // (bad folders are logged and skipped). `metrics` may be null.
  static absl::StatusOr<std::unique_ptr<DatasetStore>> Open(const DatasetStoreOptions& options,
                                                            Metrics* metrics = nullptr);

  // Validates the header (name, kind, dim, label type) and starts an upload.
  // ALREADY_EXISTS when the name is taken and !header.overwrite.
  absl::StatusOr<std::unique_ptr<DatasetUpload>> BeginUpload(const DatasetHeader& header)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Records sorted by name.
  std::vector<DatasetInfo> List() const ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<DatasetInfo> Get(const std::string& name) const ABSL_LOCKS_EXCLUDED(mu_);
  // The data, read from disk (or shared with another reader that still holds
  // it). NOT_FOUND for an unknown name; DATA_LOSS when the file no longer
  // holds what the record says.
  absl::StatusOr<std::shared_ptr<const DatasetData>> Load(const std::string& name) const
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status Delete(const std::string& name) ABSL_LOCKS_EXCLUDED(mu_);
  int64_t size() const ABSL_LOCKS_EXCLUDED(mu_);

  const DatasetStoreOptions& options() const { return options_; }

 private:
  friend class DatasetUpload;
  DatasetStore(DatasetStoreOptions options, Metrics* metrics)
      : options_(std::move(options)), metrics_(metrics) {}
  void LoadAll() ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<DatasetInfo> Publish(const repository::StagingDir& staging, DatasetInfo info,
                                      bool overwrite) ABSL_LOCKS_EXCLUDED(mu_);
  void UpdateMetrics() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const DatasetStoreOptions options_;
  Metrics* const metrics_;
  mutable Mutex mu_;
  std::map<std::string, DatasetInfo> datasets_ ABSL_GUARDED_BY(mu_);
  // Loaded data still held by a reader, reused by the next Load of the same
  // version (keyed by name, checked against created_unix_ms).
  mutable std::map<std::string, std::weak_ptr<const DatasetData>> cache_ ABSL_GUARDED_BY(mu_);
};

}  // namespace wfm::server

#endif  // WFM_SERVER_DATASET_STORE_H_
