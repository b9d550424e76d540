// A model of the repository: one folder per model below <data-dir>/models,
//   <root>/<name>/model.wfm   (model/checkpoint format)
// written by the server's model registry (trained jobs) and by wfm-train's
// rank 0, and loaded by every server watching the folder.
#ifndef WFM_REPOSITORY_MODEL_FOLDER_H_
#define WFM_REPOSITORY_MODEL_FOLDER_H_

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace wfm::repository {

inline constexpr char kModelFile[] = "model.wfm";

// <root>/<name>/model.wfm.
std::string ModelFilePath(absl::string_view root, absl::string_view name);

// Writes <root>/<name>/model.wfm with `write`, which writes a complete file
// at the path it is given (atomically where it replaces one). Into an
// existing folder the file is written in place; a new folder is staged
// (file written, folder fsynced) and renamed into place, so a reader
// scanning <root> never sees it half made. ALREADY_EXISTS when another
// writer published the folder meanwhile (nothing was written then). The
// staging folder never outlives the call.
absl::Status WriteModelFolder(const std::string& root, absl::string_view name,
                              const std::function<absl::Status(const std::string& path)>& write);

}  // namespace wfm::repository

#endif  // WFM_REPOSITORY_MODEL_FOLDER_H_
