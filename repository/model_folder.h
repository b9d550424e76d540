// A model of the repository: one folder per model below <data-dir>/models,
// one folder per version inside it (versions are integers from 1):
//   <root>/<name>/<V>/model.wfm   (model/checkpoint format)
//   <root>/<name>/serving.json    the serving policy: pinned version and
//                                 retention (optional, written atomically)
// written by the server's model registry (trained jobs) and wfm-train
// (PublishModel), and loaded by every server watching the folder. A folder
// of the first layout,
//   <root>/<name>/model.wfm
// (written by earlier servers and earlier wfm-train), is read in place as
// version 1 of <name> while no folder <root>/<name>/1 exists; it is never
// moved. Entries starting with ".~" are staging and trash folders of a
// publish or delete in progress and their lock files (or interrupted:
// RecoverDirs removes them).
#ifndef WFM_REPOSITORY_MODEL_FOLDER_H_
#define WFM_REPOSITORY_MODEL_FOLDER_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace wfm::repository {

inline constexpr char kModelFile[] = "model.wfm";
inline constexpr char kServingFile[] = "serving.json";
// The highest version number a folder may have.
inline constexpr int64_t kMaxModelVersion = 1'000'000'000'000;

// <root>/<name>/model.wfm (the first layout; see above).
std::string ModelFilePath(absl::string_view root, absl::string_view name);
// <root>/<name>/<version>/model.wfm.
std::string ModelVersionPath(absl::string_view root, absl::string_view name, int64_t version);

// The version a folder entry names: digits without a leading zero, 1 to
// kMaxModelVersion; nullopt for anything else.
std::optional<int64_t> ParseVersion(absl::string_view entry);

// One stored version and its checkpoint file.
struct StoredVersion {
  int64_t version = 0;
  std::string path;
};
// The versions in <root>/<name>, ascending: every version folder holding a
// model.wfm, and the first layout's file as version 1 unless a folder 1
// exists. NOT_FOUND when <root>/<name> is missing.
absl::StatusOr<std::vector<StoredVersion>> ListModelVersions(const std::string& root,
                                                             absl::string_view name);

// Publishes a new version of <name>: `write` writes the checkpoint into a
// staging folder inside <root>/<name> (created when missing), which is
// fsynced and renamed (without replacing) to the first free version above
// every stored one; a version taken meanwhile by another writer moves it one
// higher. Returns the version. The staging folder never outlives the call.
absl::StatusOr<int64_t> PublishModelVersion(
    const std::string& root, absl::string_view name,
    const std::function<absl::Status(const std::string& path)>& write);

// Replaces the whole folder <root>/<name> (every version and the serving
// policy) by one holding only version 1, written by `write`, in one atomic
// exchange (PublishDir); publishes it as a new folder when there is none.
absl::Status ReplaceModelFolder(const std::string& root, absl::string_view name,
                                const std::function<absl::Status(const std::string& path)>& write);

// Publishes a trained model as the server's training jobs do: a new version
// (PublishModelVersion), or with `overwrite` the whole folder replaced by
// version 1 (ReplaceModelFolder). Returns the version.
absl::StatusOr<int64_t> PublishModel(
    const std::string& root, absl::string_view name, bool overwrite,
    const std::function<absl::Status(const std::string& path)>& write);

// Removes one version (its folder, or the first layout's file for version
// 1): renamed out of sight first, then deleted. NOT_FOUND when missing.
absl::Status RemoveModelVersion(const std::string& root, absl::string_view name, int64_t version);

// How a model is served (serving.json): 0 = unset in both.
struct ServingPolicy {
  int64_t pinned_version = 0;  // 0 = the latest version serves
  int64_t keep_versions = 0;   // 0 = the server's default retention
  bool operator==(const ServingPolicy& o) const {
    return pinned_version == o.pinned_version && keep_versions == o.keep_versions;
  }
};
// The policy of <root>/<name>: the default when the file is missing;
// DATA_LOSS naming the file when it is unreadable.
absl::StatusOr<ServingPolicy> ReadServingPolicy(const std::string& root, absl::string_view name);
// Writes it atomically (the default policy removes the file).
absl::Status WriteServingPolicy(const std::string& root, absl::string_view name,
                                const ServingPolicy& policy);

// Retention: the versions to delete so that the `keep` (>= 1) latest and
// `pinned` remain; ascending.
std::vector<int64_t> VersionsBeyondRetention(const std::vector<int64_t>& versions, int64_t keep,
                                             int64_t pinned);

}  // namespace wfm::repository

#endif  // WFM_REPOSITORY_MODEL_FOLDER_H_
