// CPU fused softmax cross-entropy. One row of logits is one work item: the forward makes two passes
// over it (max, then Σ exp(x − max)) and writes only the row's loss and logsumexp; the backward
// recomputes each probability as exp(x − lse) in the same pass that writes the gradient, so the
// [rows, V] softmax never exists in memory. Arithmetic is in the accumulation type (double for f64
// logits, float otherwise), which also keeps bf16/f16 rows from losing the small terms of the sum.
#include "kernels/cpu/cross_entropy.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "kernels/cpu/parallel.h"

namespace tilegrad::kernels::cpu {

namespace {

// Logit elements below which a loop stays on one thread.
constexpr int64_t kGrain = 1 << 15;

}  // namespace

void cross_entropy_forward(DType dt, const void* logits, DType t_dt, const void* targets,
                           void* losses, void* lse, int64_t rows, int64_t V, int64_t ld,
                           int64_t ignore_index) {
  dispatch_floating(dt, "cross_entropy", [&]<class T>() {
    using A = acc_t<T>;
    dispatch_index(t_dt, "cross_entropy", [&]<class I>() {
      const T* x = static_cast<const T*>(logits);
      const I* t = static_cast<const I*>(targets);
      A* loss = static_cast<A*>(losses);
      A* l = static_cast<A*>(lse);
      parallel_for(rows, rows * V >= kGrain, [&](int64_t r) {
        const T* xr = x + r * ld;
        A m = -INFINITY;
        for (int64_t j = 0; j < V; ++j) m = std::max(m, A(xr[j]));
        // A row of -inf logits has m = -inf: taken as 0 in the differences, its sum is 0 and its
        // logsumexp -inf (not NaN), as on the GPU.
        const A m_finite = m == -INFINITY ? A(0) : m;
        A s = 0;
        for (int64_t j = 0; j < V; ++j) s += std::exp(A(xr[j]) - m_finite);
        const A log_s = std::log(s);
        l[r] = m + log_s;
        // (m − x[t]) + log s rather than lse − x[t]: with logits near ±1000 lse is rounded at the
        // scale of 1000, while m − x[t] is exact when the two are close.
        const int64_t tr = static_cast<int64_t>(t[r]);
        loss[r] = tr == ignore_index ? A(0) : (m - A(xr[tr])) + log_s;
      });
    });
  });
}

void cross_entropy_backward(DType dt, const void* logits, DType t_dt, const void* targets,
                            const void* lse, const void* gloss, double scale, void* glogits,
                            int64_t rows, int64_t V, int64_t ld, int64_t ignore_index) {
  dispatch_floating(dt, "cross_entropy backward", [&]<class T>() {
    using A = acc_t<T>;
    dispatch_index(t_dt, "cross_entropy backward", [&]<class I>() {
      const T* x = static_cast<const T*>(logits);
      const I* t = static_cast<const I*>(targets);
      const A* l = static_cast<const A*>(lse);
      T* gx = static_cast<T*>(glogits);
      const A g = A(static_cast<double>(*static_cast<const A*>(gloss)) * scale);
      parallel_for(rows, rows * V >= kGrain, [&](int64_t r) {
        const T* xr = x + r * ld;
        T* gr = gx + r * ld;
        const int64_t tr = static_cast<int64_t>(t[r]);
        if (tr == ignore_index) {
          for (int64_t j = 0; j < V; ++j) gr[j] = T(A(0));
          return;
        }
        const A lr = l[r];
        // Read before the row is written: glogits may be logits (in place).
        const A p_target = std::exp(A(xr[tr]) - lr);
        for (int64_t j = 0; j < V; ++j) gr[j] = T(std::exp(A(xr[j]) - lr) * g);
        gr[tr] = T((p_target - A(1)) * g);
      });
    });
  });
}

}  // namespace tilegrad::kernels::cpu
