// CPU layer norm over the last dimension C of `rows` contiguous rows, forward and backward.
//
// Rows are independent in the forward and in gx, so both run one row per iteration across threads.
// The variance takes a second pass over the row (Σ (x - mean)²) rather than E[x²] - mean², which
// cancels catastrophically when |mean| is large against the spread. gw and gb sum over rows: rows
// are cut into a number of blocks that depends only on `rows`, each block sums into its own
// partial buffer, and the partials are added in block order — the same bits for any thread count.
#include "kernels/cpu/layernorm.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/parallel.h"
#include "kernels/cpu/strided_loop.h"
#include "memory/workspace.h"

namespace tilegrad::kernels::cpu {

namespace {

// At most this many row blocks (and partial buffers) in the backward: enough to keep every thread
// busy, few enough that combining the partials is cheap next to the pass over gy.
constexpr int64_t kMaxRowBlocks = 64;

template <class T>
void forward_impl(const T* x, const T* w, const T* b, T* y, acc_t<T>* mean, acc_t<T>* rstd,
                  int64_t rows, int64_t C, double eps) {
  using A = acc_t<T>;
  const A inv_c = C > 0 ? A(1) / A(C) : A(0);
  parallel_for(rows, rows * C >= kParallelGrain, [&](int64_t r) {
    const T* xr = x + r * C;
    T* yr = y + r * C;
    A s = 0;
    for (int64_t j = 0; j < C; ++j) s += A(xr[j]);
    const A mu = s * inv_c;
    A ss = 0;
    for (int64_t j = 0; j < C; ++j) {
      const A d = A(xr[j]) - mu;
      ss += d * d;
    }
    const A rs = A(1) / std::sqrt(ss * inv_c + A(eps));
    mean[r] = mu;
    rstd[r] = rs;
    for (int64_t j = 0; j < C; ++j) {
      A v = (A(xr[j]) - mu) * rs;
      if (w) v *= A(w[j]);
      if (b) v += A(b[j]);
      yr[j] = T(v);
    }
  });
}

// kFromOutput: x̂ from the output (LayerNormSaved), a template argument so that the inner loops keep
// no branch.
template <class T, bool kFromOutput>
void backward_impl(const T* gy, const LayerNormSaved& saved, const T* w, T* gx, const T* gx_add,
                   T* gw, T* gb, T* gx_sum, int64_t rows, int64_t C) {
  using A = acc_t<T>;
  const T* src = static_cast<const T*>(saved.v);
  const A* mean = static_cast<const A*>(saved.mean);
  const A* rstd = static_cast<const A*>(saved.rstd);
  const T* b = static_cast<const T*>(saved.b);
  // x̂ of element j of row vr, with the row's mean and rstd.
  auto xhat = [&](const T* vr, int64_t j, A mu, A rs) {
    return layernorm_xhat<A>(kFromOutput, vr[j], mu, rs, w, b, j);
  };
  const int64_t blocks = std::clamp<int64_t>(rows, 1, kMaxRowBlocks);
  const int64_t per_block = rows > 0 ? (rows + blocks - 1) / blocks : 0;
  // (blocks, C) each: this block's Σ gy ⊙ x̂, Σ gy and Σ gx.
  if (!gx) gx_sum = nullptr;
  Workspace pw(gw ? blocks * C * static_cast<int64_t>(sizeof(A)) : 0);
  Workspace pb(gb ? blocks * C * static_cast<int64_t>(sizeof(A)) : 0);
  Workspace ps(gx_sum ? blocks * C * static_cast<int64_t>(sizeof(A)) : 0);
  A* part_w = pw.as<A>();
  A* part_b = pb.as<A>();
  A* part_s = ps.as<A>();
  const A inv_c = C > 0 ? A(1) / A(C) : A(0);

  parallel_for(blocks, rows * C >= kParallelGrain, [&](int64_t blk) {
    A* bw = part_w ? part_w + blk * C : nullptr;
    A* bb = part_b ? part_b + blk * C : nullptr;
    A* bs = part_s ? part_s + blk * C : nullptr;
    for (int64_t j = 0; j < C; ++j) {
      if (bw) bw[j] = 0;
      if (bb) bb[j] = 0;
      if (bs) bs[j] = 0;
    }
    const int64_t r_end = std::min(rows, (blk + 1) * per_block);
    for (int64_t r = blk * per_block; r < r_end; ++r) {
      const T* gr = gy + r * C;
      if (bb) {
        for (int64_t j = 0; j < C; ++j) bb[j] += A(gr[j]);
      }
      if (!gx && !bw) continue;
      const T* vr = src + r * C;
      const A mu = kFromOutput ? A(0) : mean[r], rs = rstd[r];
      if (bw) {
        for (int64_t j = 0; j < C; ++j) bw[j] += A(gr[j]) * xhat(vr, j, mu, rs);
      }
      if (!gx) continue;
      // ĝ = gy ⊙ w; gx = rstd · (ĝ - mean(ĝ) - x̂ · mean(ĝ ⊙ x̂)).
      A sg = 0, sgx = 0;
      for (int64_t j = 0; j < C; ++j) {
        const A g = w ? A(gr[j]) * A(w[j]) : A(gr[j]);
        sg += g;
        sgx += g * xhat(vr, j, mu, rs);
      }
      const A mg = sg * inv_c, mgx = sgx * inv_c;
      T* gxr = gx + r * C;
      const T* ar = gx_add ? gx_add + r * C : nullptr;
      for (int64_t j = 0; j < C; ++j) {
        const A g = w ? A(gr[j]) * A(w[j]) : A(gr[j]);
        const A xh = xhat(vr, j, mu, rs);
        const T v = T(rs * (g - mg - xh * mgx));
        // The sum as an add of the two gradients would round it: the gradient first, then the sum.
        gxr[j] = ar ? T(A(ar[j]) + A(v)) : v;
        if (bs) bs[j] += A(gxr[j]);
      }
    }
  });

  if (!gw && !gb && !gx_sum) return;
  parallel_for(C, blocks * C >= kParallelGrain, [&](int64_t j) {
    A sw = 0, sb = 0, ss = 0;
    for (int64_t blk = 0; blk < blocks; ++blk) {
      if (part_w) sw += part_w[blk * C + j];
      if (part_b) sb += part_b[blk * C + j];
      if (part_s) ss += part_s[blk * C + j];
    }
    if (gw) gw[j] = T(sw);
    if (gb) gb[j] = T(sb);
    if (gx_sum) gx_sum[j] = T(ss);
  });
}

}  // namespace

void layernorm_forward(DType dt, const void* x, const void* w, const void* b, void* y, void* mean,
                       void* rstd, int64_t rows, int64_t C, double eps) {
  dispatch_floating(dt, "layer_norm", [&]<class T>() {
    using A = acc_t<T>;
    forward_impl<T>(static_cast<const T*>(x), static_cast<const T*>(w), static_cast<const T*>(b),
                    static_cast<T*>(y), static_cast<A*>(mean), static_cast<A*>(rstd), rows, C, eps);
  });
}

void layernorm_backward(DType dt, const void* gy, const LayerNormSaved& saved, const void* w,
                        void* gx, void* gw, void* gb, int64_t rows, int64_t C, const void* gx_add,
                        void* gx_sum) {
  dispatch_floating(dt, "layer_norm", [&]<class T>() {
    auto run = [&]<bool kFromOutput>() {
      backward_impl<T, kFromOutput>(static_cast<const T*>(gy), saved, static_cast<const T*>(w),
                                    static_cast<T*>(gx), static_cast<const T*>(gx_add),
                                    static_cast<T*>(gw), static_cast<T*>(gb),
                                    static_cast<T*>(gx_sum), rows, C);
    };
    if (saved.from_output) {
      run.template operator()<true>();
    } else {
      run.template operator()<false>();
    }
  });
}

}  // namespace tilegrad::kernels::cpu
