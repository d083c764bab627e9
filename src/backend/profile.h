// Where a device's time goes: GPU time per backend entry, grouped by the op that called it and the
// memory category in force (activation = forward, gradient = backward, optimizer_state = the
// update). A backend that can time its entries implements Backend::start_profile/stop_profile; the
// trainer's --profile prints the rows (train/trainer.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tilegrad {

struct ProfileRow {
  std::string category;  // memory category in force (memory/category.h)
  std::string op;        // the op that called the entry ("" outside any op)
  std::string entry;     // backend entry, e.g. "gemm", "binary:add"
  int64_t calls = 0;
  double seconds = 0;  // device time, summed over calls
};

// Rows sorted by time, longest first, as a fixed-width table with each row's share of the total;
// `per` divides calls and times (e.g. the number of steps profiled).
std::string format_profile(const std::vector<ProfileRow>& rows, int64_t per);

}  // namespace tilegrad
