// GPT-2's byte-level BPE tokenizer, byte-exact with OpenAI's reference encoder (encoder.py).
//
// encode(text): check that the text is UTF-8 (utf8.h), cut it into pieces with GPT-2's regular
// expression (gpt2_pretokenizer.h), start each piece from its bytes' tokens and merge them by rank
// (bpe_merges.h). Pieces seen before come from a cache, as in encoder.py. "<|endoftext|>" in the
// text is ordinary text for encode(), as for the reference encoder; encode_with_special() turns it
// into its id (50256), as tiktoken's encode(text, allowed_special={"<|endoftext|>"}) does.
// The vocabulary comes from GPT-2's published encoder.json and vocab.bpe (data/gpt2/).
#pragma once

#include <array>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "data/bpe_merges.h"
#include "data/gpt2_pretokenizer.h"
#include "data/tokenizer.h"

namespace tilegrad::data {

class Gpt2Tokenizer final : public Tokenizer {
 public:
  static constexpr int32_t kEndOfText = 50256;  // "<|endoftext|>" in GPT-2's vocabulary

  // Loads DIR/encoder.json and DIR/vocab.bpe. Throws tilegrad::Error naming the file and line or
  // token for a missing or malformed file.
  static std::unique_ptr<Gpt2Tokenizer> load(const std::filesystem::path& dir);
  static std::unique_ptr<Gpt2Tokenizer> load(const std::filesystem::path& encoder_json,
                                             const std::filesystem::path& vocab_bpe);

  std::string name() const override { return "gpt2"; }
  int32_t vocab_size() const override { return static_cast<int32_t>(tokens_.size()); }
  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(std::span<const int32_t> ids) const override;

  // encode(), except that special tokens ("<|endoftext|>") in the text become their ids; the text
  // between them is encoded on its own.
  std::vector<int32_t> encode_with_special(std::string_view text) const;

  // The bytes of token `id`.
  const std::string& token(int32_t id) const;
  int32_t merges() const { return merges_.size(); }
  const std::filesystem::path& encoder_path() const { return encoder_path_; }
  const std::filesystem::path& merges_path() const { return merges_path_; }

 private:
  Gpt2Tokenizer() = default;
  void encode_piece(std::string_view piece, std::vector<int32_t>& out) const;

  std::vector<std::string> tokens_;               // id -> bytes
  std::unordered_map<std::string, int32_t> ids_;  // bytes -> id
  std::array<int32_t, 256> byte_ids_{};           // the token of each single byte
  std::vector<std::pair<std::string, int32_t>>
      special_;  // special tokens present in the vocabulary
  BpeMerges merges_;
  Gpt2Pretokenizer pretokenizer_;
  std::filesystem::path encoder_path_, merges_path_;

  // Piece -> ids, as encoder.py's cache. Bounded: cleared when it reaches kCacheLimit entries.
  static constexpr size_t kCacheLimit = size_t{1} << 18;
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace tilegrad::data
