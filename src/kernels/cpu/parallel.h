// parallel_for: OpenMP over [0, n) only when the work pays for waking threads.
//
// An `omp parallel for if(false)` still enters the OpenMP runtime (a futex call each time, ~0.3
// µs), which dominates kernels on tiny tensors — a graph of 10,000 small ops calls thousands of
// them — so the serial case is a plain loop that never touches OpenMP.
#pragma once

#include <cstdint>

namespace tilegrad::kernels::cpu {

template <class F>
void parallel_for(int64_t n, bool parallel, F&& f) {
  if (!parallel || n < 2) {
    for (int64_t i = 0; i < n; ++i) f(i);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) f(i);
}

}  // namespace tilegrad::kernels::cpu
