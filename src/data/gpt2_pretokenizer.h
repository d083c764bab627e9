// GPT-2's pre-tokenisation: the text is cut into pieces by OpenAI's regular expression
//
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// (contractions, then an optional space followed by letters, digits or other symbols, then
// whitespace that leaves its last character to the next word) and BPE merges only within a piece.
// The pattern runs in PCRE2 with UTF and UCP, so \p{L}, \p{N} and \s take their Unicode meanings
// from PCRE2's tables (docs/DATA.md). As in Python's findall, pieces are the successive
// non-overlapping leftmost matches; every character matches one of the alternatives, so the pieces
// tile the text.
#pragma once

#include <functional>
#include <memory>
#include <string_view>
#include <vector>

namespace tilegrad::data {

class Gpt2Pretokenizer {
 public:
  Gpt2Pretokenizer();  // compiles the pattern (JIT-compiled where PCRE2 supports it)
  ~Gpt2Pretokenizer();
  Gpt2Pretokenizer(const Gpt2Pretokenizer&) = delete;
  Gpt2Pretokenizer& operator=(const Gpt2Pretokenizer&) = delete;

  // Calls f on each piece of `text`, in order. Throws tilegrad::Error for invalid UTF-8 (see
  // utf8.h). Safe to call from several threads at once.
  void for_each_piece(std::string_view text, const std::function<void(std::string_view)>& f) const;
  std::vector<std::string_view> split(std::string_view text) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tilegrad::data
