// CPU optimizer kernels (see optim.h for the update rules).
//
// Every update is elementwise, so any split across threads gives the same bits; the work is cut
// into fixed blocks only to amortise the parallel loop. The sum of squares is a reduction: it sums
// fixed blocks into per-block partials and adds the partials in block order, which keeps its bits
// independent of the thread count (a resumed run must reproduce its clipping factors exactly).
#include "kernels/cpu/optim.h"

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "kernels/cpu/parallel.h"
#include "memory/workspace.h"

namespace tilegrad::kernels::cpu {

namespace {

// Elements per block of the parallel loops: large enough that a block is a few microseconds of
// streaming work, small enough that 2-16 threads get balanced shares of a 100k-element tensor.
constexpr int64_t kBlock = 8192;
// Below this many elements one thread is faster than waking the others.
constexpr int64_t kParallelMin = 32768;

template <class F>
void for_blocks(int64_t n, F&& f) {
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  parallel_for(blocks, n >= kParallelMin, [&](int64_t b) {
    const int64_t i0 = b * kBlock;
    f(i0, std::min(n, i0 + kBlock));
  });
}

template <class T>
void adamw_impl(T* param, float* master, const T* grad, acc_t<T>* m, acc_t<T>* v, int64_t n,
                const AdamWStep& s) {
  using A = acc_t<T>;
  // Scalars are formed in float64 and rounded once, as PyTorch forms them in Python.
  const double bc1 = 1.0 - std::pow(s.beta1, static_cast<double>(s.step));
  const double bc2 = 1.0 - std::pow(s.beta2, static_cast<double>(s.step));
  const A decay = A(1.0 - s.lr * s.weight_decay);
  const A b1 = A(s.beta1), b2 = A(s.beta2), one_b1 = A(1.0 - s.beta1), one_b2 = A(1.0 - s.beta2);
  const A step_size = A(s.lr / bc1);
  const A bc2_sqrt = A(std::sqrt(bc2));
  const A eps = A(s.eps);
  const A gs = A(s.grad_scale);
  for_blocks(n, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const A g = A(grad[i]) * gs;
      A p;
      if constexpr (kHasMaster<T>) {
        p = master[i];
      } else {
        p = param[i];
      }
      p *= decay;
      const A mi = b1 * m[i] + one_b1 * g;
      const A vi = b2 * v[i] + one_b2 * (g * g);
      m[i] = mi;
      v[i] = vi;
      p -= step_size * (mi / (std::sqrt(vi) / bc2_sqrt + eps));
      if constexpr (kHasMaster<T>) master[i] = p;
      param[i] = T(p);
    }
  });
}

template <class T>
void sgd_impl(T* param, float* master, const T* grad, acc_t<T>* buf, int64_t n, const SgdStep& s) {
  using A = acc_t<T>;
  const A lr = A(s.lr), mu = A(s.momentum), one_damp = A(1.0 - s.dampening);
  const A wd = A(s.weight_decay), gs = A(s.grad_scale);
  const bool use_wd = s.weight_decay != 0.0, use_mom = s.momentum != 0.0;
  for_blocks(n, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      A p;
      if constexpr (kHasMaster<T>) {
        p = master[i];
      } else {
        p = param[i];
      }
      A g = A(grad[i]) * gs;
      if (use_wd) g += wd * p;
      if (use_mom) {
        const A b = s.first_step ? g : mu * buf[i] + one_damp * g;
        buf[i] = b;
        g = s.nesterov ? g + mu * b : b;
      }
      p -= lr * g;
      if constexpr (kHasMaster<T>) master[i] = p;
      param[i] = T(p);
    }
  });
}

}  // namespace

void adamw_update(DType dt, void* param, float* master, const void* grad, void* m, void* v,
                  int64_t n, const AdamWStep& s) {
  dispatch_floating(dt, "adamw_update", [&]<class T>() {
    check_master<T>(master);
    adamw_impl(static_cast<T*>(param), master, static_cast<const T*>(grad),
               static_cast<acc_t<T>*>(m), static_cast<acc_t<T>*>(v), n, s);
  });
}

void sgd_update(DType dt, void* param, float* master, const void* grad, void* momentum_buf,
                int64_t n, const SgdStep& s) {
  TG_ASSERT(s.momentum == 0.0 || momentum_buf != nullptr, "SGD with momentum needs a buffer");
  dispatch_floating(dt, "sgd_update", [&]<class T>() {
    check_master<T>(master);
    sgd_impl(static_cast<T*>(param), master, static_cast<const T*>(grad),
             static_cast<acc_t<T>*>(momentum_buf), n, s);
  });
}

double sum_squares(DType dt, const void* x, int64_t n) {
  if (n <= 0) return 0.0;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  Workspace partial(blocks * static_cast<int64_t>(sizeof(double)));
  double* part = partial.as<double>();
  dispatch_floating(dt, "sum_squares", [&]<class T>() {
    const T* p = static_cast<const T*>(x);
    parallel_for(blocks, n >= kParallelMin, [&](int64_t b) {
      const int64_t i0 = b * kBlock, i1 = std::min(n, i0 + kBlock);
      double acc = 0.0;
      for (int64_t i = i0; i < i1; ++i) {
        const double v = static_cast<double>(static_cast<acc_t<T>>(p[i]));
        acc += v * v;
      }
      part[b] = acc;
    });
  });
  double total = 0.0;
  for (int64_t b = 0; b < blocks; ++b) total += part[b];
  return total;
}

}  // namespace tilegrad::kernels::cpu
