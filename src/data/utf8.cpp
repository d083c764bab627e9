#include "data/utf8.h"

#include <cstdio>

#include "core/error.h"

namespace tilegrad::data {

namespace {

bool is_continuation(unsigned char b) {
  return (b & 0xC0) == 0x80;
}

// Length of the valid sequence at s[i], or 0 when it is invalid. The ranges of the second byte
// follow the Unicode Standard's table of well-formed UTF-8 (Table 3-7), which excludes overlong
// forms, surrogates and code points above U+10FFFF.
size_t valid_length(std::string_view s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char b0 = byte(0);
  const size_t left = s.size() - i;
  if (b0 < 0x80) return 1;
  if (b0 < 0xC2) return 0;  // continuation byte, or the overlong C0/C1
  if (b0 < 0xE0) return left >= 2 && is_continuation(byte(1)) ? 2 : 0;
  if (b0 < 0xF0) {
    if (left < 3) return 0;
    const unsigned char lo = b0 == 0xE0 ? 0xA0 : 0x80;  // E0: no overlong forms
    const unsigned char hi = b0 == 0xED ? 0x9F : 0xBF;  // ED: no surrogates
    return byte(1) >= lo && byte(1) <= hi && is_continuation(byte(2)) ? 3 : 0;
  }
  if (b0 < 0xF5) {
    if (left < 4) return 0;
    const unsigned char lo = b0 == 0xF0 ? 0x90 : 0x80;  // F0: no overlong forms
    const unsigned char hi = b0 == 0xF4 ? 0x8F : 0xBF;  // F4: nothing above U+10FFFF
    return byte(1) >= lo && byte(1) <= hi && is_continuation(byte(2)) && is_continuation(byte(3))
               ? 4
               : 0;
  }
  return 0;
}

}  // namespace

std::optional<size_t> find_invalid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    // ASCII runs dominate English text: skip them eight bytes at a time.
    while (i + 8 <= s.size()) {
      uint64_t word = 0;
      for (int k = 0; k < 8; ++k) word |= uint64_t{static_cast<unsigned char>(s[i + k])} << (8 * k);
      if (word & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= s.size()) break;
    const size_t n = valid_length(s, i);
    if (n == 0) return i;
    i += n;
  }
  return std::nullopt;
}

void check_utf8(std::string_view s, std::string_view what) {
  if (const auto bad = find_invalid_utf8(s)) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02X", static_cast<unsigned char>(s[*bad]));
    throw Error(detail::cat(what, ": invalid UTF-8 at byte ", *bad, " (", hex, ")"));
  }
}

char32_t utf8_next(std::string_view s, size_t& i) {
  const auto byte = [&](size_t k) {
    return static_cast<char32_t>(static_cast<unsigned char>(s[k]));
  };
  const char32_t b0 = byte(i);
  const int n = utf8_length(static_cast<unsigned char>(b0));
  char32_t cp = n == 1 ? b0 : n == 2 ? (b0 & 0x1F) : n == 3 ? (b0 & 0x0F) : (b0 & 0x07);
  for (int k = 1; k < n; ++k) cp = (cp << 6) | (byte(i + k) & 0x3F);
  i += n;
  return cp;
}

std::vector<char32_t> utf8_decode(std::string_view s, std::string_view what) {
  check_utf8(s, what);
  std::vector<char32_t> out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) out.push_back(utf8_next(s, i));
  return out;
}

void utf8_append(std::string& out, char32_t cp) {
  TG_ASSERT(cp <= 0x10FFFF && (cp < 0xD800 || cp > 0xDFFF),
            "not a Unicode scalar value: ", static_cast<uint32_t>(cp));
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string code_point_name(char32_t cp) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "U+%04X", static_cast<unsigned>(cp));
  return buf;
}

}  // namespace tilegrad::data
