// The character tokenizer: one token per Unicode character (code point), as nanoGPT's
// shakespeare_char. The vocabulary is the sorted set of distinct characters of a corpus (sorted by
// code point, like Python's sorted(set(text))); token i is the i-th character. tinyshakespeare has
// 65. Text must be valid UTF-8; a character outside the vocabulary is an error naming it and its
// byte offset. The vocabulary is saved with the dataset (tokenizer_file.h) so that sampling decodes
// with the characters the model was trained on.
#pragma once

#include <array>
#include <vector>

#include "data/tokenizer.h"

namespace tilegrad::data {

class CharTokenizer final : public Tokenizer {
 public:
  // `chars` must be strictly increasing Unicode scalar values, at most 65,536 of them.
  explicit CharTokenizer(std::vector<char32_t> chars);
  // The vocabulary of `corpus`: its distinct characters, sorted.
  static CharTokenizer from_corpus(std::string_view corpus);

  std::string name() const override { return "char"; }
  int32_t vocab_size() const override { return static_cast<int32_t>(chars_.size()); }
  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(std::span<const int32_t> ids) const override;

  const std::vector<char32_t>& chars() const { return chars_; }

 private:
  int32_t id_of(char32_t cp) const;  // -1 when absent

  std::vector<char32_t> chars_;
  // Ids of the first 128 code points (-1: absent): English text rarely needs the binary search.
  std::array<int32_t, 128> ascii_{};
};

}  // namespace tilegrad::data
