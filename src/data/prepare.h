// Preparing a dataset from a text file: DIR/train.bin, DIR/val.bin (token_file.h) and
// DIR/tokenizer.json (tokenizer_file.h).
//
// The text is split before tokenizing, as nanoGPT's prepare scripts do: the first
// floor(n * (1 - val_fraction)) characters train, the rest validate (n counts code points, or bytes
// for the bytes tokenizer). For the char tokenizer that is the same as splitting the tokens, and on
// tinyshakespeare it gives nanoGPT's 1,003,854 / 111,540 characters; with gpt2, its 301,966 /
// 36,059 tokens. The char vocabulary comes from the whole text.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

namespace tilegrad::data {

struct PrepareConfig {
  std::string tokenizer;  // "bytes", "char" or "gpt2"
  std::filesystem::path input;
  std::filesystem::path out_dir;                 // created if missing
  std::filesystem::path gpt2_dir = "data/gpt2";  // encoder.json and vocab.bpe, for gpt2
  double val_fraction = 0.1;                     // in (0, 1)
};

struct PrepareResult {
  std::string tokenizer;
  int32_t vocab_size = 0;
  int64_t input_bytes = 0;
  int64_t train_tokens = 0;
  int64_t val_tokens = 0;
  double tokenize_seconds = 0;  // wall time of encoding both parts
};

// Throws tilegrad::Error for a missing or empty input, text the tokenizer cannot encode, a
// fraction outside (0, 1), or a split that leaves either part without tokens.
PrepareResult prepare_dataset(const PrepareConfig& config);

}  // namespace tilegrad::data
