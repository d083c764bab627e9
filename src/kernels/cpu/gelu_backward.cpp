// The MLP's GELU backward on the CPU (kernels/cpu/gelu_backward.h). As three entries (the unary
// GELU backward, the unary GELU, a column reduce) it walked [rows, M] three times; here a row's
// three steps run while the row is in cache.
#include "kernels/cpu/gelu_backward.h"

#include <algorithm>
#include <type_traits>

#include "kernels/cpu/parallel.h"
#include "kernels/cpu/strided_loop.h"
#include "kernels/cpu/vector_math.h"
#include "memory/workspace.h"

namespace tilegrad::kernels::cpu {

namespace {

// At most this many row blocks, each with its own partial column sums.
constexpr int64_t kMaxRowBlocks = 64;

template <class T>
void backward_impl(const T* pre, T* grad, T* h, T* grad_sum, int64_t rows, int64_t M) {
  using A = acc_t<T>;
  const int64_t blocks = std::clamp<int64_t>(rows, 1, kMaxRowBlocks);
  const int64_t per_block = rows > 0 ? (rows + blocks - 1) / blocks : 0;
  Workspace parts(grad_sum ? blocks * M * static_cast<int64_t>(sizeof(double)) : 0);
  double* part = parts.as<double>();
  parallel_for(blocks, rows * M >= kParallelGrain, [&](int64_t blk) {
    double* bs = part ? part + blk * M : nullptr;
    if (bs) std::fill(bs, bs + M, 0.0);
    const int64_t r_end = std::min(rows, (blk + 1) * per_block);
    for (int64_t r = blk * per_block; r < r_end; ++r) {
      const T* p = pre + r * M;
      T* g = grad + r * M;
      // pre's gradient first: h may be pre itself.
      if constexpr (std::is_same_v<T, float>) {
        gelu_backward_f32(g, p, g, M);
      } else {
        for (int64_t j = 0; j < M; ++j) g[j] = T(A(g[j]) * gelu_tanh_grad(A(p[j])));
      }
      if (bs) {
        for (int64_t j = 0; j < M; ++j) bs[j] += static_cast<double>(static_cast<A>(g[j]));
      }
      if (h == nullptr) continue;
      T* hr = h + r * M;
      if constexpr (std::is_same_v<T, float>) {
        gelu_f32(p, hr, M);
      } else {
        for (int64_t j = 0; j < M; ++j) hr[j] = T(gelu_tanh(A(p[j])));
      }
    }
  });
  if (grad_sum == nullptr) return;
  parallel_for(M, blocks * M >= kParallelGrain, [&](int64_t j) {
    double s = 0;
    for (int64_t blk = 0; blk < blocks; ++blk) s += part[blk * M + j];
    grad_sum[j] = T(static_cast<A>(s));
  });
}

}  // namespace

void gelu_backward_fused(DType dt, const void* pre, void* grad, void* h, void* grad_sum,
                         int64_t rows, int64_t M) {
  dispatch_floating(dt, "mlp", [&]<class T>() {
    backward_impl<T>(static_cast<const T*>(pre), static_cast<T*>(grad), static_cast<T*>(h),
                     static_cast<T*>(grad_sum), rows, M);
  });
}

}  // namespace tilegrad::kernels::cpu
