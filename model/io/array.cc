#include "model/io/array.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "model/io/check.h"

namespace wfm::model::io {
namespace {

template <typename T>
constexpr bool kIsStringType = std::is_same_v<T, std::string>;

std::string ElementName(int64_t index) { return absl::StrCat("element ", index); }

absl::Status NotIntegral(DType dtype, int64_t index, absl::string_view value) {
  return absl::InvalidArgumentError(absl::StrCat(ElementName(index), " (", value, ") of a ",
                                                 DTypeName(dtype), " array is not an integer"));
}

absl::Status OutOfRange(DType dtype, int64_t index, absl::string_view value,
                        absl::string_view target) {
  return absl::InvalidArgumentError(absl::StrCat(ElementName(index), " (", value, ") of a ",
                                                 DTypeName(dtype), " array does not fit in ",
                                                 target));
}

template <typename T>
std::string ValueText(const T& value) {
  if constexpr (kIsStringType<T>) {
    return absl::StrCat("'", value, "'");
  } else if constexpr (std::is_floating_point_v<T>) {
    return FormatDouble(static_cast<double>(value));
  } else {
    return absl::StrCat(value);
  }
}

// Converts every element to double (strings parsed).
template <typename T>
absl::Status AppendAsDouble(const std::vector<T>& in, DType dtype, std::vector<double>* out) {
  out->reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if constexpr (kIsStringType<T>) {
      double v;
      if (!absl::SimpleAtod(in[i], &v)) {
        return absl::InvalidArgumentError(
            absl::StrCat(ElementName(i), " ('", in[i], "') of a string array is not a number"));
      }
      out->push_back(v);
    } else {
      out->push_back(static_cast<double>(in[i]));
    }
  }
  return absl::OkStatus();
}

// Converts every element to int64 exactly, or fails naming the element.
template <typename T>
absl::Status AppendAsInt64(const std::vector<T>& in, DType dtype, std::vector<int64_t>* out) {
  out->reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    const T& v = in[i];
    if constexpr (kIsStringType<T>) {
      int64_t parsed;
      if (!absl::SimpleAtoi(v, &parsed)) {
        return NotIntegral(dtype, i, ValueText(v));
      }
      out->push_back(parsed);
    } else if constexpr (std::is_floating_point_v<T>) {
      if (!std::isfinite(v) || std::trunc(v) != v) {
        return NotIntegral(dtype, i, ValueText(v));
      }
      // 2^63 is exactly representable; anything >= it does not fit.
      if (v >= 9223372036854775808.0 || v < -9223372036854775808.0) {
        return OutOfRange(dtype, i, ValueText(v), "int64");
      }
      out->push_back(static_cast<int64_t>(v));
    } else if constexpr (std::is_same_v<T, uint64_t>) {
      if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return OutOfRange(dtype, i, ValueText(v), "int64");
      }
      out->push_back(static_cast<int64_t>(v));
    } else {
      out->push_back(static_cast<int64_t>(v));
    }
  }
  return absl::OkStatus();
}

}  // namespace

namespace {

template <typename T>
Array::Storage Empty() {
  return std::vector<T>();
}

// Name, bytes per element, whether the values are integers and the (empty)
// storage alternative, per dtype.
struct DTypeFacts {
  DType dtype;
  absl::string_view name;
  int size;
  bool integer;
  Array::Storage (*empty)();
};
constexpr DTypeFacts kDTypeFacts[] = {
    {DType::kBool, "bool", 1, false, &Empty<uint8_t>},
    {DType::kInt8, "int8", 1, true, &Empty<int8_t>},
    {DType::kInt16, "int16", 2, true, &Empty<int16_t>},
    {DType::kInt32, "int32", 4, true, &Empty<int32_t>},
    {DType::kInt64, "int64", 8, true, &Empty<int64_t>},
    {DType::kUInt8, "uint8", 1, true, &Empty<uint8_t>},
    {DType::kUInt16, "uint16", 2, true, &Empty<uint16_t>},
    {DType::kUInt32, "uint32", 4, true, &Empty<uint32_t>},
    {DType::kUInt64, "uint64", 8, true, &Empty<uint64_t>},
    {DType::kFloat32, "float32", 4, false, &Empty<float>},
    {DType::kFloat64, "float64", 8, false, &Empty<double>},
    {DType::kString, "string", 0, false, &Empty<std::string>},
};

const DTypeFacts* FactsOf(DType dtype) {
  for (const DTypeFacts& f : kDTypeFacts) {
    if (f.dtype == dtype) return &f;
  }
  return nullptr;
}

// The storage alternative a dtype uses.
Array::Storage EmptyStorage(DType dtype) {
  const DTypeFacts* f = FactsOf(dtype);
  return f != nullptr ? f->empty() : std::vector<float>();
}

// Every element of `storage` converted by `append` (AppendAsDouble,
// AppendAsInt64), or the error naming the first it cannot convert.
template <typename Out, typename Append>
absl::StatusOr<std::vector<Out>> ConvertEach(const Array::Storage& storage, DType dtype,
                                             Append append) {
  std::vector<Out> out;
  absl::Status status =
      std::visit([&](const auto& v) { return append(v, dtype, &out); }, storage);
  if (!status.ok()) return status;
  return out;
}

}  // namespace

absl::string_view DTypeName(DType dtype) {
  const DTypeFacts* f = FactsOf(dtype);
  return f != nullptr ? f->name : "unknown";
}

int DTypeSize(DType dtype) {
  const DTypeFacts* f = FactsOf(dtype);
  return f != nullptr ? f->size : 0;
}

bool IsInteger(DType dtype) {
  const DTypeFacts* f = FactsOf(dtype);
  return f != nullptr && f->integer;
}

bool IsFloat(DType dtype) { return dtype == DType::kFloat32 || dtype == DType::kFloat64; }

int64_t ShapeSize(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

std::string FormatDouble(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  if (value == 0) return std::signbit(value) ? "-0.0" : "0.0";
  // Shortest scientific form that reads back to the same double.
  char buf[40];
  for (int precision = 0; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*e", precision, value);
    if (std::strtod(buf, nullptr) == value) break;
  }
  // buf = [-]d[.ddd]e[+-]XX: split digits and exponent.
  std::string text(buf);
  const bool negative = text[0] == '-';
  if (negative) text.erase(0, 1);
  const size_t e = text.find('e');
  std::string digits = text.substr(0, e);
  const int exponent = std::atoi(text.c_str() + e + 1);
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  std::string out = negative ? "-" : "";
  if (exponent >= -4 && exponent < 16) {  // Python's repr switches at 1e16
    const int point = exponent + 1;       // digits before the decimal point
    if (point <= 0) {
      out += "0." + std::string(-point, '0') + digits;
    } else if (point >= static_cast<int>(digits.size())) {
      out += digits + std::string(point - digits.size(), '0') + ".0";
    } else {
      out += digits.substr(0, point) + "." + digits.substr(point);
    }
  } else {
    out += digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char exp_buf[16];
    std::snprintf(exp_buf, sizeof(exp_buf), "e%c%02d", exponent < 0 ? '-' : '+',
                  std::abs(exponent));
    out += exp_buf;
  }
  return out;
}

ArrayView ArrayView::Of(const Array& array) {
  ArrayView view;
  view.dtype = array.dtype();
  view.shape = array.shape();
  if (array.dtype() == DType::kString) {
    view.strings = &array.values<std::string>();
  } else {
    view.data = array.raw_data();
  }
  return view;
}

void CheckViewSize(const ArrayView& view, size_t count, int element_size) {
  WFM_IO_CHECK(DTypeSize(view.dtype) == element_size,
               absl::StrCat("ArrayView: dtype ", DTypeName(view.dtype),
                            " does not match the element size ", element_size)
                   .c_str());
  WFM_IO_CHECK(
      static_cast<int64_t>(count) == ShapeSize(view.shape),
      absl::StrCat("ArrayView of shape ", ShapeString(view.shape), " given ", count, " values")
          .c_str());
  WFM_IO_CHECK((view.dtype == DType::kString) == (view.strings != nullptr),
               "ArrayView: string dtype needs string values");
}

Array::Array() : Array(DType::kFloat32, {0}, std::vector<float>()) {}

Array::Array(DType dtype, std::vector<int64_t> shape, Storage storage)
    : dtype_(dtype), shape_(std::move(shape)), storage_(std::move(storage)) {
  const size_t n = std::visit([](const auto& v) { return v.size(); }, storage_);
  WFM_IO_CHECK(
      static_cast<int64_t>(n) == ShapeSize(shape_),
      absl::StrCat("Array of shape ", ShapeString(shape_), " given ", n, " values").c_str());
  WFM_IO_CHECK(storage_.index() == EmptyStorage(dtype_).index(),
               absl::StrCat("Array storage does not match dtype ", DTypeName(dtype_)).c_str());
}

Array Array::Zeros(DType dtype, std::vector<int64_t> shape) {
  Storage storage = EmptyStorage(dtype);
  const int64_t n = ShapeSize(shape);
  std::visit([n](auto& v) { v.resize(n); }, storage);
  return Array(dtype, std::move(shape), std::move(storage));
}

Array Array::FromFloat32(std::vector<int64_t> shape, std::vector<float> values) {
  return Array(DType::kFloat32, std::move(shape), std::move(values));
}
Array Array::FromFloat64(std::vector<int64_t> shape, std::vector<double> values) {
  return Array(DType::kFloat64, std::move(shape), std::move(values));
}
Array Array::FromInt32(std::vector<int64_t> shape, std::vector<int32_t> values) {
  return Array(DType::kInt32, std::move(shape), std::move(values));
}
Array Array::FromInt64(std::vector<int64_t> shape, std::vector<int64_t> values) {
  return Array(DType::kInt64, std::move(shape), std::move(values));
}
Array Array::FromBool(std::vector<int64_t> shape, std::vector<uint8_t> values) {
  for (uint8_t& v : values) v = v != 0;
  return Array(DType::kBool, std::move(shape), std::move(values));
}
Array Array::FromStrings(std::vector<int64_t> shape, std::vector<std::string> values) {
  return Array(DType::kString, std::move(shape), std::move(values));
}
Array Array::FromStorage(DType dtype, std::vector<int64_t> shape, Storage values) {
  return Array(dtype, std::move(shape), std::move(values));
}

template <typename T>
const std::vector<T>& Array::values() const {
  const auto* v = std::get_if<std::vector<T>>(&storage_);
  WFM_IO_CHECK(v != nullptr, absl::StrCat("Array of dtype ", DTypeName(dtype_),
                                          " accessed with the wrong element type")
                                 .c_str());
  return *v;
}

template <typename T>
std::vector<T>& Array::mutable_values() {
  return const_cast<std::vector<T>&>(std::as_const(*this).values<T>());
}

#define WFM_IO_ARRAY_INSTANTIATE(T)                        \
  template const std::vector<T>& Array::values<T>() const; \
  template std::vector<T>& Array::mutable_values<T>();
WFM_IO_ARRAY_INSTANTIATE(uint8_t)
WFM_IO_ARRAY_INSTANTIATE(int8_t)
WFM_IO_ARRAY_INSTANTIATE(int16_t)
WFM_IO_ARRAY_INSTANTIATE(int32_t)
WFM_IO_ARRAY_INSTANTIATE(int64_t)
WFM_IO_ARRAY_INSTANTIATE(uint16_t)
WFM_IO_ARRAY_INSTANTIATE(uint32_t)
WFM_IO_ARRAY_INSTANTIATE(uint64_t)
WFM_IO_ARRAY_INSTANTIATE(float)
WFM_IO_ARRAY_INSTANTIATE(double)
WFM_IO_ARRAY_INSTANTIATE(std::string)
#undef WFM_IO_ARRAY_INSTANTIATE

const void* Array::raw_data() const {
  return std::visit(
      [](const auto& v) -> const void* {
        using T = typename std::decay_t<decltype(v)>::value_type;
        if constexpr (kIsStringType<T>) {
          return nullptr;
        } else {
          return v.data();
        }
      },
      storage_);
}

void* Array::mutable_raw_data() { return const_cast<void*>(std::as_const(*this).raw_data()); }

absl::StatusOr<std::vector<double>> Array::ToFloat64() const {
  return ConvertEach<double>(storage_, dtype_, [](const auto& v, DType dtype, auto* out) {
    return AppendAsDouble(v, dtype, out);
  });
}

absl::StatusOr<std::vector<float>> Array::ToFloat32() const {
  if (dtype_ == DType::kFloat32) return values<float>();
  absl::StatusOr<std::vector<double>> wide = ToFloat64();
  if (!wide.ok()) return wide.status();
  return std::vector<float>(wide->begin(), wide->end());
}

absl::StatusOr<std::vector<int64_t>> Array::ToInt64() const {
  return ConvertEach<int64_t>(storage_, dtype_, [](const auto& v, DType dtype, auto* out) {
    return AppendAsInt64(v, dtype, out);
  });
}

absl::StatusOr<std::vector<int32_t>> Array::ToInt32() const {
  absl::StatusOr<std::vector<int64_t>> wide = ToInt64();
  if (!wide.ok()) return wide.status();
  std::vector<int32_t> out;
  out.reserve(wide->size());
  for (size_t i = 0; i < wide->size(); ++i) {
    const int64_t v = (*wide)[i];
    if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max()) {
      return OutOfRange(dtype_, i, absl::StrCat(v), "int32");
    }
    out.push_back(static_cast<int32_t>(v));
  }
  return out;
}

absl::StatusOr<std::vector<uint8_t>> Array::ToBool() const {
  std::vector<uint8_t> out;
  if (dtype_ == DType::kString) {
    const auto& strings = values<std::string>();
    out.reserve(strings.size());
    for (size_t i = 0; i < strings.size(); ++i) {
      const std::string& s = strings[i];
      if (s == "True" || s == "true" || s == "1") {
        out.push_back(1);
      } else if (s == "False" || s == "false" || s == "0") {
        out.push_back(0);
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat(ElementName(i), " ('", s, "') of a string array is not a boolean"));
      }
    }
    return out;
  }
  absl::StatusOr<std::vector<double>> wide = ToFloat64();
  if (!wide.ok()) return wide.status();
  out.reserve(wide->size());
  for (size_t i = 0; i < wide->size(); ++i) {
    const double v = (*wide)[i];
    if (v != 0 && v != 1) {
      return absl::InvalidArgumentError(absl::StrCat(ElementName(i), " (", FormatDouble(v),
                                                     ") of a ", DTypeName(dtype_),
                                                     " array is not 0 or 1"));
    }
    out.push_back(v != 0);
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> Array::ToStrings() const {
  std::vector<std::string> out;
  out.reserve(size());
  std::visit(
      [&](const auto& v) {
        using T = typename std::decay_t<decltype(v)>::value_type;
        for (const T& x : v) {
          if constexpr (kIsStringType<T>) {
            out.push_back(x);
          } else if constexpr (std::is_floating_point_v<T>) {
            out.push_back(FormatDouble(static_cast<double>(x)));
          } else if constexpr (std::is_same_v<T, uint8_t>) {
            if (dtype_ == DType::kBool) {
              out.push_back(x ? "True" : "False");
            } else {
              out.push_back(absl::StrCat(static_cast<int>(x)));
            }
          } else if constexpr (std::is_same_v<T, int8_t>) {
            out.push_back(absl::StrCat(static_cast<int>(x)));
          } else {
            out.push_back(absl::StrCat(x));
          }
        }
      },
      storage_);
  return out;
}

Array Array::Reshaped(std::vector<int64_t> shape) const& {
  Array copy = *this;
  return std::move(copy).Reshaped(std::move(shape));
}

Array Array::Reshaped(std::vector<int64_t> shape) && {
  WFM_IO_CHECK(
      ShapeSize(shape) == size(),
      absl::StrCat("cannot reshape ", ShapeString(shape_), " to ", ShapeString(shape)).c_str());
  shape_ = std::move(shape);
  return std::move(*this);
}

}  // namespace wfm::model::io
