// attention: argument errors; gradients (output and logsumexp) against finite differences for both
// implementations under every mask; rows without visible keys; the dropout mask measured on the
// output (drop fraction, positions, scaling) and its Generator bookkeeping; non-contiguous inputs;
// float64 and float16 agreement with the reference; flash tile sizes from M and odd tiles; the
// backward's reproducibility; cost and saved bytes. The accuracy criterion on the shapes is
// in attention_criterion_test.cpp, memory in attention_memory_test.cpp.
#include <cmath>
#include <limits>

#include "ops/attention_harness.h"

namespace tgtest {
namespace {

constexpr AttentionImpl kImpls[] = {AttentionImpl::standard, AttentionImpl::flash};

const char* impl_name(AttentionImpl impl) {
  return impl == AttentionImpl::flash ? "flash" : "standard";
}

// A block layout from 0/1 entries.
Tensor layout_of(const std::vector<int64_t>& bits, const Shape& shape) {
  return from_vector(bits, shape, {DType::u8});
}

Tensor leaf(const Shape& shape, uint64_t seed) {
  return rnd(shape, seed, DType::f64, -1.5, 1.5).set_requires_grad(true);
}

// ---------------------------------------------------------------------------------------------
// Errors

TEST(Attention, BadInputsNameTheOpAndTheValues) {
  const Tensor q = rnd({2, 4, 5, 8}, 1), k = rnd({2, 2, 7, 8}, 2);
  const auto err = [](auto f) { return error_of(f); };
  EXPECT_NE(err([&] {
              attention(q, rnd({2, 3, 7, 8}, 3), rnd({2, 3, 7, 8}, 3));
            }).find("attention: k and v have Hkv=3 heads, which must divide the H=4 query heads"),
            std::string::npos);
  EXPECT_NE(err([&] {
              attention(q, rnd({2, 2, 7, 6}, 3), rnd({2, 2, 7, 6}, 3));
            })
                .find("attention: head dims differ: q [2, 4, 5, 8] has D=8, k and v [2, 2, 7, 6] "
                      "have D=6"),
            std::string::npos);
  EXPECT_NE(err([&] {
              attention(q, rnd({3, 2, 7, 8}, 3), rnd({3, 2, 7, 8}, 3));
            }).find("attention: batch sizes differ"),
            std::string::npos);
  EXPECT_NE(err([&] {
              attention(q, k, rnd({2, 2, 6, 8}, 3));
            })
                .find("attention: k and v must have the same shape [B, Hkv, Nk, D], got k [2, 2, "
                      "7, 8] and v [2, 2, 6, 8]"),
            std::string::npos);
  EXPECT_NE(err([&] {
              attention(rnd({4, 5, 8}, 1), k, k);
            }).find("attention: q must be [B, H, Nq, D]"),
            std::string::npos);
  EXPECT_NE(err([&] {
              attention(rnd({1, 1, 3, 257}, 1), rnd({1, 1, 3, 257}, 2), rnd({1, 1, 3, 257}, 3));
            }).find("attention: head dim D=257 is not supported (1 <= D <= 256)"),
            std::string::npos);
  EXPECT_NE(err([&] {
              attention(q, k.to(DType::f32), k.to(DType::f32));
            }).find("attention: dtypes differ"),
            std::string::npos);

  AttentionOptions o;
  o.block_layout = zeros({2, 2}, {DType::u8});
  o.layout_block_q = 4;
  o.layout_block_k = 4;
  EXPECT_EQ(err([&] { attention(q, k, k, o); }), "") << "valid: 5 and 7 rows in blocks of 4";
  o.block_layout = zeros({2, 3}, {DType::u8});
  EXPECT_NE(err([&] { attention(q, k, k, o); })
                .find("attention: block layout has shape [2, 3], expected [ceil(Nq/4), "
                      "ceil(Nk/4)] = [2, 2] for Nq=5, Nk=7"),
            std::string::npos);
  o.block_layout = zeros({2, 2}, {DType::f32});
  EXPECT_NE(err([&] {
              attention(q, k, k, o);
            }).find("attention: block layout must be u8 (bool), int32 or int64, got float32"),
            std::string::npos);
  o.block_layout = zeros({2, 2}, {DType::u8});
  o.layout_block_k = 0;
  EXPECT_NE(err([&] { attention(q, k, k, o); }).find("layout_block_k=0"), std::string::npos);

  AttentionOptions w;
  w.window_left = -2;
  EXPECT_NE(err([&] { attention(q, k, k, w); }).find("left=-2"), std::string::npos);
  AttentionOptions d;
  d.dropout_p = 1.5;
  EXPECT_NE(err([&] {
              attention(q, k, k, d);
            }).find("attention: dropout probability must be in [0, 1], got 1.5"),
            std::string::npos);
  AttentionOptions f;
  f.fast_memory = 0;
  EXPECT_NE(err([&] { attention(q, k, k, f); }).find("fast_memory=0"), std::string::npos);
}

TEST(Attention, ForwardModeIsAnErrorNotAWrongAnswer) {
  const Tensor q = rnd({1, 1, 3, 4}, 1), k = rnd({1, 1, 3, 4}, 2);
  const std::string e = error_of([&] {
    jvp([&](const Tensor& x) { return attention(x, k, k).out; }, q, rnd({1, 1, 3, 4}, 3));
  });
  EXPECT_NE(e.find("attention: forward-mode AD"), std::string::npos) << e;
}

// ---------------------------------------------------------------------------------------------
// Gradients against finite differences (float64, tiny shapes), output and logsumexp together

struct GradCase {
  const char* name;
  int64_t H, Hkv, Nq, Nk, D;
  bool causal = false;
  int64_t left = -1, right = -1;
  double p = 0.0;
  bool layout = false;
};

TEST(Attention, GradientsMatchFiniteDifferences) {
  const GradCase cases[] = {
      {"plain", 2, 2, 3, 5, 4},
      {"causal Nq < Nk", 1, 1, 3, 5, 3, true},
      {"window (1, 1)", 1, 1, 5, 4, 3, false, 1, 1},
      {"GQA 4:2 causal window left 2", 4, 2, 4, 4, 2, true, 2},
      {"MQA 3:1", 3, 1, 2, 3, 5},
      {"dropout 0.3", 2, 1, 3, 4, 3, false, -1, -1, 0.3},
      {"block layout", 1, 1, 5, 6, 3, false, -1, -1, 0.0, true},
  };
  for (const GradCase& c : cases) {
    for (AttentionImpl impl : kImpls) {
      SCOPED_TRACE(std::string(c.name) + " " + impl_name(impl));
      AttentionOptions o;
      o.impl = impl;
      o.causal = c.causal;
      o.window_left = c.left;
      o.window_right = c.right;
      o.dropout_p = c.p;
      o.dropout_seed = 77;
      o.dropout_offset = 8;
      if (c.layout) {  // blocks of 2 x 2; every row keeps at least one visible block
        o.block_layout = layout_of({1, 0, 1, 0, 1, 1, 1, 0, 0}, {3, 3});
        o.layout_block_q = 2;
        o.layout_block_k = 2;
      }
      o.block_r = 2;  // several tiles in both directions, with partial edges
      o.block_c = 3;
      const Tensor q = leaf({1, c.H, c.Nq, c.D}, 11), k = leaf({1, c.Hkv, c.Nk, c.D}, 12);
      const Tensor v = leaf({1, c.Hkv, c.Nk, c.D}, 13);
      expect_gradcheck(
          [&](const std::vector<Tensor>& x) {
            const AttentionResult r = attention(x[0], x[1], x[2], o);
            return std::vector<Tensor>{r.out, r.lse};
          },
          {q, k, v});
    }
  }
}

TEST(Attention, GradientsMatchTheReferenceWithAnUpstreamLogsumexpGradient) {
  // A loss reading both outputs: dS gains glse · P, which both backwards fold into Dvec.
  const Tensor q = randn_rounded({2, 4, 37, 16}, 1, DType::f64);
  const Tensor k = randn_rounded({2, 2, 45, 16}, 2, DType::f64);
  const Tensor v = randn_rounded({2, 2, 45, 16}, 3, DType::f64);
  const Tensor dout = randn_rounded({2, 4, 37, 16}, 4, DType::f64);
  const Tensor glse = randn_rounded({2, 4, 37}, 5, DType::f64);
  AttentionOptions o;
  o.causal = true;
  o.dropout_p = 0.2;
  o.dropout_seed = 3;
  const RefResult ref = run_reference(q, k, v, o, dout, glse);
  for (AttentionImpl impl : kImpls) {
    SCOPED_TRACE(impl_name(impl));
    o.impl = impl;
    o.block_r = 8;
    o.block_c = 16;
    const AttnRun r = run_attention(q, k, v, DType::f64, o, dout, glse);
    EXPECT_LE(max_err(r.out, ref.out), 1e-13);
    EXPECT_LE(max_err(r.lse, ref.lse), 1e-13);
    EXPECT_LE(max_err(r.dq, ref.dq), 1e-12);
    EXPECT_LE(max_err(r.dk, ref.dk), 1e-12);
    EXPECT_LE(max_err(r.dv, ref.dv), 1e-12);
  }
}

// ---------------------------------------------------------------------------------------------
// Rows that see no key

TEST(Attention, RowsWithoutVisibleKeysGiveZeroOutputMinusInfLseAndNoGradient) {
  // Causal with Nq = 7 > Nk = 4, bottom-right aligned: query i sees keys j <= i - 3, so rows 0-2
  // see nothing. A layout whose first block row is all zero blanks rows 0-1 on its own too.
  struct Setup {
    const char* name;
    AttentionOptions o;
    int64_t empty_rows;
  };
  std::vector<Setup> setups(2);
  setups[0].name = "causal Nq > Nk";
  setups[0].o.causal = true;
  setups[0].empty_rows = 3;
  setups[1].name = "layout with an empty block row";
  setups[1].o.block_layout = layout_of({0, 0, 1, 1, 1, 0, 1, 1}, {4, 2});
  setups[1].o.layout_block_q = 2;
  setups[1].o.layout_block_k = 2;
  setups[1].empty_rows = 2;
  for (Setup& s : setups) {
    for (AttentionImpl impl : kImpls) {
      SCOPED_TRACE(std::string(s.name) + " " + impl_name(impl));
      s.o.impl = impl;
      s.o.block_r = 2;
      s.o.block_c = 3;
      const Tensor q = leaf({1, 2, 7, 3}, 21), k = leaf({1, 1, 4, 3}, 22),
                   v = leaf({1, 1, 4, 3}, 23);
      const AttentionResult r = attention(q, k, v, s.o);
      const auto out = r.out.to_vector<double>(), lse = r.lse.to_vector<double>();
      for (int64_t h = 0; h < 2; ++h) {
        for (int64_t i = 0; i < 7; ++i) {
          const bool empty = i < s.empty_rows;
          EXPECT_EQ(std::isinf(lse[h * 7 + i]) && lse[h * 7 + i] < 0, empty) << "row " << i;
          for (int64_t d = 0; d < 3 && empty; ++d) EXPECT_EQ(out[(h * 7 + i) * 3 + d], 0.0);
        }
      }
      // Weight the output with a random cotangent; the empty rows' gradient must be exactly 0.
      sum(mul(r.out, rnd({1, 2, 7, 3}, 24))).backward();
      const auto dq = q.grad().to_vector<double>();
      for (int64_t h = 0; h < 2; ++h) {
        for (int64_t i = 0; i < s.empty_rows; ++i) {
          for (int64_t d = 0; d < 3; ++d) EXPECT_EQ(dq[(h * 7 + i) * 3 + d], 0.0);
        }
      }
      for (double g : k.grad().to_vector<double>()) EXPECT_TRUE(std::isfinite(g));
      for (double g : v.grad().to_vector<double>()) EXPECT_TRUE(std::isfinite(g));
      // And the rest of the gradient is right: finite differences on the output.
      expect_gradcheck(
          [&](const std::vector<Tensor>& x) { return attention(x[0], x[1], x[2], s.o).out; },
          {q, k, v});
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Dropout

TEST(Attention, DropoutMaskMeasuredOnTheOutputHasFractionPAndThePhiloxPositions) {
  // With V = I (Nk = D), row i of the output is row i of the dropped probability matrix, so the
  // mask and the scaling can be read off the op's own output.
  const int64_t B = 2, H = 4, Nq = 256, Nk = 128;
  const Tensor q = randn_rounded({B, H, Nq, Nk}, 31, DType::f32);
  const Tensor k = randn_rounded({B, 1, Nk, Nk}, 32, DType::f32);
  std::vector<double> eye(static_cast<size_t>(Nk * Nk), 0.0);
  for (int64_t j = 0; j < Nk; ++j) eye[static_cast<size_t>(j * Nk + j)] = 1.0;
  const Tensor v = from_vector(eye, {1, 1, Nk, Nk}, {DType::f32}).expand({B, 1, Nk, Nk});
  AttentionOptions o;
  o.dropout_p = 0.17;
  o.dropout_seed = 2026;
  o.dropout_offset = 12;
  const RefProblem pr = ref_problem(q, k, o);
  AttentionOptions undropped = o;
  undropped.dropout_p = 0.0;
  for (AttentionImpl impl : kImpls) {
    SCOPED_TRACE(impl_name(impl));
    o.impl = impl;
    undropped.impl = impl;
    const auto pd = attention(q.to(DType::f32), k.to(DType::f32), v, o).out.to_vector<double>();
    const auto p =
        attention(q.to(DType::f32), k.to(DType::f32), v, undropped).out.to_vector<double>();
    int64_t dropped = 0, mismatched = 0, misscaled = 0;
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t h = 0; h < H; ++h) {
        for (int64_t i = 0; i < Nq; ++i) {
          for (int64_t j = 0; j < Nk; ++j) {
            const size_t e = static_cast<size_t>(((b * H + h) * Nq + i) * Nk + j);
            const bool kept = pd[e] != 0.0;
            dropped += kept ? 0 : 1;
            mismatched += kept != ref_kept(pr, b, h, i, j) ? 1 : 0;
            if (kept && std::abs(pd[e] - p[e] / 0.83) > 1e-6 * p[e]) ++misscaled;
          }
        }
      }
    }
    const double fraction = static_cast<double>(dropped) / static_cast<double>(B * H * Nq * Nk);
    EXPECT_NEAR(fraction, 0.17, 0.01);
    EXPECT_EQ(mismatched, 0) << "the mask is not the documented Philox positions";
    EXPECT_EQ(misscaled, 0) << "kept values are not P / (1 - p)";
  }
}

TEST(Attention, GeneratorReservesBHNqNkDrawsAndMatchesTheExplicitPosition) {
  const Tensor q = rnd({2, 3, 5, 4}, 41), k = rnd({2, 3, 7, 4}, 42), v = rnd({2, 3, 7, 4}, 43);
  Generator gen(99, 8);
  AttentionOptions o;
  o.dropout_p = 0.5;
  const Tensor first = attention(q, k, v, o, gen).out;
  EXPECT_EQ(gen.offset(), 8u + 2 * 3 * 5 * 7 + 2);  // 210 draws, rounded up to a Philox block
  AttentionOptions at = o;
  at.dropout_seed = 99;
  at.dropout_offset = 8;
  EXPECT_EQ(max_abs_diff(first, attention(q, k, v, at).out), 0.0);
  const Tensor second = attention(q, k, v, o, gen).out;  // the next draws: another mask
  EXPECT_GT(max_abs_diff(first, second), 0.0);
  o.dropout_p = 0.0;
  const uint64_t before = gen.offset();
  attention(q, k, v, o, gen);
  EXPECT_EQ(gen.offset(), before) << "p = 0 draws nothing";
}

// ---------------------------------------------------------------------------------------------
// Layouts, dtypes, tiles

TEST(Attention, ProjectionLayoutViewsAreReadInPlaceAndGiveTheSameResult) {
  // q as a [B, N, H, D] buffer viewed as [B, H, N, D] (the usual projection output): its D axis is
  // contiguous, so the op reads it without a copy; k as a fully transposed view needs the copy.
  const Tensor base = rnd({2, 9, 4, 8}, 51);
  const Tensor q = base.permute({0, 2, 1, 3}).detach().set_requires_grad(true);
  ASSERT_FALSE(q.is_contiguous());
  const Tensor k = noncontiguous(rnd({2, 2, 11, 8}, 52)).set_requires_grad(true);
  const Tensor v = rnd({2, 2, 11, 8}, 53).set_requires_grad(true);
  const Tensor dout = rnd({2, 4, 9, 8}, 54);
  for (AttentionImpl impl : kImpls) {
    SCOPED_TRACE(impl_name(impl));
    AttentionOptions o;
    o.impl = impl;
    o.causal = true;
    for (const Tensor& t : {q, k, v}) t.set_grad(Tensor());
    attention(q, k, v, o).out.backward(dout);
    const RefResult ref = run_reference(q.contiguous(), k.contiguous(), v, o, dout);
    EXPECT_LE(max_err(attention(q, k, v, o).out.to_vector<double>(), ref.out), 1e-13);
    EXPECT_LE(max_err(q.grad().to_vector<double>(), ref.dq), 1e-12);
    EXPECT_LE(max_err(k.grad().to_vector<double>(), ref.dk), 1e-12);
    EXPECT_LE(max_err(v.grad().to_vector<double>(), ref.dv), 1e-12);
  }
}

// A transformer layer's use: q, k, v split from one fused [B, N, 3C] projection, the output merged
// back to [B, N, C]. Values and gradients equal those of contiguous copies of q, k and v. Where the
// backend writes strided outputs (the CUDA flash kernels) the output is already in [B, N, H, D]
// order and the projection's gradient is one buffer that the split passes on without a copy.
TEST(Attention, PackedProjectionGivesTheContiguousResultsWithoutCopies) {
  const int64_t B = 2, N = 33, H = 3, D = 64, C = H * D;
  for (DType dt : {DType::f64, DType::bf16}) {
    SCOPED_TRACE(dtype_name(dt));
    const Tensor qkv = rnd({B, N, 3 * C}, 61).to(dt).set_requires_grad(true);
    const Tensor dout = rnd({B, N, C}, 62).to(dt);
    AttentionOptions o;
    o.causal = true;
    auto heads = [&](const Tensor& t) { return t.reshape({B, N, H, D}).transpose(1, 2); };
    const auto parts = split(qkv, {C, C, C}, 2);
    const Tensor y = attention(heads(parts[0]), heads(parts[1]), heads(parts[2]), o).out;
    const Tensor yt = y.transpose(1, 2);
    reshape(yt.contiguous(), {B, N, C}).backward(dout);

    // The same on contiguous [B, H, N, D] copies.
    const Tensor flat = qkv.detach().set_requires_grad(true);
    const auto cparts = split(flat, {C, C, C}, 2);
    const Tensor yc = attention(heads(cparts[0]).contiguous(), heads(cparts[1]).contiguous(),
                                heads(cparts[2]).contiguous(), o)
                          .out;
    reshape(yc.transpose(1, 2).contiguous(), {B, N, C}).backward(dout);
    const double tol = dt == DType::f64 ? 1e-13 : 2e-2;
    EXPECT_LE(max_abs_diff(y, yc), tol);
    EXPECT_LE(max_abs_diff(qkv.grad(), flat.grad()), tol);
    if (qkv.device().type == DeviceType::cuda && dt == DType::bf16) {
      EXPECT_TRUE(yt.is_contiguous()) << "the output is in [B, N, H, D] order";
      const Tensor g = qkv.grad();
      EXPECT_TRUE(g.is_contiguous());
    }
  }
}

TEST(Attention, Float64AndFloat16AgreeWithTheReference) {
  const Tensor q = randn_rounded({1, 2, 70, 24}, 61, DType::f16);
  const Tensor k = randn_rounded({1, 2, 90, 24}, 62, DType::f16);
  const Tensor v = randn_rounded({1, 2, 90, 24}, 63, DType::f16);
  const Tensor dout = randn_rounded({1, 2, 70, 24}, 64, DType::f16);
  AttentionOptions o;
  o.window_left = 20;
  o.window_right = 5;
  const RefResult ref = run_reference(q, k, v, o, dout);
  for (AttentionImpl impl : kImpls) {
    SCOPED_TRACE(impl_name(impl));
    o.impl = impl;
    const AttnRun r64 = run_attention(q, k, v, DType::f64, o, dout);
    EXPECT_LE(max_err(r64.out, ref.out), 1e-13);
    EXPECT_LE(max_err(r64.dk, ref.dk), 1e-12);
    const AttnRun r16 = run_attention(q, k, v, DType::f16, o, dout);
    // float16 rounds the output (and, standard, S and P) to 11 bits.
    EXPECT_LE(max_err(r16.out, ref.out), 2e-2 * (1 + max_abs(ref.out)));
    EXPECT_LE(max_err(r16.dq, ref.dq), 2e-2 * (1 + max_abs(ref.dq)));
  }
}

TEST(Attention, FlashBlocksComeFromTheFastMemorySize) {
  EXPECT_EQ(flash_blocks(65536, 64).c, 256);  // ceil(65536 / 256)
  EXPECT_EQ(flash_blocks(65536, 64).r, 64);   // min(256, D)
  EXPECT_EQ(flash_blocks(65536, 256).c, 64);
  EXPECT_EQ(flash_blocks(65536, 256).r, 64);
  EXPECT_EQ(flash_blocks(65536, 59).c, 278);  // ceil(65536 / 236) = 277.7 -> 278
  EXPECT_EQ(flash_blocks(65536, 59).r, 59);
  EXPECT_EQ(flash_blocks(100, 32).c, 1);
  EXPECT_EQ(flash_blocks(100, 32).r, 1);
}

TEST(Attention, AnyFlashTileSizeGivesTheSameResult) {
  const Tensor q = randn_rounded({1, 2, 45, 20}, 71, DType::f64);
  const Tensor k = randn_rounded({1, 1, 53, 20}, 72, DType::f64);
  const Tensor v = randn_rounded({1, 1, 53, 20}, 73, DType::f64);
  const Tensor dout = randn_rounded({1, 2, 45, 20}, 74, DType::f64);
  AttentionOptions o;
  o.causal = true;
  o.window_left = 17;
  o.dropout_p = 0.1;
  const RefResult ref = run_reference(q, k, v, o, dout);
  const std::pair<int64_t, int64_t> tiles[] = {{1, 1}, {7, 13}, {45, 53}, {64, 64}, {3, 200}};
  for (const auto& [r, c] : tiles) {
    SCOPED_TRACE("B_r " + std::to_string(r) + ", B_c " + std::to_string(c));
    o.block_r = r;
    o.block_c = c;
    const AttnRun run = run_attention(q, k, v, DType::f64, o, dout);
    EXPECT_LE(max_err(run.out, ref.out), 1e-13);
    EXPECT_LE(max_err(run.dq, ref.dq), 1e-12);
    EXPECT_LE(max_err(run.dk, ref.dk), 1e-12);
    EXPECT_LE(max_err(run.dv, ref.dv), 1e-12);
  }
  // A fast memory this small gives 1 x 1 tiles from the formula as well.
  o.block_r = o.block_c = 0;
  o.fast_memory = 8;
  EXPECT_LE(max_err(run_attention(q, k, v, DType::f64, o, dout).dq, ref.dq), 1e-12);
}

TEST(Attention, FlashBackwardIsReproducible) {
  // dq sums per-thread partials in thread order: the same thread count gives the same bits.
  const Tensor q = randn_rounded({2, 2, 300, 32}, 81, DType::f32);
  const Tensor k = randn_rounded({2, 2, 300, 32}, 82, DType::f32);
  const Tensor dout = randn_rounded({2, 2, 300, 32}, 83, DType::f32);
  AttentionOptions o;
  o.causal = true;
  const AttnRun a = run_attention(q, k, k, DType::f32, o, dout);
  const AttnRun b = run_attention(q, k, k, DType::f32, o, dout);
  EXPECT_EQ(a.dq, b.dq);
  EXPECT_EQ(a.dk, b.dk);
  EXPECT_EQ(a.dv, b.dv);
}

// ---------------------------------------------------------------------------------------------
// Cost and saved tensors

TEST(Attention, CostCountsTheVisiblePairs) {
  AttentionOptions o;
  const Shape q{2, 4, 100, 64}, k{2, 2, 100, 64};
  EXPECT_EQ(attention_visible_pairs(100, 100, o), 100 * 100);
  o.causal = true;
  EXPECT_EQ(attention_visible_pairs(100, 100, o), 100 * 101 / 2);
  EXPECT_EQ(attention_visible_pairs(3, 5, o), 3 + 4 + 5);  // bottom-right: row i sees i + 3 keys
  EXPECT_EQ(attention_visible_pairs(5, 3, o), 0 + 0 + 1 + 2 + 3);
  o.window_left = 1;
  EXPECT_EQ(attention_visible_pairs(100, 100, o), 1 + 99 * 2);
  AttentionOptions s;
  s.block_layout = layout_of({1, 0, 0, 1}, {2, 2});
  s.layout_block_q = 50;
  s.layout_block_k = 60;  // blocks [0, 60) and [60, 100) of keys
  EXPECT_EQ(attention_visible_pairs(100, 100, s), 50 * 60 + 50 * 40);

  const Cost flash = attention_cost(q, k, DType::f32, o);
  EXPECT_EQ(flash.flops, 4.0 * 2 * 4 * 64 * (1 + 99 * 2));
  // q and o [2, 4, 100, 64], k and v [2, 2, 100, 64] in float32, lse [2, 4, 100] in float32.
  EXPECT_EQ(flash.bytes, (2.0 * 2 * 4 * 100 * 64 + 2.0 * 2 * 2 * 100 * 64) * 4 + 2 * 4 * 100 * 4);
  o.impl = AttentionImpl::standard;
  EXPECT_EQ(attention_cost(q, k, DType::f32, o).bytes, flash.bytes + 4.0 * 2 * 4 * 100 * 100 * 4);

  // The node records the cost of its call.
  const Tensor x = rnd({1, 2, 30, 8}, 91).set_requires_grad(true);
  AttentionOptions c;
  c.causal = true;
  const AttentionResult r = attention(x, x, x, c);
  EXPECT_EQ(r.out.grad_fn()->cost.flops, 4.0 * 2 * 8 * (30 * 31 / 2));
  EXPECT_EQ(std::string(r.out.grad_fn()->name()), "attention");
  EXPECT_EQ(r.out.grad_fn(), r.lse.grad_fn());
}

TEST(Attention, FlashSavesOutputAndLseStandardSavesP) {
  const int64_t B = 2, H = 4, N = 96, D = 16;
  const Tensor q = rnd({B, H, N, D}, 92).set_requires_grad(true);
  const Tensor k = rnd({B, H, N, D}, 93).set_requires_grad(true);
  AttentionOptions o;
  const int64_t qkv = 3 * B * H * N * D * 8;
  const AttentionResult f = attention(q, k, k, o);
  EXPECT_EQ(f.out.grad_fn()->saved_bytes(), qkv + B * H * N * D * 8 + B * H * N * 8);
  o.impl = AttentionImpl::standard;
  const AttentionResult s = attention(q, k, k, o);
  EXPECT_EQ(s.out.grad_fn()->saved_bytes(), qkv + B * H * N * N * 8);
  EXPECT_EQ(f.lse.dtype(), DType::f64);
  EXPECT_EQ(attention(q.to(DType::bf16), k.to(DType::bf16), k.to(DType::bf16)).lse.dtype(),
            DType::f32);
}

}  // namespace
}  // namespace tgtest
