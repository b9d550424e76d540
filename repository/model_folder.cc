#include "repository/model_folder.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "model/common/status.h"
#include "model/io/atomic_file.h"
#include "repository/fs_util.h"

namespace wfm::repository {

namespace {

std::string Folder(absl::string_view root, absl::string_view name) {
  return absl::StrCat(root, "/", name);
}

// Writes the checkpoint into a new staging folder of `parent` (with the file
// at `file_in_staging` below it) and fsyncs it. Returns the staging folder.
absl::StatusOr<StagingDir> Stage(
    const std::string& parent, absl::string_view name, absl::string_view file_in_staging,
    const std::function<absl::Status(const std::string& path)>& write) {
  WFM_ASSIGN_OR_RETURN(StagingDir staging, MakeStagingDir(parent, name));
  const std::string file = absl::StrCat(staging.path(), "/", file_in_staging);
  const std::string folder = file.substr(0, file.rfind('/'));
  WFM_RETURN_IF_ERROR(MakeDirs(folder));
  WFM_RETURN_IF_ERROR(write(file));
  WFM_RETURN_IF_ERROR(FsyncDir(folder));
  if (folder != staging.path()) WFM_RETURN_IF_ERROR(FsyncDir(staging.path()));
  return staging;
}

// rename(from, to) that never replaces `to`: false when `to` exists.
absl::StatusOr<bool> RenameNoReplace(const std::string& from, const std::string& to) {
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return true;
  if (errno == EEXIST || errno == ENOTEMPTY) return false;
  if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP) {
    return model::io::ErrnoStatus(errno, "rename to", to);
  }
  // No RENAME_NOREPLACE here: a folder is never renamed over a non-empty one.
  if (Exists(to)) return false;
  if (::rename(from.c_str(), to.c_str()) == 0) return true;
  if (errno == EEXIST || errno == ENOTEMPTY) return false;
  return model::io::ErrnoStatus(errno, "rename to", to);
}

}  // namespace

std::string ModelFilePath(absl::string_view root, absl::string_view name) {
  return absl::StrCat(root, "/", name, "/", kModelFile);
}

std::string ModelVersionPath(absl::string_view root, absl::string_view name, int64_t version) {
  return absl::StrCat(root, "/", name, "/", version, "/", kModelFile);
}

std::optional<int64_t> ParseVersion(absl::string_view entry) {
  if (entry.empty() || entry.size() > 13 || entry[0] == '0') return std::nullopt;
  for (char c : entry) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return std::nullopt;
  }
  int64_t version = 0;
  if (!absl::SimpleAtoi(entry, &version) || version < 1 || version > kMaxModelVersion) {
    return std::nullopt;
  }
  return version;
}

absl::StatusOr<std::vector<StoredVersion>> ListModelVersions(const std::string& root,
                                                             absl::string_view name) {
  WFM_ASSIGN_OR_RETURN(const std::vector<std::string> entries, ListDir(Folder(root, name)));
  std::vector<StoredVersion> out;
  for (const std::string& entry : entries) {
    const std::optional<int64_t> version = ParseVersion(entry);
    if (!version.has_value()) continue;
    const std::string path = ModelVersionPath(root, name, *version);
    if (Exists(path)) out.push_back({*version, path});
  }
  std::sort(out.begin(), out.end(),
            [](const StoredVersion& a, const StoredVersion& b) { return a.version < b.version; });
  const std::string legacy = ModelFilePath(root, name);
  if ((out.empty() || out.front().version != 1) && Exists(legacy)) {
    out.insert(out.begin(), StoredVersion{1, legacy});
  }
  return out;
}

absl::StatusOr<int64_t> PublishModelVersion(
    const std::string& root, absl::string_view name,
    const std::function<absl::Status(const std::string& path)>& write) {
  const std::string folder = Folder(root, name);
  WFM_RETURN_IF_ERROR(MakeDirs(folder));
  WFM_ASSIGN_OR_RETURN(const StagingDir staging, Stage(folder, "version", kModelFile, write));
  absl::StatusOr<std::vector<StoredVersion>> stored = ListModelVersions(root, name);
  int64_t version = stored.ok() && !stored->empty() ? stored->back().version + 1 : 1;
  absl::Status failed = stored.status();
  while (failed.ok()) {
    if (version > kMaxModelVersion) {
      failed = absl::ResourceExhaustedError(
          absl::StrCat("model '", name, "': no version number left above ", kMaxModelVersion));
      break;
    }
    // Version 1 of the first layout is a file, not a folder: skip it.
    if (version == 1 && Exists(ModelFilePath(root, name))) {
      ++version;
      continue;
    }
    absl::StatusOr<bool> renamed =
        RenameNoReplace(staging.path(), absl::StrCat(folder, "/", version));
    if (!renamed.ok()) {
      failed = renamed.status();
    } else if (*renamed) {
      WFM_RETURN_IF_ERROR(FsyncDir(folder));
      return version;
    } else {
      ++version;  // taken by another writer meanwhile
    }
  }
  return failed;
}

absl::Status ReplaceModelFolder(const std::string& root, absl::string_view name,
                                const std::function<absl::Status(const std::string& path)>& write) {
  WFM_RETURN_IF_ERROR(MakeDirs(root));
  WFM_ASSIGN_OR_RETURN(const StagingDir staging,
                       Stage(root, name, absl::StrCat("1/", kModelFile), write));
  return PublishDir(staging, root, name, /*overwrite=*/true);
}

absl::StatusOr<int64_t> PublishModel(
    const std::string& root, absl::string_view name, bool overwrite,
    const std::function<absl::Status(const std::string& path)>& write) {
  if (!overwrite) return PublishModelVersion(root, name, write);
  WFM_RETURN_IF_ERROR(ReplaceModelFolder(root, name, write));
  return 1;
}

absl::Status RemoveModelVersion(const std::string& root, absl::string_view name, int64_t version) {
  const std::string folder = Folder(root, name);
  if (Exists(absl::StrCat(folder, "/", version))) {
    return RemovePublishedDir(folder, absl::StrCat(version));
  }
  const std::string legacy = ModelFilePath(root, name);
  if (version == 1 && Exists(legacy)) {
    if (::unlink(legacy.c_str()) != 0) return model::io::ErrnoStatus(errno, "remove", legacy);
    return FsyncDir(folder);
  }
  return absl::NotFoundError(absl::StrCat("model '", name, "' has no version ", version));
}

absl::StatusOr<ServingPolicy> ReadServingPolicy(const std::string& root, absl::string_view name) {
  const std::string path = absl::StrCat(Folder(root, name), "/", kServingFile);
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (absl::IsNotFound(text.status())) return ServingPolicy{};
  WFM_RETURN_IF_ERROR(text.status());
  const nlohmann::json j = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  ServingPolicy policy;
  const auto field = [&](const char* key, int64_t* out) {
    if (!j.contains(key)) return true;
    if (!j[key].is_number_integer() || j[key].get<int64_t>() < 0) return false;
    *out = j[key].get<int64_t>();
    return true;
  };
  if (!j.is_object() || !field("pinned_version", &policy.pinned_version) ||
      !field("keep_versions", &policy.keep_versions)) {
    return absl::DataLossError(absl::StrCat(
        path, ": not a serving policy (a JSON object of pinned_version, keep_versions >= 0)"));
  }
  return policy;
}

absl::Status WriteServingPolicy(const std::string& root, absl::string_view name,
                                const ServingPolicy& policy) {
  const std::string path = absl::StrCat(Folder(root, name), "/", kServingFile);
  if (policy == ServingPolicy{}) {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return model::io::ErrnoStatus(errno, "remove", path);
    }
    return FsyncDir(Folder(root, name));
  }
  const nlohmann::json j = {{"pinned_version", policy.pinned_version},
                            {"keep_versions", policy.keep_versions}};
  return model::io::WriteFileAtomically(path, j.dump() + "\n");
}

std::vector<int64_t> VersionsBeyondRetention(const std::vector<int64_t>& versions, int64_t keep,
                                             int64_t pinned) {
  std::vector<int64_t> sorted = versions;
  std::sort(sorted.begin(), sorted.end());
  const int64_t older = static_cast<int64_t>(sorted.size()) - std::max<int64_t>(keep, 1);
  std::vector<int64_t> out;
  for (int64_t i = 0; i < older; ++i) {
    if (sorted[i] != pinned) out.push_back(sorted[i]);
  }
  return out;
}

}  // namespace wfm::repository
