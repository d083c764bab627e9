// CPU embedding lookup and its deterministic backward, plus index range validation.
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace tilegrad::kernels::cpu {

void embedding_forward(DType dt, const void* weight, DType idx_dt, const void* idx, void* out,
                       int64_t n, int64_t C);
// gweight [V, C] = the sum of the rows of gout for each index (Backend::embedding_backward; with
// `accumulate` added to the rows that indices hit, the others untouched).
void embedding_backward(DType dt, const void* gout, DType idx_dt, const void* idx, void* gweight,
                        int64_t n, int64_t C, int64_t V, bool accumulate = false);
int64_t find_out_of_range(DType idx_dt, const void* idx, int64_t n, int64_t lo, int64_t hi,
                          int64_t ignore, int64_t* bad_value);

}  // namespace tilegrad::kernels::cpu
