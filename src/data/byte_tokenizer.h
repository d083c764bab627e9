// The byte tokenizer: each byte of the text is its own token (vocabulary 256). It accepts any
// bytes, valid UTF-8 or not, and decode(encode(s)) == s always.
#pragma once

#include "data/tokenizer.h"

namespace tilegrad::data {

class ByteTokenizer final : public Tokenizer {
 public:
  std::string name() const override { return "bytes"; }
  int32_t vocab_size() const override { return 256; }
  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(std::span<const int32_t> ids) const override;
};

}  // namespace tilegrad::data
