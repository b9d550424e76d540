#include "model/io/h5_util.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "model/common/status.h"

namespace wfm::model::io::h5 {
namespace {

// Variable-length string memory type in the character set of `file_type`
// (HDF5 converts strings only within one character set).
Handle VlenStringType(H5T_cset_t cset) {
  Handle type(H5Tcopy(H5T_C_S1));
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), cset);
  return type;
}

Handle Utf8VlenType() { return VlenStringType(H5T_CSET_UTF8); }

absl::Status Unsupported(absl::string_view where, absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat(where, ": unsupported HDF5 datatype (", what, ")"));
}

// Reads `count` strings of `file_type` through `read` (H5Dread or H5Aread
// bound to their object), fixed- or variable-length.
template <typename ReadFn>
absl::StatusOr<std::vector<std::string>> ReadStrings(hid_t file_type, hid_t space, int64_t count,
                                                     ReadFn read, absl::string_view where) {
  std::vector<std::string> out;
  out.reserve(count);
  if (H5Tis_variable_str(file_type) > 0) {
    Handle mem = VlenStringType(H5Tget_cset(file_type));
    std::vector<char*> ptrs(std::max<int64_t>(count, 1), nullptr);
    WFM_RETURN_IF_ERROR(
        CheckCall(read(mem.get(), ptrs.data()), absl::StrCat(where, ": reading strings")));
    for (int64_t i = 0; i < count; ++i) out.emplace_back(ptrs[i] ? ptrs[i] : "");
    H5Dvlen_reclaim(mem.get(), space, H5P_DEFAULT, ptrs.data());
    return out;
  }
  const size_t width = H5Tget_size(file_type);
  if (width == 0) return Unsupported(where, "zero-width strings");
  Handle mem(H5Tcopy(file_type));
  std::string raw(width * std::max<int64_t>(count, 1), '\0');
  WFM_RETURN_IF_ERROR(
      CheckCall(read(mem.get(), raw.data()), absl::StrCat(where, ": reading strings")));
  const bool space_padded = H5Tget_strpad(file_type) == H5T_STR_SPACEPAD;
  for (int64_t i = 0; i < count; ++i) {
    absl::string_view item(raw.data() + i * width, width);
    const size_t nul = item.find('\0');
    if (nul != absl::string_view::npos) item = item.substr(0, nul);
    if (space_padded) {
      const size_t end = item.find_last_not_of(' ');
      item = end == absl::string_view::npos ? absl::string_view() : item.substr(0, end + 1);
    }
    out.emplace_back(item);
  }
  return out;
}

bool IsBoolEnum(hid_t type) {
  if (H5Tget_class(type) != H5T_ENUM || H5Tget_nmembers(type) != 2) return false;
  bool ok = true;
  for (unsigned i = 0; i < 2; ++i) {
    char* name = H5Tget_member_name(type, i);
    if (name == nullptr) return false;
    ok = ok && (std::strcmp(name, "FALSE") == 0 || std::strcmp(name, "TRUE") == 0);
    H5free_memory(name);
  }
  return ok;
}

// Native memory type and Array dtype for a numeric file type.
absl::Status NumericMemoryType(hid_t file_type, absl::string_view where, hid_t* mem, DType* dtype) {
  const H5T_class_t cls = H5Tget_class(file_type);
  const size_t size = H5Tget_size(file_type);
  if (cls == H5T_INTEGER) {
    const bool is_signed = H5Tget_sign(file_type) == H5T_SGN_2;
    switch (size) {
      case 1:
        *mem = is_signed ? H5T_NATIVE_INT8 : H5T_NATIVE_UINT8;
        *dtype = is_signed ? DType::kInt8 : DType::kUInt8;
        return absl::OkStatus();
      case 2:
        *mem = is_signed ? H5T_NATIVE_INT16 : H5T_NATIVE_UINT16;
        *dtype = is_signed ? DType::kInt16 : DType::kUInt16;
        return absl::OkStatus();
      case 4:
        *mem = is_signed ? H5T_NATIVE_INT32 : H5T_NATIVE_UINT32;
        *dtype = is_signed ? DType::kInt32 : DType::kUInt32;
        return absl::OkStatus();
      case 8:
        *mem = is_signed ? H5T_NATIVE_INT64 : H5T_NATIVE_UINT64;
        *dtype = is_signed ? DType::kInt64 : DType::kUInt64;
        return absl::OkStatus();
      default:
        return Unsupported(where, absl::StrCat(size, "-byte integers"));
    }
  }
  if (cls == H5T_FLOAT) {
    if (size <= 4) {
      *mem = H5T_NATIVE_FLOAT;
      *dtype = DType::kFloat32;
    } else {
      *mem = H5T_NATIVE_DOUBLE;
      *dtype = DType::kFloat64;
    }
    return absl::OkStatus();
  }
  return Unsupported(where, "not a number");
}

absl::StatusOr<int64_t> SpaceCount(hid_t space, std::vector<int64_t>* shape,
                                   absl::string_view where) {
  const H5S_class_t cls = H5Sget_simple_extent_type(space);
  shape->clear();
  if (cls == H5S_NULL) {
    shape->push_back(0);
    return 0;
  }
  const int rank = H5Sget_simple_extent_ndims(space);
  if (rank < 0) {
    return Failure(absl::StatusCode::kInvalidArgument, absl::StrCat(where, ": dataspace"));
  }
  std::vector<hsize_t> dims(rank);
  if (rank > 0) H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  int64_t count = 1;
  for (hsize_t d : dims) {
    if (d > static_cast<hsize_t>(std::numeric_limits<int64_t>::max()) ||
        __builtin_mul_overflow(count, static_cast<int64_t>(d), &count)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": dataspace has more elements than an int64 holds"));
    }
    shape->push_back(static_cast<int64_t>(d));
  }
  return count;
}

// A dataset's values come from its stored bytes, possibly compressed (deflate
// expands at most ~1032:1); chunks never written read as the fill value. A
// dataset that declares far more values than its storage can hold is refused
// before anything is allocated, so a small corrupt file cannot make a reader
// allocate terabytes.
absl::Status CheckStorage(hid_t dataset, hid_t file_type, int64_t count,
                          absl::string_view where) {
  constexpr double kMaxExpansion = 1100.0;
  constexpr double kSlackBytes = 64.0 * 1024 * 1024;
  const double item_bytes = std::max<double>(1.0, static_cast<double>(H5Tget_size(file_type)));
  const double stored = static_cast<double>(H5Dget_storage_size(dataset));
  const double needed = static_cast<double>(count) * item_bytes;
  if (needed > stored * kMaxExpansion + kSlackBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": declares ", count, " values (", needed, " bytes) but stores only ", stored,
        " bytes: the file is corrupt or truncated"));
  }
  return absl::OkStatus();
}

// Reads a dataset or attribute (through `read`) of `file_type` and `space`.
template <typename ReadFn>
absl::StatusOr<Array> ReadAny(hid_t file_type, hid_t space, ReadFn read, absl::string_view where) {
  std::vector<int64_t> shape;
  WFM_ASSIGN_OR_RETURN(const int64_t count, SpaceCount(space, &shape, where));
  const H5T_class_t cls = H5Tget_class(file_type);
  if (cls == H5T_STRING) {
    WFM_ASSIGN_OR_RETURN(std::vector<std::string> strings,
                         ReadStrings(file_type, space, count, read, where));
    return Array::FromStrings(std::move(shape), std::move(strings));
  }
  if (cls == H5T_ENUM) {
    // Read the raw codes in the enum's native form, then widen.
    Handle mem(H5Tget_native_type(file_type, H5T_DIR_ASCEND));
    Handle base(H5Tget_super(mem.get()));
    const size_t size = H5Tget_size(mem.get());
    const bool is_signed = H5Tget_sign(base.get()) == H5T_SGN_2;
    if (size != 1 && size != 2 && size != 4 && size != 8) {
      return Unsupported(where, "enum base size");
    }
    std::string raw(size * std::max<int64_t>(count, 1), '\0');
    WFM_RETURN_IF_ERROR(CheckCall(read(mem.get(), raw.data()), absl::StrCat(where, ": reading")));
    std::vector<int64_t> codes(count);
    for (int64_t i = 0; i < count; ++i) {
      const char* p = raw.data() + i * size;
      switch (size) {
        case 1: {
          int8_t s;
          uint8_t u;
          std::memcpy(&s, p, 1), std::memcpy(&u, p, 1);
          codes[i] = is_signed ? s : u;
          break;
        }
        case 2: {
          int16_t s;
          uint16_t u;
          std::memcpy(&s, p, 2), std::memcpy(&u, p, 2);
          codes[i] = is_signed ? s : u;
          break;
        }
        case 4: {
          int32_t s;
          uint32_t u;
          std::memcpy(&s, p, 4), std::memcpy(&u, p, 4);
          codes[i] = is_signed ? s : static_cast<int64_t>(u);
          break;
        }
        default: {
          int64_t s;
          std::memcpy(&s, p, 8);
          codes[i] = s;
          break;
        }
      }
    }
    if (IsBoolEnum(file_type)) {
      std::vector<uint8_t> flags(count);
      for (int64_t i = 0; i < count; ++i) flags[i] = codes[i] != 0;
      return Array::FromBool(std::move(shape), std::move(flags));
    }
    return Array::FromInt64(std::move(shape), std::move(codes));
  }
  hid_t mem;
  DType dtype;
  WFM_RETURN_IF_ERROR(NumericMemoryType(file_type, where, &mem, &dtype));
  Array array = Array::Zeros(dtype, shape);
  if (count > 0) {
    WFM_RETURN_IF_ERROR(
        CheckCall(read(mem, array.mutable_raw_data()), absl::StrCat(where, ": reading")));
  }
  return array;
}

thread_local bool errors_silenced = false;

herr_t CollectFirst(unsigned n, const H5E_error2_t* error, void* data) {
  auto* out = static_cast<std::string*>(data);
  if (n == 0 && error->desc != nullptr) *out = error->desc;
  return 0;
}

}  // namespace

void SilenceErrors() {
  if (errors_silenced) return;
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  errors_silenced = true;
}

std::string TakeErrorText() {
  std::string text;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, CollectFirst, &text);
  H5Eclear2(H5E_DEFAULT);
  return text;
}

absl::Status Failure(absl::StatusCode code, absl::string_view what) {
  const std::string detail = TakeErrorText();
  return absl::Status(code, detail.empty() ? std::string(what) : absl::StrCat(what, ": ", detail));
}

Handle& Handle::operator=(Handle&& other) noexcept {
  if (this != &other) {
    Reset();
    id_ = other.id_;
    other.id_ = H5I_INVALID_HID;
  }
  return *this;
}

void Handle::Reset() {
  if (id_ >= 0) {
    // Predefined types (H5T_NATIVE_*) are never wrapped; every wrapped id
    // was returned by an open/create/copy call and owns one reference.
    H5Idec_ref(id_);
    id_ = H5I_INVALID_HID;
  }
}

absl::StatusOr<Handle> Check(hid_t id, absl::string_view what) {
  if (id < 0) return Failure(absl::StatusCode::kInvalidArgument, what);
  return Handle(id);
}

absl::Status CheckCall(herr_t result, absl::string_view what) {
  if (result < 0) return Failure(absl::StatusCode::kInvalidArgument, what);
  return absl::OkStatus();
}

bool HasMember(hid_t loc, const std::string& name) {
  const htri_t exists = H5Lexists(loc, name.c_str(), H5P_DEFAULT);
  if (exists < 0) TakeErrorText();
  return exists > 0;
}

absl::StatusOr<std::vector<std::string>> ListMembers(hid_t group, absl::string_view where) {
  std::vector<std::string> names;
  auto collect = [](hid_t, const char* name, const H5L_info_t*, void* data) -> herr_t {
    static_cast<std::vector<std::string>*>(data)->emplace_back(name);
    return 0;
  };
  hsize_t index = 0;
  WFM_RETURN_IF_ERROR(
      CheckCall(H5Literate(group, H5_INDEX_NAME, H5_ITER_INC, &index, collect, &names),
                absl::StrCat(where, ": listing members")));
  std::sort(names.begin(), names.end());
  return names;
}

absl::StatusOr<Handle> OpenObject(hid_t loc, const std::string& name, absl::string_view where) {
  return Check(H5Oopen(loc, name.c_str(), H5P_DEFAULT), absl::StrCat(where, ": cannot open"));
}

bool IsGroup(hid_t object) { return H5Iget_type(object) == H5I_GROUP; }
bool IsDataset(hid_t object) { return H5Iget_type(object) == H5I_DATASET; }

bool HasAttribute(hid_t object, const std::string& name) {
  const htri_t exists = H5Aexists(object, name.c_str());
  if (exists < 0) TakeErrorText();
  return exists > 0;
}

absl::StatusOr<Array> ReadAttribute(hid_t object, const std::string& name,
                                    absl::string_view where) {
  const std::string what = absl::StrCat(where, ": attribute '", name, "'");
  WFM_ASSIGN_OR_RETURN(Handle attr, Check(H5Aopen(object, name.c_str(), H5P_DEFAULT), what));
  WFM_ASSIGN_OR_RETURN(Handle type, Check(H5Aget_type(attr.get()), what));
  WFM_ASSIGN_OR_RETURN(Handle space, Check(H5Aget_space(attr.get()), what));
  const hid_t id = attr.get();
  return ReadAny(
      type.get(), space.get(), [id](hid_t mem, void* buf) { return H5Aread(id, mem, buf); }, what);
}

absl::StatusOr<std::string> ReadStringAttribute(hid_t object, const std::string& name,
                                                absl::string_view where) {
  WFM_ASSIGN_OR_RETURN(Array value, ReadAttribute(object, name, where));
  if (value.dtype() != DType::kString || value.size() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": attribute '", name, "' is not a string"));
  }
  return value.values<std::string>()[0];
}

absl::StatusOr<Handle> DereferenceAttribute(hid_t object, const std::string& name,
                                            absl::string_view where) {
  const std::string what = absl::StrCat(where, ": attribute '", name, "'");
  WFM_ASSIGN_OR_RETURN(Handle attr, Check(H5Aopen(object, name.c_str(), H5P_DEFAULT), what));
  WFM_ASSIGN_OR_RETURN(Handle type, Check(H5Aget_type(attr.get()), what));
  if (H5Tget_class(type.get()) != H5T_REFERENCE) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is not an object reference"));
  }
  hobj_ref_t ref;
  WFM_RETURN_IF_ERROR(CheckCall(H5Aread(attr.get(), H5T_STD_REF_OBJ, &ref), what));
  return Check(H5Rdereference2(object, H5P_DEFAULT, H5R_OBJECT, &ref),
               absl::StrCat(what, ": dangling reference"));
}

absl::StatusOr<std::vector<int64_t>> DatasetShape(hid_t dataset, absl::string_view where) {
  WFM_ASSIGN_OR_RETURN(Handle space, Check(H5Dget_space(dataset), where));
  std::vector<int64_t> shape;
  WFM_RETURN_IF_ERROR(SpaceCount(space.get(), &shape, where).status());
  return shape;
}

absl::StatusOr<Array> ReadDataset(hid_t dataset, absl::string_view where) {
  WFM_ASSIGN_OR_RETURN(Handle type, Check(H5Dget_type(dataset), where));
  WFM_ASSIGN_OR_RETURN(Handle space, Check(H5Dget_space(dataset), where));
  {
    std::vector<int64_t> shape;
    WFM_ASSIGN_OR_RETURN(const int64_t count, SpaceCount(space.get(), &shape, where));
    WFM_RETURN_IF_ERROR(CheckStorage(dataset, type.get(), count, where));
  }
  return ReadAny(
      type.get(), space.get(),
      [dataset](hid_t mem, void* buf) {
        return H5Dread(dataset, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
      },
      where);
}

namespace {

template <typename T>
absl::StatusOr<std::vector<T>> ReadConverted(hid_t dataset, hid_t mem, absl::string_view where) {
  WFM_ASSIGN_OR_RETURN(Handle type, Check(H5Dget_type(dataset), where));
  const H5T_class_t cls = H5Tget_class(type.get());
  if (cls != H5T_INTEGER && cls != H5T_FLOAT) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": not a numeric dataset (HDF5 class ", cls, ")"));
  }
  WFM_ASSIGN_OR_RETURN(Handle space, Check(H5Dget_space(dataset), where));
  std::vector<int64_t> shape;
  WFM_ASSIGN_OR_RETURN(const int64_t count, SpaceCount(space.get(), &shape, where));
  WFM_RETURN_IF_ERROR(CheckStorage(dataset, type.get(), count, where));
  std::vector<T> out(count);
  if (count > 0) {
    WFM_RETURN_IF_ERROR(CheckCall(H5Dread(dataset, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()),
                                  absl::StrCat(where, ": reading")));
  }
  return out;
}

}  // namespace

absl::StatusOr<std::vector<float>> ReadFloat32(hid_t dataset, absl::string_view where) {
  return ReadConverted<float>(dataset, H5T_NATIVE_FLOAT, where);
}

absl::StatusOr<std::vector<int64_t>> ReadInt64(hid_t dataset, absl::string_view where) {
  return ReadConverted<int64_t>(dataset, H5T_NATIVE_INT64, where);
}

absl::StatusOr<std::vector<double>> ReadFloat64(hid_t dataset, absl::string_view where) {
  return ReadConverted<double>(dataset, H5T_NATIVE_DOUBLE, where);
}

absl::StatusOr<std::vector<std::string>> EnumCategories(hid_t dataset, absl::string_view where) {
  WFM_ASSIGN_OR_RETURN(Handle type, Check(H5Dget_type(dataset), where));
  if (H5Tget_class(type.get()) != H5T_ENUM || IsBoolEnum(type.get())) {
    return std::vector<std::string>();
  }
  Handle native(H5Tget_native_type(type.get(), H5T_DIR_ASCEND));
  Handle base(H5Tget_super(native.get()));
  const int n = H5Tget_nmembers(native.get());
  std::vector<std::string> names(std::max(n, 0));
  for (int i = 0; i < n; ++i) {
    // The value comes in the base integer type; convert it in place.
    long long value = 0;
    WFM_RETURN_IF_ERROR(CheckCall(H5Tget_member_value(native.get(), i, &value),
                                  absl::StrCat(where, ": enum member")));
    WFM_RETURN_IF_ERROR(
        CheckCall(H5Tconvert(base.get(), H5T_NATIVE_LLONG, 1, &value, nullptr, H5P_DEFAULT),
                  absl::StrCat(where, ": enum value")));
    if (value < 0 || value >= n) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": enum categories must have the values 0..", n - 1));
    }
    char* name = H5Tget_member_name(native.get(), i);
    if (name == nullptr) return Failure(absl::StatusCode::kInvalidArgument, where);
    names[value] = name;
    H5free_memory(name);
  }
  return names;
}

absl::Status WriteStringAttribute(hid_t object, const std::string& name, absl::string_view value) {
  const std::string what = absl::StrCat("attribute '", name, "'");
  Handle type = Utf8VlenType();
  WFM_ASSIGN_OR_RETURN(Handle space, Check(H5Screate(H5S_SCALAR), what));
  WFM_ASSIGN_OR_RETURN(Handle attr, Check(H5Acreate2(object, name.c_str(), type.get(), space.get(),
                                                     H5P_DEFAULT, H5P_DEFAULT),
                                          what));
  const std::string text(value);
  const char* ptr = text.c_str();
  return CheckCall(H5Awrite(attr.get(), type.get(), &ptr), what);
}

absl::Status WriteStringArrayAttribute(hid_t object, const std::string& name,
                                       const std::vector<std::string>& values) {
  const std::string what = absl::StrCat("attribute '", name, "'");
  Handle type = Utf8VlenType();
  const hsize_t dims[1] = {values.size()};
  WFM_ASSIGN_OR_RETURN(Handle space, Check(H5Screate_simple(1, dims, nullptr), what));
  WFM_ASSIGN_OR_RETURN(Handle attr, Check(H5Acreate2(object, name.c_str(), type.get(), space.get(),
                                                     H5P_DEFAULT, H5P_DEFAULT),
                                          what));
  if (values.empty()) return absl::OkStatus();
  std::vector<const char*> ptrs;
  for (const std::string& v : values) ptrs.push_back(v.c_str());
  return CheckCall(H5Awrite(attr.get(), type.get(), ptrs.data()), what);
}

namespace {

// h5py's bool: an enum over int8 with FALSE = 0, TRUE = 1.
Handle BoolEnumType() {
  Handle type(H5Tenum_create(H5T_NATIVE_INT8));
  int8_t value = 0;
  H5Tenum_insert(type.get(), "FALSE", &value);
  value = 1;
  H5Tenum_insert(type.get(), "TRUE", &value);
  return type;
}

}  // namespace

absl::Status WriteBoolAttribute(hid_t object, const std::string& name, bool value) {
  const std::string what = absl::StrCat("attribute '", name, "'");
  Handle type = BoolEnumType();
  WFM_ASSIGN_OR_RETURN(Handle space, Check(H5Screate(H5S_SCALAR), what));
  WFM_ASSIGN_OR_RETURN(Handle attr, Check(H5Acreate2(object, name.c_str(), type.get(), space.get(),
                                                     H5P_DEFAULT, H5P_DEFAULT),
                                          what));
  const int8_t v = value ? 1 : 0;
  return CheckCall(H5Awrite(attr.get(), type.get(), &v), what);
}

absl::Status WriteEncoding(hid_t object, absl::string_view type, absl::string_view version) {
  WFM_RETURN_IF_ERROR(WriteStringAttribute(object, "encoding-type", type));
  return WriteStringAttribute(object, "encoding-version", version);
}

absl::StatusOr<Handle> CreateGroup(hid_t loc, const std::string& name) {
  return Check(H5Gcreate2(loc, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
               absl::StrCat("create group '", name, "'"));
}

absl::StatusOr<Handle> WriteNumericDataset(hid_t loc, const std::string& name, DType dtype,
                                           const std::vector<int64_t>& shape, const void* data) {
  const std::string what = absl::StrCat("dataset '", name, "'");
  hid_t file_type, mem_type;
  Handle owned_type;
  switch (dtype) {
    case DType::kBool:
      owned_type = BoolEnumType();
      file_type = mem_type = owned_type.get();
      break;
    case DType::kInt8:
      file_type = H5T_STD_I8LE, mem_type = H5T_NATIVE_INT8;
      break;
    case DType::kInt16:
      file_type = H5T_STD_I16LE, mem_type = H5T_NATIVE_INT16;
      break;
    case DType::kInt32:
      file_type = H5T_STD_I32LE, mem_type = H5T_NATIVE_INT32;
      break;
    case DType::kInt64:
      file_type = H5T_STD_I64LE, mem_type = H5T_NATIVE_INT64;
      break;
    case DType::kUInt8:
      file_type = H5T_STD_U8LE, mem_type = H5T_NATIVE_UINT8;
      break;
    case DType::kUInt16:
      file_type = H5T_STD_U16LE, mem_type = H5T_NATIVE_UINT16;
      break;
    case DType::kUInt32:
      file_type = H5T_STD_U32LE, mem_type = H5T_NATIVE_UINT32;
      break;
    case DType::kUInt64:
      file_type = H5T_STD_U64LE, mem_type = H5T_NATIVE_UINT64;
      break;
    case DType::kFloat32:
      file_type = H5T_IEEE_F32LE, mem_type = H5T_NATIVE_FLOAT;
      break;
    case DType::kFloat64:
      file_type = H5T_IEEE_F64LE, mem_type = H5T_NATIVE_DOUBLE;
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat(what, ": not a numeric dtype"));
  }
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  WFM_ASSIGN_OR_RETURN(
      Handle space,
      Check(dims.empty() ? H5Screate(H5S_SCALAR)
                         : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
            what));
  WFM_ASSIGN_OR_RETURN(Handle dataset, Check(H5Dcreate2(loc, name.c_str(), file_type, space.get(),
                                                        H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                                             what));
  if (ShapeSize(shape) > 0) {
    WFM_RETURN_IF_ERROR(
        CheckCall(H5Dwrite(dataset.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), what));
  }
  return dataset;
}

absl::StatusOr<Handle> WriteStringDataset(hid_t loc, const std::string& name,
                                          const std::vector<std::string>& values) {
  const std::string what = absl::StrCat("dataset '", name, "'");
  Handle type = Utf8VlenType();
  const hsize_t dims[1] = {values.size()};
  WFM_ASSIGN_OR_RETURN(Handle space, Check(H5Screate_simple(1, dims, nullptr), what));
  WFM_ASSIGN_OR_RETURN(Handle dataset, Check(H5Dcreate2(loc, name.c_str(), type.get(), space.get(),
                                                        H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                                             what));
  if (!values.empty()) {
    std::vector<const char*> ptrs;
    ptrs.reserve(values.size());
    for (const std::string& v : values) ptrs.push_back(v.c_str());
    WFM_RETURN_IF_ERROR(CheckCall(
        H5Dwrite(dataset.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()), what));
  }
  return dataset;
}

}  // namespace wfm::model::io::h5
