#include "fuzz/util.h"

#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"

namespace wfm::fuzz {
namespace {

std::string* scratch_path = nullptr;

void RemoveScratch() {
  std::error_code ignored;
  std::filesystem::remove_all(*scratch_path, ignored);
}

}  // namespace

void Fail(absl::string_view what) {
  std::fprintf(stderr, "wfm fuzz invariant failed: %.*s\n", static_cast<int>(what.size()),
               what.data());
  std::fflush(stderr);
  abort();
}

absl::string_view Bytes(const uint8_t* data, size_t size) {
  return size == 0 ? absl::string_view("", 0)
                   : absl::string_view(reinterpret_cast<const char*>(data), size);
}

const std::string& ScratchPath() {
  if (scratch_path == nullptr) {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern =
        absl::StrCat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/wfm_fuzz.XXXXXX");
    if (mkdtemp(pattern.data()) == nullptr) Fail("cannot create a temporary folder");
    scratch_path = new std::string(pattern);
    std::atexit(RemoveScratch);
  }
  return *scratch_path;
}

std::string WriteScratchFile(absl::string_view name, absl::string_view bytes) {
  const std::string file = absl::StrCat(ScratchPath(), "/", name);
  FILE* f = std::fopen(file.c_str(), "wb");
  if (f == nullptr) Fail(absl::StrCat("cannot write ", file));
  const bool written =
      bytes.empty() || std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  if (std::fclose(f) != 0 || !written) Fail(absl::StrCat("cannot write ", file));
  return file;
}

}  // namespace wfm::fuzz
