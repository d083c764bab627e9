// UTF-8 as the tokenizers need it: strict validation and decoding into code points.
//
// "Strict" is Python's bytes.decode("utf-8") with errors="strict", which is how the reference GPT-2
// encoder and nanoGPT's prepare scripts receive their text: overlong forms, surrogates (U+D800 to
// U+DFFF), code points above U+10FFFF, stray continuation bytes and truncated sequences are all
// invalid. Tokenizers that work on characters reject such text with an error naming the byte
// offset, instead of silently replacing it (see docs/DATA.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tilegrad::data {

// Byte offset of the first invalid sequence in `s`, or nullopt when `s` is valid UTF-8.
std::optional<size_t> find_invalid_utf8(std::string_view s);

// Throws tilegrad::Error "<what>: invalid UTF-8 at byte N (0xXX)" when `s` is not valid UTF-8.
void check_utf8(std::string_view s, std::string_view what);

// Length of the UTF-8 sequence whose first byte is `lead` (1 to 4; the input must be valid).
inline int utf8_length(unsigned char lead) {
  return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
}

// The code point of the valid sequence starting at s[i]; advances i past it.
char32_t utf8_next(std::string_view s, size_t& i);

// The code points of `s`; throws like check_utf8 (with `what`) when `s` is invalid.
std::vector<char32_t> utf8_decode(std::string_view s, std::string_view what);

// Appends the UTF-8 encoding of `cp` (a Unicode scalar value) to `out`.
void utf8_append(std::string& out, char32_t cp);

// "U+00E9".
std::string code_point_name(char32_t cp);

}  // namespace tilegrad::data
