// FlashAttention forward and backward on the CPU.
//
// The fast memory is a core's cache. A task owns one tile of output rows and keeps everything it
// touches per key block — the score tile S (B_r x B_c), its accumulator (B_r x D), the running max
// m and sum l (B_r) — in a per-thread slice of one Workspace sized from the block sizes alone, so
// the extra memory is independent of N. Products are single-threaded sgemm/dgemm calls on tiles;
// the parallelism is over tiles. 16-bit inputs are widened tile by tile into float.
//
// Forward (FlashAttention-2 order: query blocks outer and parallel, key blocks inner), per tile:
//   S = scale · Q_i K_jᵀ; mask; m' = max(m, rowmax S); P = exp(S - m');
//   l = e^(m - m') l + rowsum P; acc = e^(m - m') acc + dropout(P) V_j
// and once at the end O_i = acc / l, lse_i = m + log l (the accumulator stays unnormalised until
// then). Tiles that the causal band, the window or the block layout hide entirely are skipped.
//
// Backward (FlashAttention-2's: key blocks outer and parallel), per tile:
//   P = exp(scale · Q_i K_jᵀ - lse_i) (recomputed; masked entries 0); P̃ = dropout(P)
//   dV_j += P̃ᵀ dO_i; dP = dropout(dO_i V_jᵀ); dS = P ∘ (dP - Dvec_i)
//   dK_j += scale · dSᵀ Q_i; dQ_i += scale · dS K_j
// with Dvec_i = rowsum(dO_i ∘ O_i) - glse_i computed once before the loop. A task owns dK_j and
// dV_j outright, but dQ_i receives a term from every key block, that is from every task. Each
// thread therefore accumulates its dQ terms into its own zeroed partial dQ, and the partials are
// summed at the end. Why not the alternatives: atomics (FlashAttention-2 on GPUs) do not exist for
// floats on the CPU and would make the sum order depend on timing; a second pass over query blocks
// recomputing S and dP costs 7 tile GEMMs instead of 5. The partials cost threads · |dQ| of
// memory — linear in N — and the result depends on the thread count only (tasks are dealt to
// threads by their cost, see deal_tasks), never on timing.
#include "kernels/cpu/attention_flash.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "kernels/cpu/attention_common.h"
#include "memory/workspace.h"

namespace tilegrad::kernels::cpu {

namespace {

namespace at = attention;

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

// A tile of rows in the accumulation type: the input itself when T already is that type (leading
// dimension = its row stride), else a widened copy in `buf` (leading dimension cols).
template <class T, class A>
const A* tile_rows(const T* src, int64_t rows, int64_t cols, int64_t ld, A* buf, int64_t* ld_out) {
  if constexpr (std::is_same_v<T, A>) {
    (void)buf;
    (void)rows;
    (void)cols;
    *ld_out = ld;
    return src;
  } else {
    at::widen_block(src, rows, cols, ld, buf);
    *ld_out = cols;
    return buf;
  }
}

// The work of each query block (forward) or key block (backward): the area of the tiles it
// computes, those the masks hide entirely being skipped. A task's cost is its block's.
std::vector<double> query_block_work(const at::Visibility& vis, const AttentionArgs& a) {
  std::vector<double> work(static_cast<size_t>(ceil_div(a.Nq, a.block_r)), 0.0);
  for (size_t qb = 0; qb < work.size(); ++qb) {
    const int64_t r0 = static_cast<int64_t>(qb) * a.block_r, r1 = std::min(a.Nq, r0 + a.block_r);
    const int64_t c_first = vis.lo(r0), c_last = vis.hi(r1 - 1);
    for (int64_t kb = c_first / a.block_c; c_first <= c_last && kb <= c_last / a.block_c; ++kb) {
      const int64_t c0 = kb * a.block_c, c1 = std::min(a.Nk, c0 + a.block_c);
      if (vis.classify(r0, r1, c0, c1) != at::TileKind::empty) {
        work[qb] += static_cast<double>((r1 - r0) * (c1 - c0));
      }
    }
  }
  return work;
}

std::vector<double> key_block_work(const at::Visibility& vis, const AttentionArgs& a) {
  std::vector<double> work(static_cast<size_t>(ceil_div(a.Nk, a.bwd_block_c)), 0.0);
  for (size_t kb = 0; kb < work.size(); ++kb) {
    const int64_t c0 = static_cast<int64_t>(kb) * a.bwd_block_c,
                  c1 = std::min(a.Nk, c0 + a.bwd_block_c);
    const auto [first, last] = vis.rows_seeing(c0, c1);
    for (int64_t qb = first / a.bwd_block_r; first <= last && qb <= last / a.bwd_block_r; ++qb) {
      const int64_t r0 = qb * a.bwd_block_r, r1 = std::min(a.Nq, r0 + a.bwd_block_r);
      if (vis.classify(r0, r1, c0, c1) != at::TileKind::empty) {
        work[kb] += static_cast<double>((r1 - r0) * (c1 - c0));
      }
    }
  }
  return work;
}

// One cost per task, task = group · blocks + block.
std::vector<double> task_costs(const std::vector<double>& block_work, int64_t groups) {
  std::vector<double> cost;
  cost.reserve(block_work.size() * static_cast<size_t>(groups));
  for (int64_t g = 0; g < groups; ++g)
    cost.insert(cost.end(), block_work.begin(), block_work.end());
  return cost;
}

template <class T>
void forward_impl(const AttentionArgs& a, T* o, acc_t<T>* lse) {
  using A = acc_t<T>;
  constexpr bool kWiden = !std::is_same_v<T, A>;
  constexpr A kNegInf = -std::numeric_limits<A>::infinity();
  const at::Visibility vis(a);
  const int64_t Br = a.block_r, Bc = a.block_c, D = a.D, Nq = a.Nq, Nk = a.Nk;
  const int64_t group = a.H / a.Hkv;
  const int64_t q_blocks = ceil_div(Nq, Br);
  const int64_t tasks = a.B * a.H * q_blocks;
  const bool dropout = a.dropout_p > 0.0;
  const uint32_t threshold = dropout_keep_threshold(a.dropout_p);
  const A drop_scale = static_cast<A>(at::dropout_scale(a.dropout_p));
  const A scale = static_cast<A>(a.scale);

  struct Slices {
    A* s;           // (B_r, B_c) scores, then probabilities
    A* acc;         // (B_r, D) unnormalised output
    A* m;           // (B_r) running max
    A* l;           // (B_r) running sum of exp(s - m)
    uint8_t* keep;  // (B_c) dropout mask of one row
    A* qw;          // (B_r, D) widened Q tile (16-bit inputs)
    A* kw;          // (B_c, D) widened K tile
    A* vw;          // (B_c, D) widened V tile
  };
  auto carve = [&](char* base, Slices* w) {
    at::Carve c(base);
    w->s = c.take<A>(Br * Bc);
    w->acc = c.take<A>(Br * D);
    w->m = c.take<A>(Br);
    w->l = c.take<A>(Br);
    w->keep = c.take<uint8_t>(dropout ? Bc : 0);
    w->qw = c.take<A>(kWiden ? Br * D : 0);
    w->kw = c.take<A>(kWiden ? Bc * D : 0);
    w->vw = c.take<A>(kWiden ? Bc * D : 0);
    return c.bytes();
  };
  Slices unused;
  const size_t per_thread = carve(nullptr, &unused);
  const int threads = at::task_threads(
      tasks, 2.0 * static_cast<double>(a.B * a.H) * static_cast<double>(Nq * Nk) * D);
  Workspace ws(static_cast<int64_t>(per_thread) * threads);
  const auto lists = at::deal_tasks(task_costs(query_block_work(vis, a), a.B * a.H), threads);

  at::run_dealt(lists, [&](int64_t task, int thread) {
    Slices w;
    carve(ws.as<char>() + per_thread * static_cast<size_t>(thread), &w);
    const int64_t qb = task % q_blocks, bh = task / q_blocks;
    const int64_t h = bh % a.H, b = bh / a.H, hk = h / group;
    const int64_t r0 = qb * Br, br = std::min(Br, Nq - r0), r1 = r0 + br;
    const T* qp =
        static_cast<const T*>(a.q) + b * a.q_strides[0] + h * a.q_strides[1] + r0 * a.q_strides[2];
    const T* kh = static_cast<const T*>(a.k) + b * a.k_strides[0] + hk * a.k_strides[1];
    const T* vh = static_cast<const T*>(a.v) + b * a.v_strides[0] + hk * a.v_strides[1];
    int64_t ldq = 0, ldk = 0, ldv = 0;
    const A* qt = tile_rows(qp, br, D, a.q_strides[2], w.qw, &ldq);
    for (int64_t r = 0; r < br; ++r) {
      w.m[r] = kNegInf;
      w.l[r] = 0;
    }
    std::fill(w.acc, w.acc + br * D, A(0));

    // The key blocks any row of this tile may see: the band of the first row starts it, the band
    // of the last row ends it (both edges grow with the row).
    const int64_t c_first = vis.lo(r0), c_last = vis.hi(r1 - 1);
    for (int64_t kb = c_first / Bc; c_first <= c_last && kb <= c_last / Bc; ++kb) {
      const int64_t c0 = kb * Bc, bc = std::min(Bc, Nk - c0), c1 = c0 + bc;
      const at::TileKind kind = vis.classify(r0, r1, c0, c1);
      if (kind == at::TileKind::empty) continue;
      const A* kt = tile_rows(kh + c0 * a.k_strides[2], bc, D, a.k_strides[2], w.kw, &ldk);
      const A* vt = tile_rows(vh + c0 * a.v_strides[2], bc, D, a.v_strides[2], w.vw, &ldv);

      at::tile_gemm(false, true, br, bc, D, scale, qt, ldq, kt, ldk, A(0), w.s, bc);  // S
      for (int64_t r = 0; r < br; ++r) {
        A* sr = w.s + r * bc;
        if (kind == at::TileKind::partial) vis.mask_row(r0 + r, c0, c1, sr);
        const A m_new = std::max(w.m[r], at::row_max(sr, bc));
        if (m_new == kNegInf) {  // nothing visible to this row yet: its P row is 0
          std::fill(sr, sr + bc, A(0));
          continue;
        }
        const A alpha = std::exp(w.m[r] - m_new);  // 0 when m was -inf
        w.l[r] = alpha * w.l[r] + at::exp_shifted_sum(sr, bc, m_new);
        if (alpha != A(1)) at::scale(w.acc + r * D, D, alpha);
        w.m[r] = m_new;
        if (dropout) {  // after the row sum: the logsumexp is of the undropped scores
          at::dropout_keep_run(a.seed, at::dropout_draw_index(a, b, h, r0 + r, c0), bc, threshold,
                               w.keep);
          at::keep_scaled(sr, w.keep, drop_scale, sr, bc);
        }
      }
      at::tile_gemm(false, false, br, D, bc, A(1), w.s, bc, vt, ldv, A(1), w.acc, D);  // acc += PV
    }

    for (int64_t r = 0; r < br; ++r) {
      const int64_t row = (b * a.H + h) * Nq + r0 + r;
      T* orow = o + row * D;
      if (w.l[r] == A(0)) {  // no visible key: O = 0, lse = -inf
        for (int64_t d = 0; d < D; ++d) orow[d] = T(A(0));
        lse[row] = kNegInf;
        continue;
      }
      A* accr = w.acc + r * D;
      at::scale(accr, D, A(1) / w.l[r]);
      for (int64_t d = 0; d < D; ++d) orow[d] = T(accr[d]);
      lse[row] = w.m[r] + std::log(w.l[r]);
    }
  });
}

template <class T>
void backward_impl(const AttentionArgs& a, const T* o, const acc_t<T>* lse, const T* dout,
                   const acc_t<T>* glse, T* dq, T* dk, T* dv) {
  using A = acc_t<T>;
  constexpr bool kWiden = !std::is_same_v<T, A>;
  constexpr A kNegInf = -std::numeric_limits<A>::infinity();
  const at::Visibility vis(a);
  const int64_t Br = a.bwd_block_r, Bc = a.bwd_block_c, D = a.D, Nq = a.Nq, Nk = a.Nk;
  const int64_t group = a.H / a.Hkv;
  const int64_t k_blocks = ceil_div(Nk, Bc);
  const int64_t tasks = a.B * a.Hkv * k_blocks;
  const int64_t rows = a.B * a.H * Nq;  // rows of q, o, dout, dq
  const bool dropout = a.dropout_p > 0.0;
  const uint32_t threshold = dropout_keep_threshold(a.dropout_p);
  const A drop_scale = static_cast<A>(at::dropout_scale(a.dropout_p));
  const A scale = static_cast<A>(a.scale);

  // Dvec_i = rowsum(dO ∘ O) - glse_i: the row term of dS, once per row instead of per tile.
  Workspace dvec_ws(rows * static_cast<int64_t>(sizeof(A)));
  A* dvec = dvec_ws.as<A>();
  at::for_each_task(rows, at::task_threads(rows, 2.0 * static_cast<double>(rows * D)),
                    [&](int64_t i, int) {
                      A s = 0;
                      if constexpr (kWiden) {
                        for (int64_t d = 0; d < D; ++d) {
                          s += static_cast<A>(dout[i * D + d]) * static_cast<A>(o[i * D + d]);
                        }
                      } else {
                        s = at::dot(dout + i * D, o + i * D, D);
                      }
                      dvec[i] = glse != nullptr ? s - glse[i] : s;
                    });

  struct Slices {
    A* s;           // (B_r, B_c) scores, then P
    A* dp;          // (B_r, B_c) P̃, then dP, then dS
    uint8_t* keep;  // (B_r, B_c) dropout mask of the tile
    A* dk_acc;      // (B_c, D)
    A* dv_acc;      // (B_c, D)
    A* kw;          // (B_c, D) widened K tile (16-bit inputs)
    A* vw;          // (B_c, D)
    A* qw;          // (B_r, D) widened Q tile
    A* dow;         // (B_r, D) widened dO tile
  };
  auto carve = [&](char* base, Slices* w) {
    at::Carve c(base);
    w->s = c.take<A>(Br * Bc);
    w->dp = c.take<A>(Br * Bc);
    w->keep = c.take<uint8_t>(dropout ? Br * Bc : 0);
    w->dk_acc = c.take<A>(Bc * D);
    w->dv_acc = c.take<A>(Bc * D);
    w->kw = c.take<A>(kWiden ? Bc * D : 0);
    w->vw = c.take<A>(kWiden ? Bc * D : 0);
    w->qw = c.take<A>(kWiden ? Br * D : 0);
    w->dow = c.take<A>(kWiden ? Br * D : 0);
    return c.bytes();
  };
  Slices unused;
  const size_t per_thread = carve(nullptr, &unused);
  const int threads = at::task_threads(
      tasks, 4.0 * static_cast<double>(a.B * a.H) * static_cast<double>(Nq * Nk) * D);
  Workspace ws(static_cast<int64_t>(per_thread) * threads);
  // (threads, B, H, Nq, D): each thread's partial dQ.
  Workspace dq_ws(threads * rows * D * static_cast<int64_t>(sizeof(A)));
  A* dq_part = dq_ws.as<A>();
  if (dq_part != nullptr) std::memset(dq_part, 0, sizeof(A) * threads * rows * D);

  const auto lists = at::deal_tasks(task_costs(key_block_work(vis, a), a.B * a.Hkv), threads);

  at::run_dealt(lists, [&](int64_t task, int thread) {
    Slices w;
    carve(ws.as<char>() + per_thread * static_cast<size_t>(thread), &w);
    A* dq_mine = dq_part + thread * rows * D;
    const int64_t kb = task % k_blocks, bhk = task / k_blocks;
    const int64_t hk = bhk % a.Hkv, b = bhk / a.Hkv;
    const int64_t c0 = kb * Bc, bc = std::min(Bc, Nk - c0), c1 = c0 + bc;
    const T* kp =
        static_cast<const T*>(a.k) + b * a.k_strides[0] + hk * a.k_strides[1] + c0 * a.k_strides[2];
    const T* vp =
        static_cast<const T*>(a.v) + b * a.v_strides[0] + hk * a.v_strides[1] + c0 * a.v_strides[2];
    int64_t ldk = 0, ldv = 0, ldq = 0, ldo = 0;
    const A* kt = tile_rows(kp, bc, D, a.k_strides[2], w.kw, &ldk);
    const A* vt = tile_rows(vp, bc, D, a.v_strides[2], w.vw, &ldv);
    std::fill(w.dk_acc, w.dk_acc + bc * D, A(0));
    std::fill(w.dv_acc, w.dv_acc + bc * D, A(0));

    const auto [first, last] = vis.rows_seeing(c0, c1);
    for (int64_t g = 0; g < group && first <= last; ++g) {
      const int64_t h = hk * group + g;
      for (int64_t qb = first / Br; qb <= last / Br; ++qb) {
        const int64_t r0 = qb * Br, br = std::min(Br, Nq - r0), r1 = r0 + br;
        const at::TileKind kind = vis.classify(r0, r1, c0, c1);
        if (kind == at::TileKind::empty) continue;
        const int64_t row0 = (b * a.H + h) * Nq + r0;  // first row of the tile in q, o, dq, lse
        const T* qp = static_cast<const T*>(a.q) + b * a.q_strides[0] + h * a.q_strides[1] +
                      r0 * a.q_strides[2];
        const A* qt = tile_rows(qp, br, D, a.q_strides[2], w.qw, &ldq);
        const A* dot = tile_rows(dout + row0 * D, br, D, D, w.dow, &ldo);

        at::tile_gemm(false, true, br, bc, D, scale, qt, ldq, kt, ldk, A(0), w.s, bc);  // S
        for (int64_t r = 0; r < br; ++r) {  // P = exp(S - lse), masked entries 0
          A* sr = w.s + r * bc;
          const A l = lse[row0 + r];
          if (l == kNegInf) {  // a row without visible keys has P = 0
            std::fill(sr, sr + bc, A(0));
            continue;
          }
          if (kind == at::TileKind::partial) vis.mask_row(r0 + r, c0, c1, sr);
          at::exp_shifted(sr, bc, l);
        }
        const A* pt = w.s;  // the P that dV reads: P̃ under dropout
        if (dropout) {
          for (int64_t r = 0; r < br; ++r) {
            uint8_t* keep = w.keep + r * bc;
            at::dropout_keep_run(a.seed, at::dropout_draw_index(a, b, h, r0 + r, c0), bc, threshold,
                                 keep);
            at::keep_scaled(w.s + r * bc, keep, drop_scale, w.dp + r * bc, bc);
          }
          pt = w.dp;
        }
        at::tile_gemm(true, false, bc, D, br, A(1), pt, bc, dot, ldo, A(1), w.dv_acc, D);
        at::tile_gemm(false, true, br, bc, D, A(1), dot, ldo, vt, ldv, A(0), w.dp, bc);  // dP̃
        for (int64_t r = 0; r < br; ++r) {  // dS = P ∘ (dP - Dvec)
          const A* pr = w.s + r * bc;
          A* dsr = w.dp + r * bc;
          const A dv_r = dvec[row0 + r];
          if (dropout) at::keep_scaled(dsr, w.keep + r * bc, drop_scale, dsr, bc);
          at::ds_row(pr, dsr, bc, dv_r);
        }
        at::tile_gemm(true, false, bc, D, br, scale, w.dp, bc, qt, ldq, A(1), w.dk_acc, D);
        at::tile_gemm(false, false, br, D, bc, scale, w.dp, bc, kt, ldk, A(1), dq_mine + row0 * D,
                      D);
      }
    }
    const int64_t kv_row0 = (b * a.Hkv + hk) * Nk + c0;
    for (int64_t e = 0; e < bc * D; ++e) {
      dk[kv_row0 * D + e] = T(w.dk_acc[e]);
      dv[kv_row0 * D + e] = T(w.dv_acc[e]);
    }
  });

  // dQ = the partials summed in thread order.
  at::for_each_task(rows, at::task_threads(rows, static_cast<double>(threads * rows * D)),
                    [&](int64_t i, int) {
                      for (int64_t d = 0; d < D; ++d) {
                        A s = 0;
                        for (int t = 0; t < threads; ++t) s += dq_part[(t * rows + i) * D + d];
                        dq[i * D + d] = T(s);
                      }
                    });
}

}  // namespace

void attention_flash_forward(const AttentionArgs& args, void* o, void* lse) {
  dispatch_floating(args.dtype, "attention", [&]<class T>() {
    forward_impl<T>(args, static_cast<T*>(o), static_cast<acc_t<T>*>(lse));
  });
}

void attention_flash_backward(const AttentionArgs& args, const void* o, const void* lse,
                              const void* dout, const void* glse, void* dq, void* dk, void* dv) {
  dispatch_floating(args.dtype, "attention", [&]<class T>() {
    backward_impl<T>(args, static_cast<const T*>(o), static_cast<const acc_t<T>*>(lse),
                     static_cast<const T*>(dout), static_cast<const acc_t<T>*>(glse),
                     static_cast<T*>(dq), static_cast<T*>(dk), static_cast<T*>(dv));
  });
}

}  // namespace tilegrad::kernels::cpu
