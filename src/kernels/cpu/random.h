// CPU kernels that draw from the Philox stream: dropout and random fills.
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace tilegrad::kernels::cpu {

void dropout(DType dt, const void* x, void* y, int64_t n, double p, uint64_t seed, uint64_t offset);
void fill_uniform(DType dt, void* dst, int64_t n, double lo, double hi, uint64_t seed,
                  uint64_t offset);
void fill_normal(DType dt, void* dst, int64_t n, double mean, double std, uint64_t seed,
                 uint64_t offset);

}  // namespace tilegrad::kernels::cpu
