// tokenizer.json: which tokenizer a dataset was made with, saved beside its token files so that
// training and sampling use the very same vocabulary.
//
//   {"tokenizer": "bytes", "vocab_size": 256}
//   {"tokenizer": "char", "vocab_size": 65, "chars": ["\n", " ", "!", ...]}
//   {"tokenizer": "gpt2", "vocab_size": 50257, "encoder": "encoder.json", "merges": "vocab.bpe"}
//
// A char vocabulary is listed in id order, one character per string. For gpt2, save copies
// encoder.json and vocab.bpe into the directory, so a dataset directory is self-contained.
#pragma once

#include <filesystem>
#include <memory>
#include <string_view>

#include "data/tokenizer.h"

namespace tilegrad::data {

// The tokenizer of --tokenizer `kind` ("bytes", "char", "gpt2"): char takes its vocabulary from
// `corpus`, gpt2 loads encoder.json and vocab.bpe from `gpt2_dir`.
std::unique_ptr<Tokenizer> make_tokenizer(std::string_view kind, std::string_view corpus,
                                          const std::filesystem::path& gpt2_dir);

// Writes DIR/tokenizer.json (and, for gpt2, DIR/encoder.json and DIR/vocab.bpe), atomically.
void save_tokenizer(const Tokenizer& tokenizer, const std::filesystem::path& dir);

// Reads DIR/tokenizer.json. Throws tilegrad::Error naming the file for a missing or malformed one.
std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& dir);

}  // namespace tilegrad::data
