// Shared helpers of the model/io tests: fixture paths, the expected values
// written by tests/fixtures/io/make_fixtures.py, temporary folders and
// running Debian's Python with a checker script.
#ifndef WFM_TESTS_MODEL_IO_IO_TEST_UTIL_H_
#define WFM_TESTS_MODEL_IO_IO_TEST_UTIL_H_

#include <dirent.h>
#include <gtest/gtest.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

namespace wfm::model::io::testing {

inline std::string FixturePath(const std::string& name) {
  return std::string(WFM_SOURCE_DIR) + "/tests/fixtures/io/" + name;
}

inline std::string ScriptPath(const std::string& name) {
  return std::string(WFM_SOURCE_DIR) + "/tests/model/io/" + name;
}

inline const nlohmann::json& Expected() {
  static const nlohmann::json* expected = [] {
    std::ifstream in(FixturePath("expected.json"));
    auto* json = new nlohmann::json(nlohmann::json::parse(in));
    return json;
  }();
  return *expected;
}

inline std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

inline void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

// A fresh folder under $TMPDIR (or /tmp), removed with its contents.
class TempDir {
 public:
  TempDir() {
    const char* base = getenv("TMPDIR");
    std::string pattern = std::string(base != nullptr ? base : "/tmp") + "/wfm_io_test.XXXXXX";
    std::vector<char> buf(pattern.begin(), pattern.end());
    buf.push_back('\0');
    if (mkdtemp(buf.data()) == nullptr) ADD_FAILURE() << "mkdtemp failed";
    path_ = buf.data();
  }
  ~TempDir() { std::system(("rm -rf '" + path_ + "'").c_str()); }
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

  // Names in the folder (without . and ..), sorted.
  std::vector<std::string> List() const { return ListDir(path_); }

  static std::vector<std::string> ListDir(const std::string& path) {
    std::vector<std::string> names;
    if (DIR* dir = opendir(path.c_str())) {
      while (dirent* entry = readdir(dir)) {
        const std::string name = entry->d_name;
        if (name != "." && name != "..") names.push_back(name);
      }
      closedir(dir);
    }
    std::sort(names.begin(), names.end());
    return names;
  }

 private:
  std::string path_;
};

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

// Runs `command` through the shell, capturing its output.
inline CommandResult RunCommand(const std::string& command) {
  CommandResult result;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) result.output.append(buf, n);
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

// Debian's interpreter (numpy, h5py, anndata), as the fixtures use.
inline CommandResult RunPythonChecker(const std::string& script,
                                      const std::vector<std::string>& args) {
  std::string command = "/usr/bin/python3 '" + ScriptPath(script) + "'";
  for (const std::string& a : args) command += " '" + a + "'";
  return RunCommand(command);
}

}  // namespace wfm::model::io::testing

#endif  // WFM_TESTS_MODEL_IO_IO_TEST_UTIL_H_
