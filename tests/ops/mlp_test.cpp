// mlp (gelu(x · w1 + b1) · w2 + b2 as one op): values against a float64 loop with GELU written from
// its definition, gradients against finite differences and against the two linear layers it
// replaces (every subset of inputs wanting gradients), forward mode, low precision beside the
// composite, what it keeps for the backward (not the hidden activation), the GEMM's GELU-gradient
// epilogue on its own, the backend's one-pass GELU backward on its own and b1's gradient from its
// sums, the op without biases, and bad input.
#include <cmath>

#include "testing.h"

namespace tgtest {
namespace {

double gelu_ref(double s) {
  return 0.5 * s * (1 + std::tanh(std::sqrt(2 / M_PI) * (s + 0.044715 * s * s * s)));
}

// x [rows, K] (leading dimensions flattened) · w [K, N] + b, then GELU when `act`, in float64; an
// undefined b adds nothing.
std::vector<double> layer(const std::vector<double>& x, const Tensor& w, const Tensor& b,
                          bool act) {
  const int64_t K = w.size(0), N = w.size(1), rows = static_cast<int64_t>(x.size()) / K;
  const auto vw = w.to(DType::f64).contiguous().to_vector<double>();
  const auto vb = b.defined() ? b.to(DType::f64).contiguous().to_vector<double>()
                              : std::vector<double>(static_cast<size_t>(N), 0.0);
  std::vector<double> y(static_cast<size_t>(rows * N));
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = vb[j];
      for (int64_t k = 0; k < K; ++k) s += x[i * K + k] * vw[k * N + j];
      y[i * N + j] = act ? gelu_ref(s) : s;
    }
  return y;
}

std::vector<double> reference(const Tensor& x, const Tensor& w1, const Tensor& b1, const Tensor& w2,
                              const Tensor& b2) {
  return layer(layer(x.to(DType::f64).contiguous().to_vector<double>(), w1, b1, true), w2, b2,
               false);
}

Tensor composite(const std::vector<Tensor>& in) {
  return linear(linear(in[0], in[1], in[2], Activation::gelu), in[3], in[4]);
}

Tensor fused(const std::vector<Tensor>& in) {
  return mlp(in[0], in[1], in[2], in[3], in[4]);
}

std::vector<Tensor> inputs(const Shape& sx, int64_t M, int64_t N, uint64_t seed, DType dt) {
  const int64_t K = sx.back();
  return {rnd(sx, seed, DType::f64, -2, 2).to(dt), rnd({K, M}, seed + 1).to(dt),
          rnd({M}, seed + 2).to(dt), rnd({M, N}, seed + 3, DType::f64, -0.5, 0.5).to(dt),
          rnd({N}, seed + 4).to(dt)};
}

TEST(Mlp, ValuesOnOddShapes) {
  const std::vector<std::tuple<Shape, int64_t, int64_t>> cases = {
      {{1, 1}, 1, 1}, {{3, 5}, 7, 2}, {{2, 3, 4}, 9, 5}, {{17, 13}, 1, 3}, {{5}, 3, 8}};
  for (const auto& [sx, M, N] : cases) {
    const auto in = inputs(sx, M, N, 1, DType::f64);
    const Tensor y = fused(in);
    Shape expect = sx;
    expect.back() = N;
    ASSERT_EQ(y.shape(), expect);
    const auto ref = reference(in[0], in[1], in[2], in[3], in[4]), got = y.to_vector<double>();
    for (size_t i = 0; i < got.size(); ++i)
      ASSERT_NEAR(got[i], ref[i], 1e-13 * (1 + std::abs(ref[i]))) << shape_str(sx) << " at " << i;
  }
  // Transposed weights (views), a non-contiguous x and a strided bias.
  const auto in = inputs({6, 5}, 7, 4, 9, DType::f64);
  const Tensor w1t = in[1].t().contiguous().t(), w2t = in[3].t().contiguous().t();
  const auto got =
      mlp(noncontiguous(in[0]), w1t, noncontiguous(in[2]), w2t, in[4]).to_vector<double>();
  const auto ref = reference(in[0], in[1], in[2], in[3], in[4]);
  for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], ref[i], 1e-13) << i;
}

TEST(Mlp, GradientsMatchFiniteDifferences) {
  const std::vector<std::tuple<Shape, int64_t, int64_t>> cases = {
      {{3, 4}, 5, 2}, {{1, 3}, 1, 1}, {{2, 3, 4}, 6, 3}};
  for (const auto& [sx, M, N] : cases) {
    SCOPED_TRACE(shape_str(sx));
    std::vector<Tensor> in = inputs(sx, M, N, 11, DType::f64);
    for (Tensor& t : in) t.set_requires_grad(true);
    expect_gradcheck(fused, in);
  }
}

// Every subset of the five inputs wanting gradients: the fused op's gradients equal the two
// linear layers' (float64), and inputs that want none get none.
TEST(Mlp, GradientsEqualTheTwoLinearLayersForEverySubset) {
  const Tensor g = rnd({2, 3, 4}, 30);
  for (int mask = 1; mask < 32; ++mask) {
    SCOPED_TRACE("mask " + std::to_string(mask));
    std::vector<Tensor> in = inputs({2, 3, 5}, 7, 4, 21, DType::f64);
    for (int i = 0; i < 5; ++i) in[i].set_requires_grad((mask >> i) & 1);
    const auto a = backward_grads(fused(in), g, in);
    const auto b = backward_grads(composite(in), g, in);
    for (int i = 0; i < 5; ++i) {
      ASSERT_EQ(a[i].defined(), b[i].defined()) << "input " << i;
      if (a[i].defined()) {
        EXPECT_LE(max_abs_diff(a[i], b[i]), 1e-12) << "input " << i;
      }
    }
  }
}

TEST(Mlp, ForwardModeMatchesReverseMode) {
  expect_jvp_matches_vjp(fused, inputs({2, 3, 5}, 6, 4, 40, DType::f64));
}

// In bfloat16 and float16 the fused backward applies GELU' to the float32 product before rounding
// (the composite rounds h's gradient first): both within a few roundings of each other. On the GPU
// the GELU epilogues are cuBLASLt's, whose tanh is an approximation good to about 2^-18 relative
// (measured: 4e-6 in float32), so float32 is held to that instead of its own roundoff.
TEST(Mlp, LowPrecisionBesideTheComposite) {
  for (DType dt : {DType::f32, DType::bf16, DType::f16}) {
    SCOPED_TRACE(dtype_name(dt));
    const double u = std::max(unit_roundoff(dt), 0x1p-18);
    std::vector<Tensor> in = inputs({3, 11, 64}, 96, 40, 50, dt);
    for (Tensor& t : in) t.set_requires_grad(true);
    const Tensor y = fused(in), yc = composite(in);
    EXPECT_LE(max_abs_diff(y, yc), 8 * u * max_abs(yc) + 1e-6);
    const Tensor g = rnd({3, 11, 40}, 55).to(dt);
    const auto a = backward_grads(y, g, in), b = backward_grads(yc, g, in);
    for (size_t i = 0; i < 5; ++i)
      EXPECT_LE(max_abs_diff(a[i], b[i]), 16 * u * max_abs(b[i]) + 1e-6) << "input " << i;
  }
}

// The hidden activation h is freed after the forward: only the output and the pre-activation stay,
// and the node saves the pre-activation besides its inputs.
TEST(Mlp, KeepsThePreActivationButNotTheHiddenActivation) {
  std::vector<Tensor> in = inputs({4, 6, 8}, 20, 8, 60, DType::f32);
  for (Tensor& t : in) t.set_requires_grad(true);
  MemoryScope scope;
  const int64_t before = scope.snapshot().live_of(Category::activation);
  const Tensor y = fused(in);
  const int64_t rows = 24, f = 4;
  EXPECT_EQ(scope.delta().live_of(Category::activation), rows * (20 + 8) * f);  // pre and y
  EXPECT_EQ(scope.snapshot().peak_of(Category::activation) - before, rows * (20 + 20 + 8) * f);
  const int64_t saved_new =
      y.grad_fn()->saved_bytes() - in[0].nbytes() - in[1].nbytes() - in[3].nbytes();
  EXPECT_EQ(saved_new, rows * 20 * f);
}

// The GELU-gradient epilogue on its own, through the device's backend: C = (A · B) · GELU'(P)
// and the column sums of C, against float64, with no rows (sums of zero), and without the sums.
TEST(Mlp, GeluGradientEpilogueMatchesFloat64) {
  for (const auto& [m, n, k] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
           {5, 7, 3}, {33, 16, 9}, {0, 6, 4}, {1, 1, 1}}) {
    for (bool sums : {true, false}) {
      SCOPED_TRACE(std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k));
      const Tensor a = rnd({m, k}, 70), b = rnd({k, n}, 71), p = rnd({m, n}, 72, DType::f64, -3, 3);
      Tensor c = rnd({m, n}, 73), s = rnd({n}, 74);  // overwritten
      GemmArgs g = gemm_args(DType::f64, false, false, m, n, k, 1.0, a.data(), k, b.data(), n, 0.0,
                             c.data(), n);
      g.epilogue = GemmEpilogue::gelu_grad;
      g.pre_act = p.data();
      if (sums) g.bias_grad = s.data();
      backend(a.device()).gemm(g);
      const auto va = a.to_vector<double>(), vb = b.to_vector<double>(), vp = p.to_vector<double>();
      const auto vc = c.to_vector<double>(), vs = s.to_vector<double>();
      std::vector<double> col(static_cast<size_t>(n), 0.0);
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
          double acc = 0;
          for (int64_t q = 0; q < k; ++q) acc += va[i * k + q] * vb[q * n + j];
          const double x = vp[i * n + j], h = 1e-6;
          const double d = (gelu_ref(x + h) - gelu_ref(x - h)) / (2 * h);
          ASSERT_NEAR(vc[i * n + j], acc * d, 1e-8 * (1 + std::abs(acc))) << i << "," << j;
          col[j] += vc[i * n + j];
        }
      for (int64_t j = 0; sums && j < n; ++j) {
        EXPECT_NEAR(vs[j], col[j], 1e-12 * (1 + std::abs(col[j])));
      }
    }
  }
}

// The backend's GELU backward on its own (Backend::gelu_backward_fused): pre's gradient, h and the
// gradient's column sums against float64, for every float dtype, with and without h and the sums,
// on odd shapes (M not a multiple of 8 runs the separate entries on the GPU; M = 776 and 3072 its
// one-pass kernel for the 16-bit types, with a partial row chunk), with no rows (sums of zero).
// The same bits on a second run.
TEST(Mlp, GeluBackwardFusedMatchesFloat64) {
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{0, 8},   {1, 8},     {3, 5},
                                                           {37, 24}, {130, 776}, {200, 3072}};
  for (DType dt : {DType::f64, DType::f32, DType::bf16, DType::f16}) {
    for (const auto& [rows, M] : shapes) {
      // 0: h and sums, 1: sums only, 2: h only, 3: h over pre and sums.
      for (int mode = 0; mode < 4; ++mode) {
        SCOPED_TRACE(std::string(dtype_name(dt)) + " " + std::to_string(rows) + "x" +
                     std::to_string(M) + " mode " + std::to_string(mode));
        const Tensor pre = rnd({rows, M}, 300 + M, DType::f64, -4, 4).to(dt);
        const Tensor dh = rnd({rows, M}, 400 + M).to(dt);
        const bool want_h = mode != 1, want_sums = mode != 2;
        auto run = [&](Tensor& grad, Tensor& h, Tensor& sums) {
          grad = dh.clone();
          // Overwritten: h, or pre's copy that h replaces.
          h = mode == 3 ? pre.clone() : rnd({rows, M}, 500, DType::f64, 7, 9).to(dt);
          sums = rnd({M}, 501, DType::f64, 7, 9).to(dt);  // overwritten
          backend(pre.device())
              .gelu_backward_fused(dt, mode == 3 ? h.data() : pre.data(), grad.data(),
                                   want_h ? h.data() : nullptr, want_sums ? sums.data() : nullptr,
                                   rows, M);
        };
        Tensor grad, h, sums;
        run(grad, h, sums);
        const auto vp = pre.to(DType::f64).to_vector<double>();
        const auto vd = dh.to(DType::f64).to_vector<double>();
        const auto vg = grad.to(DType::f64).to_vector<double>();
        const auto vh = h.to(DType::f64).to_vector<double>();
        // The 16-bit types round once; the GPU's float math adds ~2^-21 (kernel_common.cuh).
        const double u = std::max(unit_roundoff(dt), 0x1p-20);
        const double sub = dt == DType::f16 ? 0x1p-24 : 0.0;  // float16's subnormal spacing
        std::vector<double> col(static_cast<size_t>(M), 0.0), mag(static_cast<size_t>(M), 0.0);
        for (int64_t i = 0; i < rows * M; ++i) {
          const double x = vp[i], e = 1e-6;
          const double d = (gelu_ref(x + e) - gelu_ref(x - e)) / (2 * e);
          // GELU' sums terms of size ~1 to about 0 near x = -0.75: the error is relative to dh.
          ASSERT_NEAR(vg[i], vd[i] * d, 2 * u * std::abs(vd[i] * d) + 4 * u * std::abs(vd[i]) + sub)
              << "pre's gradient at " << i;
          if (want_h) {
            // The CPU's 16-bit GELU takes the tanh form in float32, whose 1 + tanh cancels for
            // x << 0: an absolute error of a float32 rounding of |x|.
            ASSERT_NEAR(vh[i], gelu_ref(x),
                        2 * u * std::abs(gelu_ref(x)) + 0x1p-22 * std::abs(x) + sub)
                << i;
          }
          col[i % M] += vg[i];  // the values written
          mag[i % M] += std::abs(vg[i]);
        }
        if (!want_h) {  // h untouched
          EXPECT_TRUE(bitwise_equal(h, rnd({rows, M}, 500, DType::f64, 7, 9).to(dt)));
        }
        if (want_sums) {
          const auto vs = sums.to(DType::f64).to_vector<double>();
          const double acc_u = dt == DType::f64 ? 0x1p-52 : 0x1p-23;  // float32 sums at least
          for (int64_t j = 0; j < M; ++j) {
            ASSERT_NEAR(vs[j], col[j],
                        unit_roundoff(dt) * std::abs(col[j]) + rows * acc_u * mag[j] + 1e-300)
                << "column " << j;
          }
        }
        Tensor grad2, h2, sums2;
        run(grad2, h2, sums2);
        EXPECT_TRUE(bitwise_equal(grad, grad2));
        if (want_h) {
          EXPECT_TRUE(bitwise_equal(h, h2));
        }
        if (want_sums) {
          EXPECT_TRUE(bitwise_equal(sums, sums2));
        }
      }
    }
  }
}

// Without retain_graph the backward writes h over the pre-activation, which nothing else holds
// and the node drops when it returns: the MLP's backward allocates one [rows, M] buffer (pre's
// gradient) where with retain_graph (pre must survive for the next backward) it allocates two,
// and the gradients are the same bits; so too under a checkpoint, whose recomputed pre the node
// receives alone. A second backward after retain_graph still reads the pre-activation.
TEST(Mlp, WritesTheHiddenActivationOverThePreActivation) {
  const int64_t rows = 24, M = 40, N = 8;
  const std::vector<Tensor> in = inputs({4, 6, 8}, M, N, 700, DType::f32);
  const Tensor g = rnd({4, 6, N}, 701).to(DType::f32);
  // The backward's allocations of rows x M floats inside the MLP's node (under a checkpoint, also
  // the recomputed forward's pre and h).
  auto run = [&](bool retain, std::vector<Tensor>* grads, bool checkpointed = false) {
    std::vector<Tensor> leaves;
    for (const Tensor& t : in) leaves.push_back(t.detach().set_requires_grad(true));
    const Tensor y = checkpointed ? checkpoint(fused, leaves) : fused(leaves);
    int64_t hidden = 0;
    {
      MemoryScope scope(/*record_timeline=*/true);
      y.backward(g, retain);
      for (const MemoryEvent& e : scope.events()) {
        if (e.alloc && e.op == "mlp" && e.bytes == rows * M * 4) ++hidden;
      }
    }
    for (const Tensor& t : leaves) grads->push_back(t.grad());
    if (retain) {
      for (const Tensor& t : leaves) t.set_grad(Tensor());
      y.backward(g);
      for (size_t i = 0; i < leaves.size(); ++i) {
        EXPECT_TRUE(bitwise_equal(leaves[i].grad(), (*grads)[i])) << "second backward, input " << i;
      }
    }
    return hidden;
  };
  std::vector<Tensor> kept, dropped, recomputed;
  EXPECT_EQ(run(true, &kept), 2);
  EXPECT_EQ(run(false, &dropped), 1);
  // The recomputed pre is the checkpoint's to hand over: h takes its place there too.
  EXPECT_EQ(run(false, &recomputed, true), 3);
  for (size_t i = 0; i < kept.size(); ++i) {
    EXPECT_TRUE(bitwise_equal(kept[i], dropped[i])) << i;
    EXPECT_TRUE(bitwise_equal(recomputed[i], dropped[i])) << i;
  }
}

// b1's gradient is the GELU pass's column sums of pre's gradient (the backend's reduce on the CPU,
// in float64), taken by the weight-gradient GEMM in place of its own bias-gradient epilogue, which
// sums in float32 (kernels/cpu/gemm.cpp): in float32 with 300 rows the two give other bits, so the
// test tells which one ran. Host tensors: the plumbing of the op, on any test device.
TEST(Mlp, B1GradientIsTheGeluPassSums) {
  const Device cpu = Device::cpu();
  const int64_t rows = 300, K = 9, M = 40, N = 7;
  auto host = [&](const Shape& s, uint64_t seed, double lo = -1, double hi = 1) {
    return rnd(s, seed, DType::f64, lo, hi).to(cpu).to(DType::f32);
  };
  const Tensor x = host({3, rows / 3, K}, 600, -2, 2).set_requires_grad(true);
  const Tensor w1 = host({K, M}, 601).set_requires_grad(true);
  const Tensor b1 = host({M}, 602).set_requires_grad(true);
  const Tensor w2 = host({M, N}, 603, -0.5, 0.5).set_requires_grad(true);
  const Tensor b2 = host({N}, 604).set_requires_grad(true);
  const Tensor g = host({3, rows / 3, N}, 605);
  mlp(x, w1, b1, w2, b2).backward(g);
  // pre's gradient as the backward makes it: h's gradient by the same GEMM, GELU' applied by the
  // same elementwise kernel.
  Tensor dpre, sums;
  {
    NoGradGuard no_grad;
    const Tensor pre = linear(x, w1, b1);
    dpre = unary_derivative(UnaryOp::gelu, matmul(g, w2.transpose(0, 1)), pre);
    sums = sum_to(dpre, {M});
  }
  EXPECT_TRUE(bitwise_equal(b1.grad(), sums)) << "b1's gradient is not the GELU pass's sums";
  // The composite's bias-gradient epilogue, on the same pre's gradient, sums to other bits.
  const Tensor xd = x.detach().set_requires_grad(true), wd = w1.detach().set_requires_grad(true);
  const Tensor bd = b1.detach().set_requires_grad(true);
  linear(xd, wd, bd).backward(dpre);
  EXPECT_FALSE(bitwise_equal(bd.grad(), sums)) << "the test cannot tell the two paths apart";
  EXPECT_LE(max_abs_diff(bd.grad(), sums), 1e-4 * max_abs(sums));
}

// A residual r: mlp(..., r) = r + mlp(...) with the add in the second GEMM. float64 values against
// the reference plus r, gradients by finite differences and equal to the unfused add's (r's is the
// output's gradient itself), forward mode, bf16 beside the unfused add, and a wrong shape.
TEST(Mlp, ResidualIsAddedInTheSecondGemm) {
  std::vector<Tensor> in = inputs({2, 3, 5}, 7, 4, 90, DType::f64);
  in.push_back(rnd({2, 3, 4}, 95, DType::f64, -3, 3));
  const auto f = [](const std::vector<Tensor>& v) {
    return mlp(v[0], v[1], v[2], v[3], v[4], v[5]);
  };
  const auto ref = reference(in[0], in[1], in[2], in[3], in[4]), vr = in[5].to_vector<double>();
  const auto got = f(in).to_vector<double>();
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], ref[i] + vr[i], 1e-13 * (1 + std::abs(ref[i] + vr[i]))) << i;
  for (Tensor& t : in) t.set_requires_grad(true);
  expect_gradcheck(f, in);
  const Tensor g = rnd({2, 3, 4}, 96);
  const auto a = backward_grads(f(in), g, in);
  const auto b = backward_grads(add(in[5], fused(in)), g, in);
  for (size_t i = 0; i < 6; ++i) EXPECT_LE(max_abs_diff(a[i], b[i]), 1e-12) << "input " << i;
  EXPECT_EQ(a[5].to_vector<double>(), g.to_vector<double>());
  std::vector<Tensor> plain = inputs({2, 3, 5}, 7, 4, 90, DType::f64);
  plain.push_back(rnd({2, 3, 4}, 95, DType::f64, -3, 3));
  expect_jvp_matches_vjp(f, plain);

  const double u = unit_roundoff(DType::bf16);
  std::vector<Tensor> lo = inputs({3, 11, 64}, 96, 40, 97, DType::bf16);
  lo.push_back(rnd({3, 11, 40}, 98, DType::f64, -4, 4).to(DType::bf16));
  const Tensor yc = add(lo[5], fused(lo));
  EXPECT_LE(max_abs_diff(f(lo), yc), 4 * u * max_abs(yc) + 1e-6);
  const std::string m = error_of([&] {
    mlp(plain[0], plain[1], plain[2], plain[3], plain[4], rnd({2, 3, 5}, 1));
  });
  EXPECT_NE(m.find("[2, 3, 5]"), std::string::npos) << m;
}

// Without b1, b2 or both (nanoGPT's bias = False): values against float64 with and without a
// residual, gradients by finite differences and equal to the two linear layers' (float64), and
// bfloat16 beside that composite.
TEST(Mlp, WithoutBiases) {
  for (int drop = 1; drop < 4; ++drop) {  // bit 0: b1 absent, bit 1: b2 absent
    SCOPED_TRACE("drop " + std::to_string(drop));
    // The inputs that remain, and the op and the composite on them.
    const auto keep = [drop](const std::vector<Tensor>& in) {
      std::vector<Tensor> kept;
      for (size_t i = 0; i < in.size(); ++i)
        if (!(i == 2 && (drop & 1)) && !(i == 4 && (drop & 2))) kept.push_back(in[i]);
      return kept;
    };
    const auto full = [drop](const std::vector<Tensor>& kept) {
      std::vector<Tensor> in;
      size_t k = 0;
      for (size_t i = 0; i < 5; ++i)
        in.push_back((i == 2 && (drop & 1)) || (i == 4 && (drop & 2)) ? Tensor() : kept[k++]);
      return in;
    };
    const auto f = [&](const std::vector<Tensor>& kept) { return fused(full(kept)); };
    const auto fc = [&](const std::vector<Tensor>& kept) { return composite(full(kept)); };
    for (const auto& [sx, M, N] : std::vector<std::tuple<Shape, int64_t, int64_t>>{
             {{3, 5}, 7, 2}, {{2, 3, 4}, 9, 5}, {{17, 13}, 1, 3}}) {
      SCOPED_TRACE(shape_str(sx));
      const std::vector<Tensor> kept = keep(inputs(sx, M, N, 60, DType::f64));
      const std::vector<Tensor> in = full(kept);
      Shape so = sx;
      so.back() = N;
      const Tensor r = rnd(so, 65, DType::f64, -3, 3);
      const auto ref = reference(in[0], in[1], in[2], in[3], in[4]), vr = r.to_vector<double>();
      const auto got = f(kept).to_vector<double>();
      const auto with_r = mlp(in[0], in[1], in[2], in[3], in[4], r).to_vector<double>();
      ASSERT_EQ(got.size(), ref.size());
      for (size_t i = 0; i < got.size(); ++i) {
        ASSERT_NEAR(got[i], ref[i], 1e-13 * (1 + std::abs(ref[i]))) << i;
        ASSERT_NEAR(with_r[i], ref[i] + vr[i], 1e-13 * (1 + std::abs(ref[i] + vr[i]))) << i;
      }
      for (const Tensor& t : kept) t.set_requires_grad(true);
      expect_gradcheck(f, kept);
      const Tensor g = rnd(so, 66);
      const auto a = backward_grads(f(kept), g, kept), b = backward_grads(fc(kept), g, kept);
      for (size_t i = 0; i < kept.size(); ++i)
        EXPECT_LE(max_abs_diff(a[i], b[i]), 1e-12) << "input " << i;
    }
    const double u = unit_roundoff(DType::bf16);
    const std::vector<Tensor> lo = keep(inputs({3, 11, 64}, 96, 40, 67, DType::bf16));
    for (const Tensor& t : lo) t.set_requires_grad(true);
    const Tensor y = f(lo), yc = fc(lo);
    EXPECT_LE(max_abs_diff(y, yc), 8 * u * max_abs(yc) + 1e-6);
    const Tensor g = rnd({3, 11, 40}, 68).to(DType::bf16);
    const auto a = backward_grads(y, g, lo), b = backward_grads(yc, g, lo);
    for (size_t i = 0; i < lo.size(); ++i)
      EXPECT_LE(max_abs_diff(a[i], b[i]), 16 * u * max_abs(b[i]) + 1e-6) << "input " << i;
  }
}

TEST(Mlp, BadInputThrowsNamingTheShapes) {
  const auto in = inputs({3, 4}, 5, 6, 80, DType::f64);
  std::string m = error_of([&] { mlp(in[0], rnd({5, 5}, 1), in[2], in[3], in[4]); });
  EXPECT_NE(m.find("w1"), std::string::npos) << m;
  EXPECT_NE(m.find("[5, 5]"), std::string::npos) << m;
  m = error_of([&] { mlp(in[0], in[1], in[2], rnd({4, 6}, 1), in[4]); });
  EXPECT_NE(m.find("w2"), std::string::npos) << m;
  m = error_of([&] { mlp(in[0], in[1], rnd({4}, 1), in[3], in[4]); });
  EXPECT_NE(m.find("b1"), std::string::npos) << m;
  EXPECT_THROW(mlp(in[0], in[1].to(DType::f32), in[2], in[3], in[4]), Error);  // dtype mismatch
  EXPECT_THROW(mlp(in[0], Tensor(), in[2], in[3], in[4]), Error);              // no weight
}

}  // namespace
}  // namespace tgtest
