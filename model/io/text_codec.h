// UTF-8 <-> UCS-4 conversion for numpy's fixed-width unicode arrays (<U n)
// and UTF-8 validation for text written to .h5ad files.
#ifndef WFM_MODEL_IO_TEXT_CODEC_H_
#define WFM_MODEL_IO_TEXT_CODEC_H_

#include <string>

#include "absl/strings/string_view.h"

namespace wfm::model::io {

// Decodes UTF-8 into code points; false on malformed input (overlong forms,
// surrogates, values above U+10FFFF, truncated sequences).
bool Utf8ToUcs4(absl::string_view utf8, std::u32string* out);

// Decodes fixed-width UCS-4 (4 bytes per code point, little- or big-endian),
// stops at the first NUL (numpy pads with NULs) and appends UTF-8 to `out`;
// false on an invalid code point.
bool Ucs4ToUtf8(absl::string_view ucs4, bool big_endian, std::string* out);

bool IsValidUtf8(absl::string_view text);

}  // namespace wfm::model::io

#endif  // WFM_MODEL_IO_TEXT_CODEC_H_
