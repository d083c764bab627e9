// GPT-2's byte-to-unicode map (bytes_to_unicode in OpenAI's encoder.py).
//
// encoder.json and vocab.bpe spell each token's bytes as printable characters: the 188 bytes that
// are printable Latin-1 ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for themselves, and the other 68, in
// increasing order, become U+0100, U+0101, ... (so a space is 'Ġ' U+0120 and a newline 'Ċ'
// U+010A). tilegrad turns the files back into raw bytes when it loads them and merges raw bytes.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>

namespace tilegrad::data {

// The character that stands for each byte.
const std::array<char32_t, 256>& gpt2_byte_to_unicode();

// The byte a character stands for, or nullopt for characters outside the map.
std::optional<unsigned char> gpt2_unicode_to_byte(char32_t c);

// The raw bytes of a token spelled in the map's characters (valid UTF-8 expected); nullopt when a
// character is outside the map.
std::optional<std::string> gpt2_decode_token_spelling(std::string_view spelling);

}  // namespace tilegrad::data
