// CPU reductions. The dimensions split into kept ones (one output each) and reduced ones; each
// output is computed by one thread walking its reduced sub-block, accumulating in double. A
// reduction to very few outputs instead splits the reduced elements into fixed chunks whose
// partials are combined in chunk order, so results are deterministic for any thread count.
#include "kernels/cpu/reduce.h"

#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"
#include "kernels/cpu/parallel.h"

namespace tilegrad::kernels::cpu {

namespace {

struct Split {
  int nk = 0, nr = 0;
  int64_t kshape[kMaxDims], kstride[kMaxDims];  // kept dims: sizes, x strides
  int64_t rshape[kMaxDims], rstride[kMaxDims];  // reduced dims
  int64_t n_out = 1, n_red = 1;
};

Split split_dims(const StridedView& x, const StridedView& out) {
  Split s;
  for (int d = 0; d < x.ndim; ++d) {
    const bool reduced = out.shape[d] == 1 && x.shape[d] != 1;
    if (x.shape[d] == 1) continue;
    if (reduced) {
      s.rshape[s.nr] = x.shape[d];
      s.rstride[s.nr++] = x.strides[d];
      s.n_red *= x.shape[d];
    } else {
      s.kshape[s.nk] = x.shape[d];
      s.kstride[s.nk++] = x.strides[d];
      s.n_out *= x.shape[d];
    }
  }
  return s;
}

// Offset of element i (row-major) of a sub-block with the given sizes and strides.
inline int64_t offset_of(int64_t i, int n, const int64_t* shape, const int64_t* stride) {
  int64_t off = 0;
  for (int d = n - 1; d >= 0; --d) {
    off += (i % shape[d]) * stride[d];
    i /= shape[d];
  }
  return off;
}

template <class T, bool kMax>
double reduce_range(const T* base, const Split& s, int64_t begin, int64_t end) {
  double acc = kMax ? -std::numeric_limits<double>::infinity() : 0.0;
  const bool inner_contig = s.nr > 0 && s.rstride[s.nr - 1] == 1;
  const int64_t inner = s.nr > 0 ? s.rshape[s.nr - 1] : 1;
  int64_t i = begin;
  while (i < end) {
    const T* p = base + offset_of(i, s.nr, s.rshape, s.rstride);
    // Walk to the end of the current innermost row (or of the range) without recomputing offsets.
    const int64_t stop = std::min(end, (i / inner + 1) * inner);
    const int64_t step = inner_contig ? 1 : (s.nr > 0 ? s.rstride[s.nr - 1] : 0);
    for (int64_t j = 0; j < stop - i; ++j) {
      const double v = static_cast<double>(static_cast<acc_t<T>>(p[j * step]));
      if constexpr (kMax) {
        if (v > acc || std::isnan(v)) acc = v;
        if (std::isnan(acc)) return acc;
      } else {
        acc += v;
      }
    }
    i = stop;
  }
  return acc;
}

template <class T, bool kMax>
void reduce_impl(const StridedView& x, const StridedView& out) {
  const Split s = split_dims(x, out);
  const T* px = static_cast<const T*>(x.data);
  T* po = static_cast<T*>(out.data);
  const int64_t total = s.n_out * s.n_red;
  if (s.n_out >= 16 || total < (1 << 16)) {
    parallel_for(s.n_out, total >= (1 << 15), [&](int64_t o) {
      const T* base = px + offset_of(o, s.nk, s.kshape, s.kstride);
      po[o] = T(static_cast<acc_t<T>>(reduce_range<T, kMax>(base, s, 0, s.n_red)));
    });
    return;
  }
  // Few outputs, many elements each: fixed chunks, combined in order.
  constexpr int64_t kChunk = 1 << 14;
  const int64_t chunks = (s.n_red + kChunk - 1) / kChunk;
  std::vector<double> partial(static_cast<size_t>(s.n_out * chunks));
#pragma omp parallel for schedule(static) collapse(2)
  for (int64_t o = 0; o < s.n_out; ++o) {
    for (int64_t c = 0; c < chunks; ++c) {
      const T* base = px + offset_of(o, s.nk, s.kshape, s.kstride);
      partial[o * chunks + c] =
          reduce_range<T, kMax>(base, s, c * kChunk, std::min(s.n_red, (c + 1) * kChunk));
    }
  }
  for (int64_t o = 0; o < s.n_out; ++o) {
    double acc = partial[o * chunks];
    for (int64_t c = 1; c < chunks; ++c) {
      const double v = partial[o * chunks + c];
      if constexpr (kMax) {
        if (v > acc || std::isnan(v)) acc = v;
      } else {
        acc += v;
      }
    }
    po[o] = T(static_cast<acc_t<T>>(acc));
  }
}

}  // namespace

void reduce(ReduceOp op, const StridedView& x, const StridedView& out) {
  TG_ASSERT(x.ndim == out.ndim && out.is_contiguous(), "reduce: bad output view");
  dispatch_floating(x.dtype, op == ReduceOp::sum ? "sum" : "max", [&]<class T>() {
    if (op == ReduceOp::sum) {
      reduce_impl<T, false>(x, out);
    } else {
      reduce_impl<T, true>(x, out);
    }
  });
}

}  // namespace tilegrad::kernels::cpu
