// Helpers of the training tests (tests/train): a small text dataset, and the run of a tiny GPT on
// it that each test then adjusts.
#pragma once

#include <filesystem>
#include <string>

#include "testing.h"
#include "train/trainer.h"

namespace tgtest {

// A fresh directory <temp>/<dir_name> holding input.txt, 200 lines of `line` followed by a digit,
// and under data/ its character-level dataset. dir_name must be unique in the suite, whose tests
// run in parallel.
std::filesystem::path char_dataset(const std::string& dir_name, const std::string& line);

// A run of the "tiny" preset on dir/data, writing to dir/out: T 16, batch 4, 2 validation batches,
// dropout 0.1 (so that the dropout stream takes part).
train::TrainConfig tiny_run(const std::filesystem::path& dir, const std::string& out);

}  // namespace tgtest
