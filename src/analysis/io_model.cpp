// The IO model's loop walks (Note [IO model] in io_model.h).
//
// Note [Attention FLOPs]: a GEMM of m×k by k×n counts 2mnk. Elementwise work per score element:
// the forward softmax 5 (max, subtract, exp, row sum, scale — ops/softmax.cpp's count; the online
// softmax does the same work per element, its per-row rescaling amortised), the standard softmax
// backward 4 (P∘dP, row sum, subtract, multiply), the flash backward 4 (recompute P = exp(S − L):
// subtract and exp; dS = P∘(dP − D): subtract and multiply) plus D = rowsum(dO∘O) (2 per element
// of O, per block pair in FlashAttention's Algorithm 4 and once in FlashAttention-2). A separate
// mask or dropout kernel adds 1 per element, the dropout backward 1. The flash backward does five
// GEMMs per block (S = QKᵀ recomputed, dV += PᵀdO, dP = dO Vᵀ, dQ += dS K, dK += dSᵀQ) where the
// standard backward does four.
#include "analysis/io_model.h"

#include <algorithm>

#include "core/error.h"

namespace tilegrad::analysis {

namespace {

constexpr int64_t kMaxBlockPairs = int64_t{1} << 30;

constexpr double kSoftmaxForward = 5;
constexpr double kSoftmaxBackward = 4;
constexpr double kFlashBackwardElementwise = 4;
constexpr double kMaskOrDropout = 1;

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

// Rows of block i when n rows are cut into blocks of b (the last one may be short).
int64_t block_len(int64_t n, int64_t b, int64_t i) {
  return std::min(b, n - i * b);
}

void validate(const AttentionDims& dims, const IoOptions& o) {
  TG_CHECK(dims.B >= 1 && dims.H >= 1 && dims.Nq >= 1 && dims.Nk >= 1 && dims.d >= 1,
           "attention IO model: B, H, Nq, Nk and d must be >= 1, got B=", dims.B, " H=", dims.H,
           " Nq=", dims.Nq, " Nk=", dims.Nk, " d=", dims.d);
  TG_CHECK(o.M >= 1, "attention IO model: the fast memory M must be at least 1 element, got ", o.M);
  TG_CHECK(o.sizes.data >= 1 && o.sizes.stat >= 1 && o.sizes.mask >= 1,
           "attention IO model: element sizes must be >= 1 byte, got data=", o.sizes.data,
           " stat=", o.sizes.stat, " mask=", o.sizes.mask);
  if (o.blocks) {
    TG_CHECK(o.blocks->Br >= 1 && o.blocks->Bc >= 1,
             "attention IO model: block sizes must be >= 1, got B_r=", o.blocks->Br,
             " B_c=", o.blocks->Bc);
  }
}

// Everything one walk needs: the problem, the blocks and the element sizes.
struct Walk {
  const AttentionDims& dims;
  Blocks blk;
  int64_t Tr;
  int64_t Tc;
  ElementSizes sz;

  int64_t rows(int64_t i) const { return block_len(dims.Nq, blk.Br, i); }
  int64_t cols(int64_t j) const { return block_len(dims.Nk, blk.Bc, j); }
  bool active(int64_t i, int64_t j) const { return block_active(dims, blk, i, j); }
};

Walk make_walk(const AttentionDims& dims, const Blocks& blk, const ElementSizes& sz) {
  const Walk w{dims, blk, ceil_div(dims.Nq, blk.Br), ceil_div(dims.Nk, blk.Bc), sz};
  TG_CHECK(w.Tr <= kMaxBlockPairs / w.Tc, "attention IO model: ", w.Tr, " x ", w.Tc,
           " block pairs per head is too many to walk (limit 2^30); use a larger fast memory M ",
           "or larger blocks");
  return w;
}

// Records the walk's blocks in the pass; `all` counts every pair as computed (standard).
void record_blocks(const Walk& w, bool all, PassIo& p) {
  p.blocks = w.blk;
  p.Tr = w.Tr;
  p.Tc = w.Tc;
  p.active_blocks = 0;
  for (int64_t i = 0; i < w.Tr; ++i) {
    for (int64_t j = 0; j < w.Tc; ++j) p.active_blocks += all || w.active(i, j) ? 1 : 0;
  }
}

// ---- standard (Algorithm 0 and its backward) ----

// C = A·Bᵀ-like product whose output tile (i, j) needs row block i of `left` (rows(i) × d) and
// row block j of `right` (cols(j) × d), output-stationary over row blocks of the output: left
// block i is loaded once, the right blocks are re-read for every i.
void gemm_rows_resident(const Walk& w, Traffic& t, const char* left, int64_t left_cols,
                        const char* right, int64_t right_cols, const char* out, bool out_tiles,
                        int64_t out_cols_per_row) {
  for (int64_t i = 0; i < w.Tr; ++i) {
    const int64_t r = w.rows(i);
    if (left_cols > 0) t.read(left, r * left_cols, w.sz.data);
    for (int64_t j = 0; j < w.Tc; ++j) {
      const int64_t c = w.cols(j);
      if (left_cols == 0) t.read(left, r * c, w.sz.data);  // a tile of an N×N matrix
      t.read(right, c * right_cols, w.sz.data);
      if (out_tiles) t.write(out, r * c, w.sz.data);
    }
    if (!out_tiles) t.write(out, r * out_cols_per_row, w.sz.data);
  }
}

// The transposed counterpart: the output's row block is indexed by j (a K/V block), and the tiles
// of the N×N operand are read column block by column block.
void gemm_cols_resident(const Walk& w, Traffic& t, const char* nn, const char* right,
                        const char* out) {
  for (int64_t j = 0; j < w.Tc; ++j) {
    const int64_t c = w.cols(j);
    for (int64_t i = 0; i < w.Tr; ++i) {
      const int64_t r = w.rows(i);
      t.read(nn, r * c, w.sz.data);
      t.read(right, r * w.dims.d, w.sz.data);
    }
    t.write(out, c * w.dims.d, w.sz.data);
  }
}

void standard_forward(const Walk& w, const StandardOptions& so, int64_t passes, PassIo& p) {
  const int64_t Nq = w.dims.Nq, Nk = w.dims.Nk, d = w.dims.d;
  const int64_t NN = Nq * Nk;
  const int64_t sz = w.sz.data;
  Traffic& t = p.traffic;
  const char* Pv = so.dropout ? "P_drop" : "P";
  // 1. S = QKᵀ, written to slow memory.
  if (so.tiled_gemm) {
    gemm_rows_resident(w, t, "Q", d, "K", d, "S", /*out_tiles=*/true, 0);
  } else {
    t.read("Q", Nq * d, sz);
    t.read("K", Nk * d, sz);
    t.write("S", NN, sz);
  }
  // Optional masking pass.
  if (so.mask_kernel) {
    t.read("S", NN, sz);
    t.write("S", NN, sz);
  }
  // 2. P = softmax(S), row by row; a row that does not fit in M is read twice (max and sum, then
  // the normalised write).
  t.read("S", passes * NN, sz);
  t.write("P", NN, sz);
  // Optional dropout pass.
  if (so.dropout) {
    t.read("P", NN, sz);
    t.write("P_drop", NN, sz);
    t.write("dropout mask", NN, w.sz.mask);
  }
  // 3. O = PV.
  if (so.tiled_gemm) {
    gemm_rows_resident(w, t, Pv, 0, "V", d, "O", /*out_tiles=*/false, d);
  } else {
    t.read(Pv, NN, sz);
    t.read("V", Nk * d, sz);
    t.write("O", Nq * d, sz);
  }
  const double nn = static_cast<double>(NN);
  p.matmul_flops = 2 * 2 * nn * static_cast<double>(d);
  p.flops = p.matmul_flops + kSoftmaxForward * nn + (so.mask_kernel ? kMaskOrDropout * nn : 0) +
            (so.dropout ? kMaskOrDropout * nn : 0);
}

void standard_backward(const Walk& w, const StandardOptions& so, int64_t passes, PassIo& p) {
  const int64_t Nq = w.dims.Nq, Nk = w.dims.Nk, d = w.dims.d;
  const int64_t NN = Nq * Nk;
  const int64_t sz = w.sz.data;
  Traffic& t = p.traffic;
  const char* Pv = so.dropout ? "P_drop" : "P";
  const char* dPv = so.dropout ? "dP_drop" : "dP";
  // 1. dV = P_vᵀ dO.
  if (so.tiled_gemm) {
    gemm_cols_resident(w, t, Pv, "dO", "dV");
  } else {
    t.read(Pv, NN, sz);
    t.read("dO", Nq * d, sz);
    t.write("dV", Nk * d, sz);
  }
  // 2. dP_v = dO Vᵀ.
  if (so.tiled_gemm) {
    gemm_rows_resident(w, t, "dO", d, "V", d, dPv, /*out_tiles=*/true, 0);
  } else {
    t.read("dO", Nq * d, sz);
    t.read("V", Nk * d, sz);
    t.write(dPv, NN, sz);
  }
  // Optional dropout backward: dP = dP_drop ∘ mask / (1 − p).
  if (so.dropout) {
    t.read("dP_drop", NN, sz);
    t.read("dropout mask", NN, w.sz.mask);
    t.write("dP", NN, sz);
  }
  // 3. dS = P ∘ (dP − rowsum(P ∘ dP)), row by row.
  t.read("P", passes * NN, sz);
  t.read("dP", passes * NN, sz);
  t.write("dS", NN, sz);
  // 4. dQ = dS K.
  if (so.tiled_gemm) {
    gemm_rows_resident(w, t, "dS", 0, "K", d, "dQ", /*out_tiles=*/false, d);
  } else {
    t.read("dS", NN, sz);
    t.read("K", Nk * d, sz);
    t.write("dQ", Nq * d, sz);
  }
  // 5. dK = dSᵀ Q.
  if (so.tiled_gemm) {
    gemm_cols_resident(w, t, "dS", "Q", "dK");
  } else {
    t.read("dS", NN, sz);
    t.read("Q", Nq * d, sz);
    t.write("dK", Nk * d, sz);
  }
  const double nn = static_cast<double>(NN);
  p.matmul_flops = 4 * 2 * nn * static_cast<double>(d);
  p.flops = p.matmul_flops + kSoftmaxBackward * nn + (so.dropout ? kMaskOrDropout * nn : 0);
}

// ---- flash ----

// FlashAttention Algorithm 1: outer loop over K/V blocks, inner over Q blocks.
void flash1_forward(const Walk& w, bool count_init, PassIo& p) {
  const int64_t d = w.dims.d;
  Traffic& t = p.traffic;
  if (count_init) {  // line 2: O = 0, ℓ = 0, m = −∞ in HBM
    t.write("O", w.dims.Nq * d, w.sz.data);
    t.write("l", w.dims.Nq, w.sz.stat);
    t.write("m", w.dims.Nq, w.sz.stat);
  }
  std::vector<bool> visited(static_cast<size_t>(w.Tr), false);
  for (int64_t j = 0; j < w.Tc; ++j) {
    const int64_t c = w.cols(j);
    bool loaded = false;
    for (int64_t i = 0; i < w.Tr; ++i) {
      if (!w.active(i, j)) continue;
      if (!loaded) {  // line 6, skipped when every Q block is masked for this K/V block
        t.read("K", c * d, w.sz.data);
        t.read("V", c * d, w.sz.data);
        loaded = true;
      }
      const int64_t r = w.rows(i);
      t.read("Q", r * d, w.sz.data);  // line 8
      if (count_init || visited[static_cast<size_t>(i)]) {
        t.read("O", r * d, w.sz.data);
        t.read("l", r, w.sz.stat);
        t.read("m", r, w.sz.stat);
      }
      visited[static_cast<size_t>(i)] = true;
      t.write("O", r * d, w.sz.data);  // lines 12-13
      t.write("l", r, w.sz.stat);
      t.write("m", r, w.sz.stat);
      const double rc = static_cast<double>(r * c);
      p.matmul_flops += 2 * 2 * rc * static_cast<double>(d);
      p.flops += 2 * 2 * rc * static_cast<double>(d) + kSoftmaxForward * rc;
    }
  }
  if (!count_init) {  // fully masked rows still get their output written once
    for (int64_t i = 0; i < w.Tr; ++i) {
      if (visited[static_cast<size_t>(i)]) continue;
      t.write("O", w.rows(i) * d, w.sz.data);
      t.write("l", w.rows(i), w.sz.stat);
      t.write("m", w.rows(i), w.sz.stat);
    }
  }
}

// FlashAttention Algorithm 4 without dropout (= Algorithm 2's loop): outer over K/V blocks.
void flash1_backward(const Walk& w, bool count_init, PassIo& p) {
  const int64_t d = w.dims.d;
  Traffic& t = p.traffic;
  if (count_init) {  // dQ = dK = dV = 0 in HBM
    t.write("dQ", w.dims.Nq * d, w.sz.data);
    t.write("dK", w.dims.Nk * d, w.sz.data);
    t.write("dV", w.dims.Nk * d, w.sz.data);
  }
  std::vector<bool> visited(static_cast<size_t>(w.Tr), false);
  for (int64_t j = 0; j < w.Tc; ++j) {
    const int64_t c = w.cols(j);
    bool loaded = false;
    for (int64_t i = 0; i < w.Tr; ++i) {
      if (!w.active(i, j)) continue;
      if (!loaded) {
        t.read("K", c * d, w.sz.data);
        t.read("V", c * d, w.sz.data);
        loaded = true;
      }
      const int64_t r = w.rows(i);
      t.read("Q", r * d, w.sz.data);
      t.read("O", r * d, w.sz.data);
      t.read("dO", r * d, w.sz.data);
      if (count_init || visited[static_cast<size_t>(i)]) t.read("dQ", r * d, w.sz.data);
      visited[static_cast<size_t>(i)] = true;
      t.read("l", r, w.sz.stat);
      t.read("m", r, w.sz.stat);
      t.write("dQ", r * d, w.sz.data);
      const double rc = static_cast<double>(r * c);
      const double mm = 5 * 2 * rc * static_cast<double>(d);
      p.matmul_flops += mm;
      // D_i = rowsum(dO_i ∘ O_i) is recomputed for every block pair in Algorithm 4.
      p.flops += mm + kFlashBackwardElementwise * rc + 2 * static_cast<double>(r * d);
    }
    t.write("dK", c * d, w.sz.data);  // written whether or not a Q block reached them (zeros)
    t.write("dV", c * d, w.sz.data);
  }
  if (!count_init) {
    for (int64_t i = 0; i < w.Tr; ++i) {
      if (!visited[static_cast<size_t>(i)]) t.write("dQ", w.rows(i) * d, w.sz.data);
    }
  }
}

// FlashAttention-2 forward: outer loop over Q blocks, O_i and L_i written once.
void flash2_forward(const Walk& w, PassIo& p) {
  const int64_t d = w.dims.d;
  Traffic& t = p.traffic;
  for (int64_t i = 0; i < w.Tr; ++i) {
    const int64_t r = w.rows(i);
    bool loaded = false;
    for (int64_t j = 0; j < w.Tc; ++j) {
      if (!w.active(i, j)) continue;
      if (!loaded) {
        t.read("Q", r * d, w.sz.data);
        loaded = true;
      }
      const int64_t c = w.cols(j);
      t.read("K", c * d, w.sz.data);
      t.read("V", c * d, w.sz.data);
      const double rc = static_cast<double>(r * c);
      p.matmul_flops += 2 * 2 * rc * static_cast<double>(d);
      p.flops += 2 * 2 * rc * static_cast<double>(d) + kSoftmaxForward * rc;
    }
    t.write("O", r * d, w.sz.data);
    t.write("L", r, w.sz.stat);
  }
}

// FlashAttention-2 backward: D = rowsum(dO∘O) first, then outer over K/V blocks; dQ accumulates
// in slow memory.
void flash2_backward(const Walk& w, bool count_init, PassIo& p) {
  const int64_t d = w.dims.d, Nq = w.dims.Nq;
  Traffic& t = p.traffic;
  t.read("O", Nq * d, w.sz.data);
  t.read("dO", Nq * d, w.sz.data);
  t.write("D", Nq, w.sz.stat);
  p.flops += 2 * static_cast<double>(Nq * d);
  if (count_init) t.write("dQ", Nq * d, w.sz.data);
  std::vector<bool> visited(static_cast<size_t>(w.Tr), false);
  for (int64_t j = 0; j < w.Tc; ++j) {
    const int64_t c = w.cols(j);
    bool loaded = false;
    for (int64_t i = 0; i < w.Tr; ++i) {
      if (!w.active(i, j)) continue;
      if (!loaded) {
        t.read("K", c * d, w.sz.data);
        t.read("V", c * d, w.sz.data);
        loaded = true;
      }
      const int64_t r = w.rows(i);
      t.read("Q", r * d, w.sz.data);
      t.read("dO", r * d, w.sz.data);
      if (count_init || visited[static_cast<size_t>(i)]) t.read("dQ", r * d, w.sz.data);
      visited[static_cast<size_t>(i)] = true;
      t.read("L", r, w.sz.stat);
      t.read("D", r, w.sz.stat);
      t.write("dQ", r * d, w.sz.data);
      const double rc = static_cast<double>(r * c);
      const double mm = 5 * 2 * rc * static_cast<double>(d);
      p.matmul_flops += mm;
      p.flops += mm + kFlashBackwardElementwise * rc;
    }
    t.write("dK", c * d, w.sz.data);
    t.write("dV", c * d, w.sz.data);
  }
  if (!count_init) {
    for (int64_t i = 0; i < w.Tr; ++i) {
      if (!visited[static_cast<size_t>(i)]) t.write("dQ", w.rows(i) * d, w.sz.data);
    }
  }
}

}  // namespace

Blocks algorithm1_blocks(int64_t M, int64_t d) {
  TG_CHECK(M >= 1 && d >= 1, "attention IO model: M and d must be >= 1, got M=", M, " d=", d);
  const int64_t b = ceil_div(M, 4 * d);
  return {std::min(b, d), b};
}

Blocks flash2_blocks(int64_t M, int64_t d) {
  const Blocks a = algorithm1_blocks(M, d);
  return {a.Bc, a.Br};
}

std::string_view algo_name(AttentionAlgo a) {
  switch (a) {
    case AttentionAlgo::standard:
      return "standard";
    case AttentionAlgo::flash1:
      return "flash1";
    case AttentionAlgo::flash2:
      return "flash2";
  }
  return "?";
}

AttentionAlgo parse_algo(std::string_view name) {
  if (name == "standard") return AttentionAlgo::standard;
  if (name == "flash1" || name == "flash") return AttentionAlgo::flash1;
  if (name == "flash2") return AttentionAlgo::flash2;
  throw Error(detail::cat("attention IO model: unknown algorithm '", name,
                          "'; expected standard, flash1 or flash2"));
}

bool block_active(const AttentionDims& dims, const Blocks& blocks, int64_t i, int64_t j) {
  if (!dims.causal) return true;
  const int64_t last_row = i * blocks.Br + block_len(dims.Nq, blocks.Br, i) - 1;
  const int64_t first_key = j * blocks.Bc;
  return first_key <= last_row + (dims.Nk - dims.Nq);
}

void Traffic::read(std::string_view name, int64_t elements, int64_t elem_bytes) {
  if (elements == 0) return;
  for (TensorTraffic& t : tensors) {
    if (t.name == name) {
      TG_ASSERT(t.elem_bytes == elem_bytes, "tensor ", name, " with two element sizes");
      t.reads += elements;
      return;
    }
  }
  tensors.push_back({std::string(name), elem_bytes, elements, 0});
}

void Traffic::write(std::string_view name, int64_t elements, int64_t elem_bytes) {
  if (elements == 0) return;
  for (TensorTraffic& t : tensors) {
    if (t.name == name) {
      TG_ASSERT(t.elem_bytes == elem_bytes, "tensor ", name, " with two element sizes");
      t.writes += elements;
      return;
    }
  }
  tensors.push_back({std::string(name), elem_bytes, 0, elements});
}

void Traffic::scale(int64_t factor) {
  for (TensorTraffic& t : tensors) {
    t.reads *= factor;
    t.writes *= factor;
  }
}

int64_t Traffic::reads() const {
  int64_t n = 0;
  for (const TensorTraffic& t : tensors) n += t.reads;
  return n;
}

int64_t Traffic::writes() const {
  int64_t n = 0;
  for (const TensorTraffic& t : tensors) n += t.writes;
  return n;
}

int64_t Traffic::elements() const {
  return reads() + writes();
}

int64_t Traffic::bytes() const {
  int64_t n = 0;
  for (const TensorTraffic& t : tensors) n += t.bytes();
  return n;
}

const TensorTraffic* Traffic::find(std::string_view name) const {
  for (const TensorTraffic& t : tensors) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

AttentionIo attention_io(AttentionAlgo algo, const AttentionDims& dims, const IoOptions& options) {
  validate(dims, options);
  AttentionIo r;
  r.algo = algo;
  r.dims = dims;
  // The resident operand's block is the large one (see IoOptions).
  const Blocks kv_resident =
      options.blocks ? *options.blocks : algorithm1_blocks(options.M, dims.d);
  const Blocks q_resident = options.blocks ? *options.blocks : flash2_blocks(options.M, dims.d);
  if (algo == AttentionAlgo::standard) {
    // Untiled, one block covers everything; the standard algorithm computes every block whatever
    // the mask.
    const Blocks blk = options.standard.tiled_gemm ? kv_resident : Blocks{dims.Nq, dims.Nk};
    const Walk w = make_walk(dims, blk, options.sizes);
    r.softmax_passes = dims.Nk <= options.M ? 1 : 2;
    record_blocks(w, true, r.forward);
    record_blocks(w, true, r.backward);
    standard_forward(w, options.standard, r.softmax_passes, r.forward);
    standard_backward(w, options.standard, r.softmax_passes, r.backward);
  } else if (algo == AttentionAlgo::flash1) {
    const Walk w = make_walk(dims, kv_resident, options.sizes);
    record_blocks(w, false, r.forward);
    record_blocks(w, false, r.backward);
    flash1_forward(w, options.count_init, r.forward);
    flash1_backward(w, options.count_init, r.backward);
  } else {
    const Walk fw = make_walk(dims, q_resident, options.sizes);
    const Walk bw = make_walk(dims, kv_resident, options.sizes);
    record_blocks(fw, false, r.forward);
    record_blocks(bw, false, r.backward);
    flash2_forward(fw, r.forward);
    flash2_backward(bw, options.count_init, r.backward);
  }
  const int64_t heads = dims.B * dims.H;
  for (PassIo* p : {&r.forward, &r.backward}) {
    p->traffic.scale(heads);
    p->flops *= static_cast<double>(heads);
    p->matmul_flops *= static_cast<double>(heads);
  }
  return r;
}

}  // namespace tilegrad::analysis
