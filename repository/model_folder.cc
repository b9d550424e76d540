#include "repository/model_folder.h"

#include "absl/strings/str_cat.h"
#include "model/common/status.h"
#include "repository/fs_util.h"

namespace wfm::repository {

std::string ModelFilePath(absl::string_view root, absl::string_view name) {
  return absl::StrCat(root, "/", name, "/", kModelFile);
}

absl::Status WriteModelFolder(const std::string& root, absl::string_view name,
                              const std::function<absl::Status(const std::string& path)>& write) {
  if (Exists(absl::StrCat(root, "/", name))) return write(ModelFilePath(root, name));
  WFM_RETURN_IF_ERROR(MakeDirs(root));
  WFM_ASSIGN_OR_RETURN(const std::string staging, MakeStagingDir(root, name));
  absl::Status written = write(absl::StrCat(staging, "/", kModelFile));
  if (written.ok()) written = FsyncDir(staging);
  if (written.ok()) written = PublishDir(staging, root, name, /*overwrite=*/false);
  if (!written.ok()) (void)RemoveTree(staging);
  return written;
}

}  // namespace wfm::repository
