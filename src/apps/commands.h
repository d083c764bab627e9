// The subcommands of the `tilegrad` program.
//
// Each subcommand lives in its own file, src/apps/<name>.cpp, and adds itself to the program with a
// register_<name>(CLI::App&) function declared here; main.cpp only calls these. A subcommand does
// its work in the callback CLI11 runs after parsing, and reports failures by throwing
// tilegrad::Error, which main turns into a message and exit status 2 (nothing below main calls
// exit()).
#pragma once

namespace CLI {
class App;
}

namespace tilegrad::apps {

// memtrace: memory allocated after each forward layer and backward step of a matmul chain.
void register_memtrace(CLI::App& app);

// plan chain: predicted peak and recompute of every checkpointing policy on a uniform chain.
void register_plan(CLI::App& app);

// analyze attention|mlp|transformer: FLOPs, bytes, roofline, MFU, IO model, memory formulas.
void register_analyze(CLI::App& app);

// prepare: tokenize a text file into train.bin, val.bin and tokenizer.json (data/prepare.h).
void register_prepare(CLI::App& app);

// train: a GPT on a prepared dataset, with progress, metrics, checkpoints and a sample.
void register_train(CLI::App& app);

// sample: text from a trained GPT through the KV cache.
void register_sample(CLI::App& app);

// Planned, one file each: bench.

}  // namespace tilegrad::apps
