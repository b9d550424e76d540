#include "model/io/npy.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "model/common/status.h"
#include "model/io/atomic_file.h"
#include "model/io/text_codec.h"

namespace wfm::model::io {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicSize = 6;
constexpr size_t kMaxHeaderBytes = 1 << 20;  // numpy itself caps at 10 000
constexpr int64_t kMaxElements = int64_t{1} << 56;
// Largest array payload accepted, in bytes (2^56: far beyond any memory, and
// far from int64 overflow when offsets are added to it).
constexpr int64_t kMaxDataBytes = int64_t{1} << 56;
// Widest fixed-width string element, in characters (numpy's itemsize is a C int).
constexpr int64_t kMaxStringChars = int64_t{1} << 28;
// Most elements of a zero-width string array ('<U0', '|S'): they take no
// bytes in the file, so the file's size does not bound the memory they need.
constexpr int64_t kMaxZeroWidthElements = int64_t{1} << 16;

absl::Status Bad(absl::string_view name, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(name, ": ", what));
}

// Storage layout of the file's dtype.
enum class StringKind { kNone, kUnicode, kBytes };

struct Descr {
  DType dtype;
  bool big_endian = false;
  StringKind strings = StringKind::kNone;
  int64_t item_bytes = 0;  // bytes per element in the file
};

// The numeric dtypes as numpy's array-protocol type strings spell them: kind
// and bytes per element (read and written).
struct NumericDescr {
  DType dtype;
  char kind;
  int64_t size;
};
constexpr NumericDescr kNumericDescrs[] = {
    {DType::kBool, 'b', 1},    {DType::kInt8, 'i', 1},    {DType::kInt16, 'i', 2},
    {DType::kInt32, 'i', 4},   {DType::kInt64, 'i', 8},   {DType::kUInt8, 'u', 1},
    {DType::kUInt16, 'u', 2},  {DType::kUInt32, 'u', 4},  {DType::kUInt64, 'u', 8},
    {DType::kFloat32, 'f', 4}, {DType::kFloat64, 'f', 8},
};

absl::StatusOr<Descr> ParseDescr(absl::string_view text, absl::string_view name) {
  auto unsupported = [&](absl::string_view why) {
    return Bad(name, absl::StrCat("unsupported dtype '", text, "'", why));
  };
  if (text.size() < 2) return unsupported("");
  Descr d;
  const char order = text[0];
  if (order == '>') {
    d.big_endian = true;
  } else if (order != '<' && order != '|' && order != '=') {
    return unsupported(": unknown byte order");
  }
  const char kind = text[1];
  int64_t size = 0;
  if (text.size() > 2 && !absl::SimpleAtoi(text.substr(2), &size)) {
    return unsupported("");
  }
  if ((kind == 'U' || kind == 'S' || kind == 'a') && (size < 0 || size > kMaxStringChars)) {
    return unsupported(absl::StrCat(": string width must be in [0, ", kMaxStringChars, "]"));
  }
  switch (kind) {
    case 'b':
    case 'i':
    case 'u':
    case 'f': {
      const NumericDescr* match = nullptr;
      for (const NumericDescr& n : kNumericDescrs) {
        if (n.kind == kind && n.size == size) match = &n;
      }
      if (match == nullptr) {
        return unsupported(kind == 'f' ? " (only float32 and float64 are supported)" : "");
      }
      d.dtype = match->dtype;
      break;
    }
    case 'U':
      d.dtype = DType::kString;
      d.strings = StringKind::kUnicode;
      d.item_bytes = 4 * size;
      break;
    case 'S':
    case 'a':
      d.dtype = DType::kString;
      d.strings = StringKind::kBytes;
      d.item_bytes = size;
      break;
    case 'O':
      return Bad(name,
                 "object array (dtype 'O', a pickle) is not supported; store a "
                 "numeric or fixed-width string array");
    case 'c':
      return unsupported(" (complex numbers are not supported)");
    default:
      return unsupported("");
  }
  // A string width of 0 ('<U0', '|S') gives zero bytes per element: empty
  // strings only, capped in number by ReadNpy.
  if (d.strings == StringKind::kNone) d.item_bytes = DTypeSize(d.dtype);
  return d;
}

// Minimal parser of the header: a Python dict literal with the keys 'descr'
// (a string), 'fortran_order' (True/False) and 'shape' (a tuple of ints).
class HeaderParser {
 public:
  HeaderParser(absl::string_view text, absl::string_view name) : text_(text), name_(name) {}

  absl::Status Parse(std::string* descr, bool* fortran, std::vector<int64_t>* shape) {
    bool have_descr = false, have_fortran = false, have_shape = false;
    WFM_RETURN_IF_ERROR(Expect('{'));
    while (true) {
      SkipSpace();
      if (Peek() == '}') break;
      std::string key;
      WFM_RETURN_IF_ERROR(ReadQuoted(&key));
      WFM_RETURN_IF_ERROR(Expect(':'));
      SkipSpace();
      if (key == "descr") {
        if (Peek() == '[') {
          return Bad(name_, "structured dtypes (record arrays) are not supported");
        }
        WFM_RETURN_IF_ERROR(ReadQuoted(descr));
        have_descr = true;
      } else if (key == "fortran_order") {
        WFM_RETURN_IF_ERROR(ReadBool(fortran));
        have_fortran = true;
      } else if (key == "shape") {
        WFM_RETURN_IF_ERROR(ReadShape(shape));
        have_shape = true;
      } else {
        return Error(absl::StrCat("unexpected key '", key, "'"));
      }
      SkipSpace();
      if (Peek() == ',') {
        ++pos_;
        continue;
      }
      if (Peek() == '}') break;
      return Error("expected ',' or '}'");
    }
    ++pos_;
    if (!have_descr || !have_fortran || !have_shape) {
      return Error("the header lacks 'descr', 'fortran_order' or 'shape'");
    }
    return absl::OkStatus();
  }

 private:
  char Peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  void SkipSpace() {
    while (pos_ < text_.size() && absl::ascii_isspace(text_[pos_])) ++pos_;
  }
  absl::Status Error(absl::string_view what) const {
    return Bad(name_,
               absl::StrCat("corrupt .npy header (", what, " at offset ", pos_, "): ", text_));
  }
  absl::Status Expect(char c) {
    SkipSpace();
    if (Peek() != c) return Error(absl::StrCat("expected '", std::string(1, c), "'"));
    ++pos_;
    return absl::OkStatus();
  }
  absl::Status ReadQuoted(std::string* out) {
    SkipSpace();
    const char quote = Peek();
    if (quote != '\'' && quote != '"') return Error("expected a quoted string");
    const size_t end = text_.find(quote, pos_ + 1);
    if (end == absl::string_view::npos) return Error("unterminated string");
    *out = std::string(text_.substr(pos_ + 1, end - pos_ - 1));
    pos_ = end + 1;
    return absl::OkStatus();
  }
  absl::Status ReadBool(bool* out) {
    if (text_.substr(pos_, 4) == "True") {
      *out = true;
      pos_ += 4;
    } else if (text_.substr(pos_, 5) == "False") {
      *out = false;
      pos_ += 5;
    } else {
      return Error("expected True or False");
    }
    return absl::OkStatus();
  }
  absl::Status ReadShape(std::vector<int64_t>* shape) {
    shape->clear();
    WFM_RETURN_IF_ERROR(Expect('('));
    while (true) {
      SkipSpace();
      if (Peek() == ')') break;
      size_t end = pos_;
      while (end < text_.size() && absl::ascii_isdigit(text_[end])) ++end;
      int64_t dim;
      if (end == pos_ || !absl::SimpleAtoi(text_.substr(pos_, end - pos_), &dim) || dim < 0) {
        return Error("expected a dimension");
      }
      shape->push_back(dim);
      pos_ = end;
      SkipSpace();
      if (Peek() == ',') {
        ++pos_;
      } else if (Peek() != ')') {
        return Error("expected ',' or ')' in the shape");
      }
    }
    ++pos_;
    return absl::OkStatus();
  }

  absl::string_view text_;
  absl::string_view name_;
  size_t pos_ = 0;
};

absl::Status ReadExactly(ByteReader& in, void* dst, size_t n, absl::string_view name,
                         absl::string_view what) {
  WFM_ASSIGN_OR_RETURN(const size_t got, in.Read(dst, n));
  if (got != n) {
    return Bad(name,
               absl::StrCat("truncated: ", what, " needs ", n, " bytes, only ", got, " remain"));
  }
  return absl::OkStatus();
}

void ByteSwapInPlace(void* data, int64_t count, int item) {
  auto* bytes = static_cast<unsigned char*>(data);
  for (int64_t i = 0; i < count; ++i) {
    std::reverse(bytes + i * item, bytes + (i + 1) * item);
  }
}

// Reorders `values` (stored in Fortran order for `shape`) into C order.
template <typename T>
void FortranToC(const std::vector<int64_t>& shape, std::vector<T>& values) {
  const int k = static_cast<int>(shape.size());
  if (k < 2 || values.empty()) return;
  std::vector<int64_t> fstride(k);
  int64_t stride = 1;
  for (int j = 0; j < k; ++j) {
    fstride[j] = stride;
    stride *= shape[j];
  }
  std::vector<T> out(values.size());
  std::vector<int64_t> index(k, 0);
  int64_t f = 0;
  for (size_t c = 0; c < out.size(); ++c) {
    out[c] = std::move(values[f]);
    // Next C-order index: the last axis moves fastest.
    for (int j = k - 1; j >= 0; --j) {
      ++index[j];
      f += fstride[j];
      if (index[j] < shape[j]) break;
      f -= fstride[j] * shape[j];
      index[j] = 0;
    }
  }
  values = std::move(out);
}

class StringByteReader : public ByteReader {
 public:
  explicit StringByteReader(absl::string_view bytes) : bytes_(bytes) {}
  absl::StatusOr<size_t> Read(void* dst, size_t n) override {
    const size_t take = std::min(n, bytes_.size() - pos_);
    // `dst` may be null when nothing is read (an empty array's storage).
    if (take > 0) std::memcpy(dst, bytes_.data() + pos_, take);
    pos_ += take;
    return take;
  }

 private:
  absl::string_view bytes_;
  size_t pos_ = 0;
};

class FileByteReader : public ByteReader {
 public:
  FileByteReader(std::FILE* file, std::string path) : file_(file), path_(std::move(path)) {}
  ~FileByteReader() override { std::fclose(file_); }
  absl::StatusOr<size_t> Read(void* dst, size_t n) override {
    const size_t got = std::fread(dst, 1, n, file_);
    if (got < n && std::ferror(file_)) return ErrnoStatus(errno, "read", path_);
    return got;
  }

 private:
  std::FILE* file_;
  std::string path_;
};

std::string DescrOf(DType dtype, int64_t string_chars) {
  if (dtype == DType::kString) return absl::StrCat("<U", string_chars);
  for (const NumericDescr& n : kNumericDescrs) {
    if (n.dtype == dtype) return absl::StrCat(n.size == 1 ? "|" : "<", std::string(1, n.kind), n.size);
  }
  return "";
}

std::string ShapeTuple(const std::vector<int64_t>& shape) {
  if (shape.size() == 1) return absl::StrCat("(", shape[0], ",)");
  return absl::StrCat("(", absl::StrJoin(shape, ", "), ")");
}

}  // namespace

absl::StatusOr<Array> ReadNpy(ByteReader& in, absl::string_view name, int64_t available_bytes) {
  unsigned char preamble[kMagicSize + 2];
  {
    WFM_ASSIGN_OR_RETURN(const size_t got, in.Read(preamble, sizeof(preamble)));
    if (got < sizeof(preamble) || std::memcmp(preamble, kMagic, kMagicSize) != 0) {
      return Bad(name, got < sizeof(preamble) ? "truncated: too short for a .npy header"
                                              : "not a .npy array (bad magic bytes)");
    }
  }
  const int major = preamble[kMagicSize];
  size_t header_len = 0;
  size_t consumed = sizeof(preamble);
  if (major == 1) {
    unsigned char len[2];
    WFM_RETURN_IF_ERROR(ReadExactly(in, len, 2, name, "the header length"));
    header_len = len[0] | (size_t{len[1]} << 8);
    consumed += 2;
  } else if (major == 2 || major == 3) {
    unsigned char len[4];
    WFM_RETURN_IF_ERROR(ReadExactly(in, len, 4, name, "the header length"));
    header_len = len[0] | (size_t{len[1]} << 8) | (size_t{len[2]} << 16) | (size_t{len[3]} << 24);
    consumed += 4;
  } else {
    return Bad(name, absl::StrCat("unsupported .npy format version ", major));
  }
  if (header_len > kMaxHeaderBytes) {
    return Bad(name, absl::StrCat("corrupt .npy header length ", header_len));
  }
  std::string header(header_len, '\0');
  WFM_RETURN_IF_ERROR(ReadExactly(in, header.data(), header_len, name, "the header"));
  consumed += header_len;

  std::string descr_text;
  bool fortran = false;
  std::vector<int64_t> shape;
  WFM_RETURN_IF_ERROR(HeaderParser(header, name).Parse(&descr_text, &fortran, &shape));
  WFM_ASSIGN_OR_RETURN(const Descr descr, ParseDescr(descr_text, name));

  int64_t count = 1;
  for (int64_t d : shape) {
    if (d > 0 && count > kMaxElements / d) {
      return Bad(name, absl::StrCat("shape ", ShapeString(shape), " is too large"));
    }
    count *= d;
  }
  if (descr.item_bytes == 0 && count > kMaxZeroWidthElements) {
    return Bad(name, absl::StrCat("shape ", ShapeString(shape), " of zero-width strings ('",
                                  descr_text, "') holds more than ", kMaxZeroWidthElements,
                                  " elements"));
  }
  if (descr.item_bytes > 0 && count > kMaxDataBytes / descr.item_bytes) {
    return Bad(name, absl::StrCat("shape ", ShapeString(shape), " of ", DTypeName(descr.dtype),
                                  " is too large (", descr.item_bytes, " bytes per element)"));
  }
  const int64_t data_bytes = count * descr.item_bytes;
  if (available_bytes >= 0 && data_bytes > available_bytes - static_cast<int64_t>(consumed)) {
    return Bad(name,
               absl::StrCat("truncated: shape ", ShapeString(shape), " of ", DTypeName(descr.dtype),
                            " needs ", data_bytes, " bytes of data, the member holds ",
                            std::max<int64_t>(0, available_bytes - consumed)));
  }

  if (descr.strings == StringKind::kNone) {
    Array array = Array::Zeros(descr.dtype, shape);
    WFM_RETURN_IF_ERROR(ReadExactly(in, array.mutable_raw_data(), static_cast<size_t>(data_bytes),
                                    name, "the data"));
    if (descr.big_endian && descr.item_bytes > 1) {
      ByteSwapInPlace(array.mutable_raw_data(), count, descr.item_bytes);
    }
    if (descr.dtype == DType::kBool) {
      for (uint8_t& v : array.mutable_values<uint8_t>()) v = v != 0;
    }
    if (fortran) {
      std::visit([&](auto& v) { FortranToC(shape, v); }, array.mutable_storage());
    }
    return array;
  }

  std::string raw(static_cast<size_t>(data_bytes), '\0');
  WFM_RETURN_IF_ERROR(ReadExactly(in, raw.data(), raw.size(), name, "the data"));
  std::vector<std::string> strings;
  strings.reserve(count);
  for (int64_t i = 0; i < count; ++i) {
    absl::string_view item(raw.data() + i * descr.item_bytes, descr.item_bytes);
    if (descr.strings == StringKind::kBytes) {
      const size_t end = item.find_last_not_of('\0');
      strings.emplace_back(end == absl::string_view::npos ? absl::string_view()
                                                          : item.substr(0, end + 1));
    } else {
      // numpy strips only the trailing NUL padding: NULs inside a string
      // are characters. Ucs4ToUtf8 stops at a NUL, so decode the pieces
      // between them.
      size_t len = item.size() / 4;
      while (len > 0 && item.substr((len - 1) * 4, 4) == absl::string_view("\0\0\0\0", 4)) --len;
      std::string utf8;
      size_t begin = 0;
      for (size_t j = 0; j <= len; ++j) {
        if (j < len && item.substr(j * 4, 4) != absl::string_view("\0\0\0\0", 4)) continue;
        if (!Ucs4ToUtf8(item.substr(begin * 4, (j - begin) * 4), descr.big_endian, &utf8)) {
          return Bad(name, absl::StrCat("element ", i, " holds an invalid unicode code point"));
        }
        if (j < len) utf8.push_back('\0');
        begin = j + 1;
      }
      strings.push_back(std::move(utf8));
    }
  }
  if (fortran) FortranToC(shape, strings);
  return Array::FromStrings(std::move(shape), std::move(strings));
}

absl::StatusOr<Array> ParseNpy(absl::string_view bytes, absl::string_view name) {
  StringByteReader reader(bytes);
  return ReadNpy(reader, name, static_cast<int64_t>(bytes.size()));
}

absl::StatusOr<Array> ReadNpyFile(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) return ErrnoStatus(errno, "open", path);
  int64_t size = -1;
  if (std::fseek(file, 0, SEEK_END) == 0) {
    size = std::ftell(file);
    std::rewind(file);
  }
  FileByteReader reader(file, path);
  return ReadNpy(reader, path, size);
}

absl::Status EncodeNpy(const ArrayView& array, absl::string_view name, EncodedNpy* out) {
  const int64_t count = ShapeSize(array.shape);
  int64_t string_chars = 0;
  out->owned.clear();
  if (array.dtype == DType::kString) {
    std::vector<std::u32string> decoded(count);
    for (int64_t i = 0; i < count; ++i) {
      if (!Utf8ToUcs4((*array.strings)[i], &decoded[i])) {
        return Bad(name, absl::StrCat("element ", i, " is not valid UTF-8"));
      }
      string_chars = std::max<int64_t>(string_chars, decoded[i].size());
    }
    string_chars = std::max<int64_t>(string_chars, 1);  // numpy writes <U1 for ""
    out->owned.assign(static_cast<size_t>(count * string_chars * 4), '\0');
    for (int64_t i = 0; i < count; ++i) {
      char* dst = out->owned.data() + i * string_chars * 4;
      for (char32_t c : decoded[i]) {
        const uint32_t v = static_cast<uint32_t>(c);
        dst[0] = static_cast<char>(v & 0xff);
        dst[1] = static_cast<char>((v >> 8) & 0xff);
        dst[2] = static_cast<char>((v >> 16) & 0xff);
        dst[3] = static_cast<char>((v >> 24) & 0xff);
        dst += 4;
      }
    }
    out->data = out->owned.data();
    out->size = out->owned.size();
  } else {
    out->data = array.data;
    out->size = static_cast<size_t>(count * DTypeSize(array.dtype));
  }

  std::string dict =
      absl::StrCat("{'descr': '", DescrOf(array.dtype, string_chars),
                   "', 'fortran_order': False, 'shape': ", ShapeTuple(array.shape), ", }");
  // Pad with spaces so that magic + version + length + dict + '\n' is a
  // multiple of 64 bytes, as numpy does.
  size_t prefix = kMagicSize + 2 + 2;
  int major = 1;
  if (dict.size() + 1 + 64 > 65535) {  // the padded length must fit 2 bytes
    major = 2;
    prefix = kMagicSize + 2 + 4;
  }
  const size_t total = (prefix + dict.size() + 1 + 63) / 64 * 64;
  dict.append(total - prefix - dict.size() - 1, ' ');
  dict.push_back('\n');
  out->header.assign(kMagic, kMagicSize);
  out->header.push_back(static_cast<char>(major));
  out->header.push_back('\0');
  const size_t len = dict.size();
  out->header.push_back(static_cast<char>(len & 0xff));
  out->header.push_back(static_cast<char>((len >> 8) & 0xff));
  if (major == 2) {
    out->header.push_back(static_cast<char>((len >> 16) & 0xff));
    out->header.push_back(static_cast<char>((len >> 24) & 0xff));
  }
  out->header += dict;
  return absl::OkStatus();
}

absl::StatusOr<std::string> SerializeNpy(const ArrayView& array, absl::string_view name) {
  EncodedNpy encoded;
  WFM_RETURN_IF_ERROR(EncodeNpy(array, name, &encoded));
  std::string out = std::move(encoded.header);
  out.append(static_cast<const char*>(encoded.data), encoded.size);
  return out;
}

}  // namespace wfm::model::io
