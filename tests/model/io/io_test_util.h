// Shared helpers of the model/io tests: fixture paths, the expected values
// written by tests/fixtures/io/make_fixtures.py, and running Debian's Python
// with a checker script (through the harness, tests/testing).
#ifndef WFM_TESTS_MODEL_IO_IO_TEST_UTIL_H_
#define WFM_TESTS_MODEL_IO_IO_TEST_UTIL_H_

#include <gmock/gmock.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/testing/process.h"
#include "tests/testing/temp_dir.h"

namespace wfm::model::io::testing {

// The matchers the io tests use, brought in with the helpers by
// `using namespace ::wfm::model::io::testing`.
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

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

// A JSON array of numbers (the fixtures' values) as float32.
inline std::vector<float> Floats(const nlohmann::json& values) {
  std::vector<float> out;
  for (const auto& v : values) out.push_back(static_cast<float>(v.get<double>()));
  return out;
}

// Whole files and temporary folders: the harness's (tests/testing).
inline std::string ReadBytes(const std::string& path) { return ::wfm::testing::ReadFile(path); }
inline void WriteBytes(const std::string& path, const std::string& bytes) {
  ::wfm::testing::WriteFile(path, bytes);
}
using TempDir = ::wfm::testing::TempDir;

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout, then stderr
};

// Debian's interpreter (numpy, h5py, anndata), as the fixtures use, with
// `args` (no shell).
inline CommandResult RunPython(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"/usr/bin/python3"};
  argv.insert(argv.end(), args.begin(), args.end());
  const ::wfm::testing::ProcessResult r = ::wfm::testing::RunProcess(argv);
  return {r.exit_code, r.out + r.err};
}

// A checker script of this folder with `args`.
inline CommandResult RunPythonChecker(const std::string& script,
                                      const std::vector<std::string>& args) {
  std::vector<std::string> argv = {ScriptPath(script)};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunPython(argv);
}

}  // namespace wfm::model::io::testing

#endif  // WFM_TESTS_MODEL_IO_IO_TEST_UTIL_H_
