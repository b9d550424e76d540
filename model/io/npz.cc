#include "model/io/npz.h"

#include <zip.h>

#include <cerrno>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "model/common/status.h"
#include "model/io/atomic_file.h"
#include "model/io/npy.h"

namespace wfm::model::io {
namespace {

constexpr absl::string_view kNpySuffix = ".npy";

// A libzip error as a status: system errors keep their errno meaning, format
// errors are InvalidArgument.
absl::Status ZipErrorStatus(zip_error_t* error, absl::string_view what, absl::string_view path) {
  const int code = zip_error_code_zip(error);
  const std::string text = zip_error_strerror(error);
  if (code == ZIP_ER_NOENT) return ErrnoStatus(ENOENT, what, path);
  if (zip_error_system_type(error) == ZIP_ET_SYS && zip_error_code_system(error) != 0 &&
      code != ZIP_ER_NOZIP && code != ZIP_ER_INCONS) {
    return ErrnoStatus(zip_error_code_system(error), what, path);
  }
  switch (code) {
    case ZIP_ER_NOZIP:
    case ZIP_ER_INCONS:
    case ZIP_ER_EOF:
    case ZIP_ER_CRC:
    case ZIP_ER_ZLIB:
    case ZIP_ER_COMPNOTSUPP:
    case ZIP_ER_ENCRNOTSUPP:
    case ZIP_ER_COMPRESSED_DATA:
    case ZIP_ER_INVAL:
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": not a valid .npz (zip) file: ", text,
                       code == ZIP_ER_NOZIP || code == ZIP_ER_INCONS || code == ZIP_ER_EOF
                           ? " (the file is truncated or corrupt)"
                           : ""));
    default:
      return absl::InternalError(absl::StrCat(what, " ", path, ": ", text));
  }
}

absl::Status ZipOpenErrorStatus(int code, absl::string_view path) {
  zip_error_t error;
  zip_error_init_with_code(&error, code);
  if (code == ZIP_ER_OPEN || code == ZIP_ER_READ) {
    // zip_error_init_with_code has no errno; the last system error is it.
    zip_error_set(&error, code, errno);
  }
  absl::Status status = ZipErrorStatus(&error, "open", path);
  zip_error_fini(&error);
  return status;
}

// Closes (discards) a read-only archive.
struct ArchiveCloser {
  void operator()(zip_t* archive) const { zip_discard(archive); }
};
struct FileCloser {
  void operator()(zip_file_t* file) const { zip_fclose(file); }
};

class ZipMemberReader : public ByteReader {
 public:
  ZipMemberReader(zip_file_t* file, std::string name) : file_(file), name_(std::move(name)) {}

  absl::StatusOr<size_t> Read(void* dst, size_t n) override {
    size_t done = 0;
    while (done < n) {
      const zip_int64_t got = zip_fread(file_, static_cast<char*>(dst) + done, n - done);
      if (got < 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            name_, ": ", zip_error_strerror(zip_file_get_error(file_)), " (the file is corrupt)"));
      }
      if (got == 0) break;
      done += static_cast<size_t>(got);
    }
    return done;
  }

 private:
  zip_file_t* file_;
  std::string name_;
};

}  // namespace

absl::StatusOr<NpzArrays> ReadNpz(const std::string& path) {
  int open_error = 0;
  std::unique_ptr<zip_t, ArchiveCloser> archive(
      zip_open(path.c_str(), ZIP_RDONLY | ZIP_CHECKCONS, &open_error));
  if (archive == nullptr) return ZipOpenErrorStatus(open_error, path);

  NpzArrays arrays;
  const zip_int64_t entries = zip_get_num_entries(archive.get(), 0);
  for (zip_int64_t i = 0; i < entries; ++i) {
    zip_stat_t stat;
    if (zip_stat_index(archive.get(), i, 0, &stat) != 0) {
      return ZipErrorStatus(zip_get_error(archive.get()), "read", path);
    }
    const absl::string_view member = stat.name;
    if (!absl::EndsWith(member, kNpySuffix)) continue;
    const std::string name(member.substr(0, member.size() - kNpySuffix.size()));
    const std::string context = absl::StrCat(path, ": ", member);
    if (arrays.count(name) > 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(context, ": the archive holds this member twice"));
    }
    std::unique_ptr<zip_file_t, FileCloser> file(zip_fopen_index(archive.get(), i, 0));
    if (file == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(context, ": ", zip_error_strerror(zip_get_error(archive.get()))));
    }
    ZipMemberReader reader(file.get(), context);
    const int64_t size = (stat.valid & ZIP_STAT_SIZE) != 0 ? static_cast<int64_t>(stat.size) : -1;
    WFM_ASSIGN_OR_RETURN(Array array, ReadNpy(reader, context, size));
    // Read to the end of the member so that libzip verifies its CRC.
    char rest[256];
    while (true) {
      WFM_ASSIGN_OR_RETURN(const size_t got, reader.Read(rest, sizeof(rest)));
      if (got == 0) break;
    }
    arrays.emplace(name, std::move(array));
  }
  return arrays;
}

absl::Status WriteNpz(const std::string& path,
                      const std::vector<std::pair<std::string, ArrayView>>& arrays,
                      const NpzWriteOptions& options) {
  std::set<std::string> names;
  for (const auto& [name, view] : arrays) {
    if (name.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": an array name is empty"));
    }
    if (!names.insert(name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": array name '", name, "' is used twice"));
    }
  }
  // Encode first: only valid contents reach the disk.
  std::vector<EncodedNpy> encoded(arrays.size());
  for (size_t i = 0; i < arrays.size(); ++i) {
    WFM_RETURN_IF_ERROR(
        EncodeNpy(arrays[i].second, absl::StrCat(path, ": ", arrays[i].first), &encoded[i]));
  }
  if (arrays.empty()) {
    // libzip removes an archive without members; numpy writes the bare
    // end-of-central-directory record.
    return WriteFileAtomically(path, absl::string_view("PK\x05\x06" + std::string(18, '\0')));
  }
  return WriteAtomically(path, [&](const std::string& temp) -> absl::Status {
    int open_error = 0;
    zip_t* archive = zip_open(temp.c_str(), ZIP_CREATE | ZIP_EXCL, &open_error);
    if (archive == nullptr) return ZipOpenErrorStatus(open_error, temp);
    auto fail = [&](absl::string_view what) {
      absl::Status status = ZipErrorStatus(zip_get_error(archive), what, temp);
      zip_discard(archive);
      return status;
    };
    for (size_t i = 0; i < arrays.size(); ++i) {
      zip_buffer_fragment_t fragments[2];
      zip_uint64_t count = 0;
      // libzip only reads the fragments (freep = 0), so dropping const is safe.
      fragments[count++] = {reinterpret_cast<zip_uint8_t*>(encoded[i].header.data()),
                            encoded[i].header.size()};
      if (encoded[i].size > 0) {
        fragments[count++] = {
            const_cast<zip_uint8_t*>(static_cast<const zip_uint8_t*>(encoded[i].data)),
            encoded[i].size};
      }
      zip_source_t* source = zip_source_buffer_fragment(archive, fragments, count, 0);
      if (source == nullptr) return fail("add to");
      const std::string member = absl::StrCat(arrays[i].first, kNpySuffix);
      const zip_int64_t index = zip_file_add(archive, member.c_str(), source, ZIP_FL_ENC_UTF_8);
      if (index < 0) {
        zip_source_free(source);
        return fail("add to");
      }
      if (zip_set_file_compression(archive, index, options.compress ? ZIP_CM_DEFLATE : ZIP_CM_STORE,
                                   0) != 0) {
        return fail("set compression in");
      }
    }
    if (zip_close(archive) != 0) return fail("write");
    return absl::OkStatus();
  });
}

absl::Status WriteNpz(const std::string& path, const NpzArrays& arrays,
                      const NpzWriteOptions& options) {
  std::vector<std::pair<std::string, ArrayView>> views;
  views.reserve(arrays.size());
  for (const auto& [name, array] : arrays) {
    views.emplace_back(name, ArrayView::Of(array));
  }
  return WriteNpz(path, views, options);
}

}  // namespace wfm::model::io
