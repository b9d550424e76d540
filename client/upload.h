// Upload streams of the wfm API (UploadDataset, a client stream): the header
// built from the data, and chunkers that cut a data set into messages of
// whole items (clouds, Gaussians, cells) under a byte budget, so no message
// comes near gRPC's 4 MB default limit. A single item larger than the budget
// travels alone in its message.
#ifndef WFM_CLIENT_UPLOAD_H_
#define WFM_CLIENT_UPLOAD_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/cells.h"
#include "model/io/point_sets.h"
#include "wfm/v1/wfm_service.pb.h"

namespace wfm::client {

// What the user names; the rest of the header comes from the data.
struct UploadInfo {
  std::string name;         // [A-Za-z0-9._-]{1,64} (checked by the server)
  std::string description;  // free text
  bool overwrite = false;   // replace a data set of that name
};

// Payload bytes per message the chunkers aim for (~2 MB).
inline constexpr int64_t kDefaultChunkBytes = 2'000'000;

// Discrete labels as the API's label strings: integers in decimal, strings as
// they are. Empty for no labels (and for continuous labels).
std::vector<std::string> LabelStrings(const model::io::Labels& labels);

// Headers: kind, dim, label type (NONE, DISCRETE from integer or string
// labels, CONTINUOUS with condition_dim from float labels). Point clouds are
// validated (io::ValidatePointCloudSet), Gaussians too (io::ValidateGaussianSet).
absl::StatusOr<v1::DatasetHeader> PointCloudHeader(const UploadInfo& info,
                                                   const model::io::PointCloudSet& clouds);
absl::StatusOr<v1::DatasetHeader> GaussianHeader(const UploadInfo& info,
                                                 const model::io::GaussianSet& gaussians);
absl::StatusOr<v1::DatasetHeader> CellHeader(const UploadInfo& info, const SpatialCells& cells);

// Yields the data messages of one upload, in order. The viewed data set must
// outlive the chunker.
class UploadChunker {
 public:
  virtual ~UploadChunker() = default;
  // Fills `request` (cleared first) with the next chunk; false when done.
  virtual bool Next(v1::UploadDatasetRequest* request) = 0;
  virtual int64_t items_total() const = 0;
  virtual int64_t items_sent() const = 0;
};

// PointCloudChunk messages: whole clouds, labels or condition vectors with
// them.
class PointCloudChunker final : public UploadChunker {
 public:
  explicit PointCloudChunker(const model::io::PointCloudSet& clouds,
                             int64_t max_chunk_bytes = kDefaultChunkBytes);
  bool Next(v1::UploadDatasetRequest* request) override;
  int64_t items_total() const override { return clouds_.num_clouds(); }
  int64_t items_sent() const override { return next_; }

 private:
  const model::io::PointCloudSet& clouds_;
  const int64_t max_chunk_bytes_;
  const std::vector<std::string> labels_;
  int64_t next_ = 0;
};

// GaussianChunk messages.
class GaussianChunker final : public UploadChunker {
 public:
  explicit GaussianChunker(const model::io::GaussianSet& gaussians,
                           int64_t max_chunk_bytes = kDefaultChunkBytes);
  bool Next(v1::UploadDatasetRequest* request) override;
  int64_t items_total() const override { return gaussians_.num_gaussians(); }
  int64_t items_sent() const override { return next_; }

 private:
  const model::io::GaussianSet& gaussians_;
  const int64_t max_chunk_bytes_;
  const std::vector<std::string> labels_;
  int64_t next_ = 0;
};

// CellChunk messages: features, coordinates, sample ids and labels of
// consecutive cells.
class CellChunker final : public UploadChunker {
 public:
  explicit CellChunker(const SpatialCells& cells, int64_t max_chunk_bytes = kDefaultChunkBytes);
  bool Next(v1::UploadDatasetRequest* request) override;
  int64_t items_total() const override { return cells_.num_cells(); }
  int64_t items_sent() const override { return next_; }

 private:
  const SpatialCells& cells_;
  const int64_t max_chunk_bytes_;
  int64_t next_ = 0;
};

}  // namespace wfm::client

#endif  // WFM_CLIENT_UPLOAD_H_
