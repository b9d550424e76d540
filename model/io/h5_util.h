// Internal to model/io: RAII handles and typed reads/writes over the HDF5 C
// API, with every failure turned into an absl::Status. HDF5's automatic
// error-stack printing is switched off (per thread: the library's error
// stacks are thread-local); the innermost HDF5 error text is appended to
// the status message instead.
#ifndef WFM_MODEL_IO_H5_UTIL_H_
#define WFM_MODEL_IO_H5_UTIL_H_

#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "model/io/array.h"

namespace wfm::model::io::h5 {

// Turns off HDF5's error printing for the calling thread (idempotent, cheap).
void SilenceErrors();

// The most specific message on the calling thread's HDF5 error stack (e.g.
// "truncated file: eof = 1000, ..."), or "" when the stack is empty; clears
// the stack.
std::string TakeErrorText();

// `code` status "<what>: <HDF5 error text>".
absl::Status Failure(absl::StatusCode code, absl::string_view what);

// Owns one HDF5 identifier (file, group, dataset, attribute, datatype,
// dataspace, property list) and releases it on destruction.
class Handle {
 public:
  Handle() = default;
  explicit Handle(hid_t id) : id_(id) {}
  Handle(Handle&& other) noexcept : id_(other.id_) { other.id_ = H5I_INVALID_HID; }
  Handle& operator=(Handle&& other) noexcept;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() { Reset(); }

  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void Reset();

 private:
  hid_t id_ = H5I_INVALID_HID;
};

// Checks an id returned by an HDF5 call: InvalidArgument "<what>: <detail>"
// when it is negative (the usual cause is a malformed file).
absl::StatusOr<Handle> Check(hid_t id, absl::string_view what);
absl::Status CheckCall(herr_t result, absl::string_view what);

// --- reading -------------------------------------------------------------

// True when the link `name` (one path component) exists in `loc`.
bool HasMember(hid_t loc, const std::string& name);
// Member names of a group, sorted by name.
absl::StatusOr<std::vector<std::string>> ListMembers(hid_t group, absl::string_view where);
// Opens the object `name` in `loc` (group or dataset).
absl::StatusOr<Handle> OpenObject(hid_t loc, const std::string& name, absl::string_view where);
bool IsGroup(hid_t object);
bool IsDataset(hid_t object);

bool HasAttribute(hid_t object, const std::string& name);
// A scalar string attribute (fixed- or variable-length); InvalidArgument if
// it is not a string.
absl::StatusOr<std::string> ReadStringAttribute(hid_t object, const std::string& name,
                                                absl::string_view where);
// Any attribute read as an Array (strings, numbers, bool enums).
absl::StatusOr<Array> ReadAttribute(hid_t object, const std::string& name, absl::string_view where);
// The object an object-reference attribute points to.
absl::StatusOr<Handle> DereferenceAttribute(hid_t object, const std::string& name,
                                            absl::string_view where);

// Dimensions of a dataset ({} for a scalar).
absl::StatusOr<std::vector<int64_t>> DatasetShape(hid_t dataset, absl::string_view where);
// A whole dataset as an Array: integers, floats (float16 read as float32),
// bool enums (h5py's bool) as kBool, other enums as their integer codes,
// fixed- and variable-length strings.
absl::StatusOr<Array> ReadDataset(hid_t dataset, absl::string_view where);
// A whole numeric dataset converted by HDF5 to float32 / int64 / float64.
absl::StatusOr<std::vector<float>> ReadFloat32(hid_t dataset, absl::string_view where);
absl::StatusOr<std::vector<int64_t>> ReadInt64(hid_t dataset, absl::string_view where);
absl::StatusOr<std::vector<double>> ReadFloat64(hid_t dataset, absl::string_view where);

// Members of an enum datatype other than FALSE/TRUE: names in value order,
// for datasets written by anndata < 0.7 with an HDF5 enum per categorical.
// Empty when `dataset` is not such an enum.
absl::StatusOr<std::vector<std::string>> EnumCategories(hid_t dataset, absl::string_view where);

// --- writing -------------------------------------------------------------

// Variable-length UTF-8 strings, as h5py writes Python str values.
absl::Status WriteStringAttribute(hid_t object, const std::string& name, absl::string_view value);
absl::Status WriteStringArrayAttribute(hid_t object, const std::string& name,
                                       const std::vector<std::string>& values);
// numpy bool as h5py stores it: an int8 enum {FALSE = 0, TRUE = 1}.
absl::Status WriteBoolAttribute(hid_t object, const std::string& name, bool value);
// The anndata element metadata: encoding-type and encoding-version.
absl::Status WriteEncoding(hid_t object, absl::string_view type, absl::string_view version);

absl::StatusOr<Handle> CreateGroup(hid_t loc, const std::string& name);
// A numeric dataset of `dtype` (little-endian in the file) from C-order
// `data` of `shape`. kBool is stored as h5py does (int8 enum).
absl::StatusOr<Handle> WriteNumericDataset(hid_t loc, const std::string& name, DType dtype,
                                           const std::vector<int64_t>& shape, const void* data);
// A 1-D variable-length UTF-8 string dataset.
absl::StatusOr<Handle> WriteStringDataset(hid_t loc, const std::string& name,
                                          const std::vector<std::string>& values);

}  // namespace wfm::model::io::h5

#endif  // WFM_MODEL_IO_H5_UTIL_H_
