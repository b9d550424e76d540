#include "model/common/torch_status.h"

#include <exception>
#include <new>
#include <string>

#include <c10/util/Exception.h>

#include "absl/strings/str_cat.h"

namespace wfm::model {

absl::Status StatusFromCurrentException(absl::string_view context) {
  try {
    throw;
  } catch (const c10::OutOfMemoryError& e) {
    return absl::ResourceExhaustedError(
        absl::StrCat(context, ": out of memory: ", e.what_without_backtrace()));
  } catch (const c10::LinAlgError& e) {
    return absl::FailedPreconditionError(
        absl::StrCat(context, ": ", e.what_without_backtrace()));
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat(context, ": ", e.what_without_backtrace()));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat(context, ": out of memory"));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(context, ": ", e.what()));
  } catch (...) {
    return absl::InternalError(absl::StrCat(context, ": unknown exception"));
  }
}

}  // namespace wfm::model
