// `tilegrad prepare`: tokenizes a text file into a dataset directory that training reads:
// DIR/train.bin and DIR/val.bin (llm.c's token file format) and DIR/tokenizer.json (which
// tokenizer, and a char tokenizer's vocabulary). See data/prepare.h and docs/DATA.md.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>

#include "apps/cli_util.h"
#include "apps/commands.h"
#include "data/prepare.h"

namespace tilegrad::apps {

void register_prepare(CLI::App& app) {
  auto c = std::make_shared<data::PrepareConfig>();
  CLI::App* cmd = app.add_subcommand(
      "prepare", "Tokenize a text file into DIR/train.bin, DIR/val.bin and DIR/tokenizer.json");
  cmd->add_option("--tokenizer", c->tokenizer,
                  "bytes (256 ids), char (the text's characters) or "
                  "gpt2 (GPT-2's BPE, 50257 ids)")
      ->required()
      ->check(CLI::IsMember({"bytes", "char", "gpt2"}));
  cmd->add_option("--in", c->input, "The text file (UTF-8, except for --tokenizer bytes)")
      ->required();
  cmd->add_option("--out", c->out_dir, "The dataset directory (created if missing)")->required();
  cmd->add_option("--val-fraction", c->val_fraction,
                  "Fraction of the text (its end) held out for validation")
      ->capture_default_str();
  cmd->add_option("--gpt2-dir", c->gpt2_dir,
                  "Directory of GPT-2's encoder.json and vocab.bpe (--tokenizer gpt2)")
      ->capture_default_str();
  cmd->callback([c] {
    const data::PrepareResult r = data::prepare_dataset(*c);
    const std::string dir = c->out_dir.string();
    std::printf("tilegrad prepare: %s (%lld bytes) with the %s tokenizer (vocabulary %d)\n",
                c->input.string().c_str(), ll(r.input_bytes), r.tokenizer.c_str(), r.vocab_size);
    std::printf("  %s/train.bin  %lld tokens\n", dir.c_str(), ll(r.train_tokens));
    std::printf("  %s/val.bin    %lld tokens\n", dir.c_str(), ll(r.val_tokens));
    std::printf("  %s/tokenizer.json\n", dir.c_str());
    std::printf("  tokenized in %.3f s (%.2f MB/s)\n", r.tokenize_seconds,
                r.tokenize_seconds > 0 ? mb(r.input_bytes) / r.tokenize_seconds : 0.0);
  });
}

}  // namespace tilegrad::apps
