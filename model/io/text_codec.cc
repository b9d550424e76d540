#include "model/io/text_codec.h"

#include <cstdint>

namespace wfm::model::io {
namespace {

bool ValidCodePoint(uint32_t c) { return c <= 0x10FFFF && !(c >= 0xD800 && c <= 0xDFFF); }

void AppendUtf8(uint32_t c, std::string* out) {
  if (c < 0x80) {
    out->push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (c >> 6)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (c >> 12)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (c >> 18)));
    out->push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

}  // namespace

bool Utf8ToUcs4(absl::string_view utf8, std::u32string* out) {
  out->clear();
  size_t i = 0;
  while (i < utf8.size()) {
    const auto b0 = static_cast<unsigned char>(utf8[i]);
    int extra;
    uint32_t c;
    uint32_t min;
    if (b0 < 0x80) {
      extra = 0, c = b0, min = 0;
    } else if ((b0 & 0xE0) == 0xC0) {
      extra = 1, c = b0 & 0x1F, min = 0x80;
    } else if ((b0 & 0xF0) == 0xE0) {
      extra = 2, c = b0 & 0x0F, min = 0x800;
    } else if ((b0 & 0xF8) == 0xF0) {
      extra = 3, c = b0 & 0x07, min = 0x10000;
    } else {
      return false;
    }
    if (i + extra >= utf8.size()) return false;  // truncated sequence
    for (int k = 1; k <= extra; ++k) {
      const auto b = static_cast<unsigned char>(utf8[i + k]);
      if ((b & 0xC0) != 0x80) return false;
      c = (c << 6) | (b & 0x3F);
    }
    if (c < min || !ValidCodePoint(c)) return false;
    out->push_back(static_cast<char32_t>(c));
    i += extra + 1;
  }
  return true;
}

bool Ucs4ToUtf8(absl::string_view ucs4, bool big_endian, std::string* out) {
  for (size_t i = 0; i + 4 <= ucs4.size(); i += 4) {
    const auto* b = reinterpret_cast<const unsigned char*>(ucs4.data() + i);
    const uint32_t c =
        big_endian ? (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | b[3]
                   : (uint32_t{b[3]} << 24) | (uint32_t{b[2]} << 16) | (uint32_t{b[1]} << 8) | b[0];
    if (c == 0) break;
    if (!ValidCodePoint(c)) return false;
    AppendUtf8(c, out);
  }
  return true;
}

bool IsValidUtf8(absl::string_view text) {
  std::u32string unused;
  return Utf8ToUcs4(text, &unused);
}

}  // namespace wfm::model::io
