// Temporary folders and whole-file reads and writes for tests. A TempDir is
// a fresh folder below $TMPDIR (or /tmp) with a unique name, removed with
// everything in it when the object goes; a folder that cannot be made is a
// test failure (and path() is empty).
#ifndef WFM_TESTS_TESTING_TEMP_DIR_H_
#define WFM_TESTS_TESTING_TEMP_DIR_H_

#include <string>
#include <vector>

namespace wfm::testing {

class TempDir {
 public:
  // "<$TMPDIR or /tmp>/<prefix>-XXXXXX".
  explicit TempDir(const std::string& prefix = "wfm-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // "<path>/<name>" (nothing is created).
  std::string File(const std::string& name) const;
  // Names of the folder's entries, hidden ones included, sorted.
  std::vector<std::string> List() const { return ListDir(path_); }

  // Names of the entries of `folder` (not "." and ".."), sorted; empty when
  // it cannot be read.
  static std::vector<std::string> ListDir(const std::string& folder);

 private:
  std::string path_;
};

// The bytes of a file; empty when it cannot be read.
std::string ReadFile(const std::string& path);
// Replaces the file's content with `bytes` (not atomically: test inputs).
// false when it cannot be written.
bool WriteFile(const std::string& path, const std::string& bytes);

}  // namespace wfm::testing

#endif  // WFM_TESTS_TESTING_TEMP_DIR_H_
