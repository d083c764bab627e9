// The tokenizer interface: text to token ids and back.
//
// Ids are int32 in [0, vocab_size()). Every tokenizer tilegrad ships has at most 65,536 ids, so a
// token sequence fits the uint16 token files (token_file.h). encode() and decode() are const and
// safe to call from several threads at once.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tilegrad::data {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // "bytes", "char" or "gpt2": the --tokenizer names and the "tokenizer" field of tokenizer.json.
  virtual std::string name() const = 0;
  virtual int32_t vocab_size() const = 0;
  // Throws tilegrad::Error when the text cannot be encoded (invalid UTF-8, an unknown character).
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;
  // The bytes the ids stand for, concatenated. A slice of a sequence may end inside a multi-byte
  // character, so the result of decoding part of a sequence need not be valid UTF-8. Throws
  // tilegrad::Error for an id outside [0, vocab_size()).
  virtual std::string decode(std::span<const int32_t> ids) const = 0;

 protected:
  Tokenizer() = default;
  Tokenizer(const Tokenizer&) = default;
  Tokenizer& operator=(const Tokenizer&) = default;
};

// Throws tilegrad::Error "<tokenizer> decode: id X at position i is outside the vocabulary of V"
// for the first id outside [0, vocab).
void check_ids(std::span<const int32_t> ids, int32_t vocab, std::string_view tokenizer);

}  // namespace tilegrad::data
