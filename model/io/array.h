// A small typed n-dimensional array: the in-memory form of one .npy member of
// an .npz file or one HDF5 dataset of an .h5ad file.
//
// Values are stored flat in C (row-major) order, one std::vector per element
// type; `shape` gives the dimensions (an empty shape is a scalar with one
// element). Strings are UTF-8 std::strings. No LibTorch: the command-line
// client links this library.
#ifndef WFM_MODEL_IO_ARRAY_H_
#define WFM_MODEL_IO_ARRAY_H_

#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace wfm::model::io {

enum class DType {
  kBool,  // one byte per value, 0 or 1
  kInt8,
  kInt16,
  kInt32,
  kInt64,
  kUInt8,
  kUInt16,
  kUInt32,
  kUInt64,
  kFloat32,
  kFloat64,
  kString,  // UTF-8 text
};

// "bool", "int8", ..., "float64", "string".
absl::string_view DTypeName(DType dtype);
// Bytes per value; 0 for kString.
int DTypeSize(DType dtype);
bool IsInteger(DType dtype);  // signed or unsigned integer (not bool)
bool IsFloat(DType dtype);

// Number of elements of `shape` (1 for a scalar). Dimensions are >= 0.
int64_t ShapeSize(const std::vector<int64_t>& shape);
// "[3, 4]" for messages.
std::string ShapeString(const std::vector<int64_t>& shape);

class Array {
 public:
  // Element storage per dtype: kBool and kUInt8 both use uint8_t.
  using Storage = std::variant<std::vector<uint8_t>, std::vector<int8_t>, std::vector<int16_t>,
                               std::vector<int32_t>, std::vector<int64_t>, std::vector<uint16_t>,
                               std::vector<uint32_t>, std::vector<uint64_t>, std::vector<float>,
                               std::vector<double>, std::vector<std::string>>;

  // An empty float32 array of shape [0].
  Array();

  // Zero-filled (or empty strings) array of `dtype` and `shape`.
  static Array Zeros(DType dtype, std::vector<int64_t> shape);

  // Typed constructors; values.size() must equal ShapeSize(shape) (CHECKed:
  // a mismatch is a programmer error).
  static Array FromFloat32(std::vector<int64_t> shape, std::vector<float> values);
  static Array FromFloat64(std::vector<int64_t> shape, std::vector<double> values);
  static Array FromInt32(std::vector<int64_t> shape, std::vector<int32_t> values);
  static Array FromInt64(std::vector<int64_t> shape, std::vector<int64_t> values);
  // `values` are 0 or 1.
  static Array FromBool(std::vector<int64_t> shape, std::vector<uint8_t> values);
  static Array FromStrings(std::vector<int64_t> shape, std::vector<std::string> values);
  // Any storage type with its dtype (for the readers).
  static Array FromStorage(DType dtype, std::vector<int64_t> shape, Storage values);

  DType dtype() const { return dtype_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  int ndim() const { return static_cast<int>(shape_.size()); }
  int64_t size() const { return ShapeSize(shape_); }

  // The stored values; T must match the dtype's storage type (CHECKed):
  // uint8_t for kBool/kUInt8, std::string for kString, etc.
  template <typename T>
  const std::vector<T>& values() const;
  template <typename T>
  std::vector<T>& mutable_values();
  const Storage& storage() const { return storage_; }
  // Mutable storage; the caller keeps its size equal to size().
  Storage& mutable_storage() { return storage_; }

  // Raw bytes of a numeric array (native byte order, C order); nullptr for
  // strings. size() * DTypeSize(dtype()) bytes.
  const void* raw_data() const;
  void* mutable_raw_data();

  // Converting accessors; each returns a copy in C order. Errors
  // (InvalidArgument) name the failing element:
  //  * ToFloat32/ToFloat64: from any numeric or bool dtype (integers are
  //    rounded to the nearest representable value) and from strings that
  //    parse as numbers.
  //  * ToInt64/ToInt32: from integers and bool (range-checked), from floats
  //    holding integral values, and from strings that parse as integers.
  //  * ToBool: from bool, from integers/floats that are 0 or 1, and from the
  //    strings "True"/"False"/"true"/"false"/"0"/"1".
  //  * ToStrings: from strings, and from numbers formatted as Python's str()
  //    prints them (3, 2.5, True).
  absl::StatusOr<std::vector<float>> ToFloat32() const;
  absl::StatusOr<std::vector<double>> ToFloat64() const;
  absl::StatusOr<std::vector<int64_t>> ToInt64() const;
  absl::StatusOr<std::vector<int32_t>> ToInt32() const;
  absl::StatusOr<std::vector<uint8_t>> ToBool() const;
  absl::StatusOr<std::vector<std::string>> ToStrings() const;

  // Copy with a new shape of the same size (CHECKed).
  Array Reshaped(std::vector<int64_t> shape) const&;
  Array Reshaped(std::vector<int64_t> shape) &&;

 private:
  Array(DType dtype, std::vector<int64_t> shape, Storage storage);

  DType dtype_;
  std::vector<int64_t> shape_;
  Storage storage_;
};

// The dtype that stores values of type T (uint8_t maps to kUInt8; use
// DType::kBool explicitly for booleans).
template <typename T>
constexpr DType DTypeOf() {
  if constexpr (std::is_same_v<T, int8_t>) return DType::kInt8;
  if constexpr (std::is_same_v<T, int16_t>) return DType::kInt16;
  if constexpr (std::is_same_v<T, int32_t>) return DType::kInt32;
  if constexpr (std::is_same_v<T, int64_t>) return DType::kInt64;
  if constexpr (std::is_same_v<T, uint8_t>) return DType::kUInt8;
  if constexpr (std::is_same_v<T, uint16_t>) return DType::kUInt16;
  if constexpr (std::is_same_v<T, uint32_t>) return DType::kUInt32;
  if constexpr (std::is_same_v<T, uint64_t>) return DType::kUInt64;
  if constexpr (std::is_same_v<T, float>) return DType::kFloat32;
  if constexpr (std::is_same_v<T, double>) return DType::kFloat64;
  static_assert(std::is_same_v<T, std::string> || std::is_arithmetic_v<T>,
                "no dtype for this type");
  return DType::kString;
}

// A non-owning view of typed n-d data in C order, for writing without a
// copy. The viewed memory must outlive the view's use.
struct ArrayView {
  DType dtype = DType::kFloat32;
  std::vector<int64_t> shape;
  const void* data = nullptr;                         // numeric dtypes
  const std::vector<std::string>* strings = nullptr;  // kString

  static ArrayView Of(const Array& array);
  // values.size() must equal ShapeSize(shape) (CHECKed).
  template <typename T>
  static ArrayView Of(std::vector<int64_t> shape, const std::vector<T>& values,
                      DType dtype = DTypeOf<T>());
};

// Aborts when `count` values do not fill `view.shape` or the dtype does not
// fit the viewed type (used by ArrayView::Of).
void CheckViewSize(const ArrayView& view, size_t count, int element_size);

// Formats a double as Python's repr() does (shortest round-trip text: 0.1,
// 2.5, 1e-07, inf, nan) so labels read from numeric arrays print as they do
// in Python.
std::string FormatDouble(double value);

template <typename T>
ArrayView ArrayView::Of(std::vector<int64_t> shape, const std::vector<T>& values, DType dtype) {
  ArrayView view;
  view.dtype = dtype;
  view.shape = std::move(shape);
  if constexpr (std::is_same_v<T, std::string>) {
    view.strings = &values;
  } else {
    view.data = values.data();
  }
  CheckViewSize(view, values.size(),
                std::is_same_v<T, std::string> ? 0 : static_cast<int>(sizeof(T)));
  return view;
}

}  // namespace wfm::model::io

#endif  // WFM_MODEL_IO_ARRAY_H_
