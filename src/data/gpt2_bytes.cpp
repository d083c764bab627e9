#include "data/gpt2_bytes.h"

#include "data/utf8.h"

namespace tilegrad::data {

namespace {

bool printable_latin1(int b) {
  return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

std::array<char32_t, 256> make_map() {
  std::array<char32_t, 256> map{};
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    map[static_cast<size_t>(b)] = printable_latin1(b) ? static_cast<char32_t>(b) : next++;
  }
  return map;
}

}  // namespace

const std::array<char32_t, 256>& gpt2_byte_to_unicode() {
  static const std::array<char32_t, 256> map = make_map();
  return map;
}

std::optional<unsigned char> gpt2_unicode_to_byte(char32_t c) {
  // Inverse of make_map: printable Latin-1 maps to itself; U+0100 + k is the k-th other byte.
  if (c < 256) {
    if (printable_latin1(static_cast<int>(c))) return static_cast<unsigned char>(c);
    return std::nullopt;
  }
  static const std::array<unsigned char, 68> others = [] {
    std::array<unsigned char, 68> o{};
    size_t k = 0;
    for (int b = 0; b < 256; ++b) {
      if (!printable_latin1(b)) o[k++] = static_cast<unsigned char>(b);
    }
    return o;
  }();
  if (c - 256 < others.size()) return others[c - 256];
  return std::nullopt;
}

std::optional<std::string> gpt2_decode_token_spelling(std::string_view spelling) {
  std::string bytes;
  bytes.reserve(spelling.size());
  for (size_t i = 0; i < spelling.size();) {
    const auto b = gpt2_unicode_to_byte(utf8_next(spelling, i));
    if (!b) return std::nullopt;
    bytes.push_back(static_cast<char>(*b));
  }
  return bytes;
}

}  // namespace tilegrad::data
