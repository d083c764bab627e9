#include "data/prepare.h"

#include <chrono>
#include <cmath>
#include <memory>

#include "core/error.h"
#include "data/read_file.h"
#include "data/token_file.h"
#include "data/tokenizer_file.h"
#include "data/utf8.h"

namespace tilegrad::data {

namespace {

// Byte offset of the split: after floor(n * (1 - f)) characters (code points; bytes when
// `by_bytes`). The text has been validated as UTF-8 unless by_bytes.
size_t split_offset(std::string_view text, double val_fraction, bool by_bytes) {
  size_t n = text.size();
  if (!by_bytes) {
    n = 0;
    for (const char c : text) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  }
  // As Python's int(n * 0.9): the product in double, truncated.
  const auto train_chars = static_cast<size_t>(static_cast<double>(n) * (1.0 - val_fraction));
  if (by_bytes) return train_chars;
  size_t i = 0;
  for (size_t c = 0; c < train_chars; ++c) i += utf8_length(static_cast<unsigned char>(text[i]));
  return i;
}

}  // namespace

PrepareResult prepare_dataset(const PrepareConfig& config) {
  TG_CHECK(config.val_fraction > 0.0 && config.val_fraction < 1.0,
           "prepare: --val-fraction must lie strictly between 0 and 1, got ", config.val_fraction);
  const std::string text = read_file(config.input, "prepare: input text");
  TG_CHECK(!text.empty(), "prepare: input text ", config.input.string(), " is empty");
  const bool by_bytes = config.tokenizer == "bytes";
  if (!by_bytes) check_utf8(text, "prepare: input text " + config.input.string());

  const std::unique_ptr<Tokenizer> tokenizer =
      make_tokenizer(config.tokenizer, text, config.gpt2_dir);
  const size_t cut = split_offset(text, config.val_fraction, by_bytes);
  const std::string_view all(text);

  const auto start = std::chrono::steady_clock::now();
  const std::vector<int32_t> train = tokenizer->encode(all.substr(0, cut));
  const std::vector<int32_t> val = tokenizer->encode(all.substr(cut));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  TG_CHECK(!train.empty() && !val.empty(), "prepare: --val-fraction ", config.val_fraction,
           " leaves the ", train.empty() ? "training" : "validation", " split of ",
           config.input.string(), " (", text.size(), " bytes) without tokens");

  std::error_code ec;
  std::filesystem::create_directories(config.out_dir, ec);
  TG_CHECK(!ec, "prepare: cannot create the output directory ", config.out_dir.string(), ": ",
           ec.message());
  write_token_file(config.out_dir / "train.bin", train);
  write_token_file(config.out_dir / "val.bin", val);
  save_tokenizer(*tokenizer, config.out_dir);

  PrepareResult r;
  r.tokenizer = tokenizer->name();
  r.vocab_size = tokenizer->vocab_size();
  r.input_bytes = static_cast<int64_t>(text.size());
  r.train_tokens = static_cast<int64_t>(train.size());
  r.val_tokens = static_cast<int64_t>(val.size());
  r.tokenize_seconds = seconds;
  return r;
}

}  // namespace tilegrad::data
