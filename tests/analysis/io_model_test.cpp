// The attention IO model against counts derived by hand: small problems counted block by block on
// paper, closed forms summed over blocks for random shapes, the causal block count, and the FLOPs.
#include <gtest/gtest.h>

#include <string>

#include "analysis/io_model.h"
#include "testing.h"

namespace {

using namespace tilegrad::analysis;
using tgtest::error_of;

AttentionDims dims(int64_t Nq, int64_t Nk, int64_t d, bool causal = false) {
  AttentionDims a;
  a.Nq = Nq;
  a.Nk = Nk;
  a.d = d;
  a.causal = causal;
  return a;
}

// Counting elements: every element size 1.
IoOptions elements(int64_t M) {
  IoOptions o;
  o.M = M;
  o.sizes = ElementSizes{1, 1, 1};
  return o;
}

int64_t reads(const Traffic& t, const char* name) {
  const TensorTraffic* x = t.find(name);
  return x ? x->reads : 0;
}
int64_t writes(const Traffic& t, const char* name) {
  const TensorTraffic* x = t.find(name);
  return x ? x->writes : 0;
}

TEST(IoModel, BlockRules) {
  // B_c = ceil(M / 4d), B_r = min(B_c, d).
  EXPECT_EQ(algorithm1_blocks(16, 2).Br, 2);
  EXPECT_EQ(algorithm1_blocks(16, 2).Bc, 2);
  EXPECT_EQ(algorithm1_blocks(100, 8).Bc, 4);  // ceil(100/32)
  EXPECT_EQ(algorithm1_blocks(100, 8).Br, 4);
  EXPECT_EQ(algorithm1_blocks(1000, 8).Bc, 32);  // ceil(1000/32) = 32
  EXPECT_EQ(algorithm1_blocks(1000, 8).Br, 8);   // capped at d
  // 192 KB of fp16 on an A100 SM, d = 64: 98304 / 256 = 384.
  EXPECT_EQ(algorithm1_blocks(98304, 64).Bc, 384);
  EXPECT_EQ(algorithm1_blocks(98304, 64).Br, 64);
  EXPECT_EQ(flash2_blocks(98304, 64).Br, 384);
  EXPECT_EQ(flash2_blocks(98304, 64).Bc, 64);
}

// Standard attention, N = 8, d = 2, a row fits in M: forward reads Q, K (Nd each), S (N²), P (N²),
// V (Nd); writes S, P (N² each), O (Nd): 4N² + 4Nd. Backward (dV = PᵀdO, dP = dO Vᵀ, dS, dQ, dK)
// reads P, dO, dO, V, P, dP, dS, K, dS, Q and writes dV, dP, dS, dQ, dK: 7N² + 8Nd.
TEST(IoModel, StandardHandCount) {
  const AttentionIo io = attention_io(AttentionAlgo::standard, dims(8, 8, 2), elements(16));
  EXPECT_EQ(io.softmax_passes, 1);
  EXPECT_EQ(io.forward.traffic.reads(), 16 + 16 + 64 + 64 + 16);
  EXPECT_EQ(io.forward.traffic.writes(), 64 + 64 + 16);
  EXPECT_EQ(io.forward.traffic.elements(), 4 * 64 + 4 * 16);
  EXPECT_EQ(io.backward.traffic.elements(), 7 * 64 + 8 * 16);
  EXPECT_EQ(reads(io.backward.traffic, "P"), 2 * 64);
  EXPECT_EQ(reads(io.backward.traffic, "dS"), 2 * 64);
  EXPECT_EQ(writes(io.backward.traffic, "dS"), 64);
  EXPECT_EQ(reads(io.backward.traffic, "dO"), 2 * 16);
  // The standard algorithm moves the whole matrices whatever the mask.
  const AttentionIo causal =
      attention_io(AttentionAlgo::standard, dims(8, 8, 2, true), elements(16));
  EXPECT_EQ(causal.forward.traffic.elements(), io.forward.traffic.elements());
  EXPECT_EQ(causal.forward.flops, io.forward.flops);
}

// A row of 8 that does not fit in M = 4 is read twice by the softmax (max and sum, then the
// normalised write) and twice by the softmax backward (both P and dP): +N² forward, +2N² backward.
TEST(IoModel, StandardSoftmaxRowsThatDoNotFit) {
  const AttentionIo io = attention_io(AttentionAlgo::standard, dims(8, 8, 2), elements(4));
  EXPECT_EQ(io.softmax_passes, 2);
  EXPECT_EQ(io.forward.traffic.elements(), 5 * 64 + 4 * 16);
  EXPECT_EQ(io.backward.traffic.elements(), 9 * 64 + 8 * 16);
}

// With the separate masking and dropout kernels: forward S w, mask r+w, softmax r+w, dropout
// r + P_drop w + mask w, PV r: 9 N²-sized accesses, one of them the 1-byte mask; backward dV r,
// dP_drop w, dropout backward r + mask r + w, softmax backward 2r + w, dQ r, dK r: 10.
TEST(IoModel, StandardMaskAndDropoutKernels) {
  IoOptions o = elements(1024);
  o.standard.mask_kernel = true;
  o.standard.dropout = true;
  const int64_t N = 16, d = 4, NN = N * N, Nd = N * d;
  AttentionIo io = attention_io(AttentionAlgo::standard, dims(N, N, d), o);
  EXPECT_EQ(io.forward.traffic.elements(), 9 * NN + 4 * Nd);
  EXPECT_EQ(io.backward.traffic.elements(), 10 * NN + 8 * Nd);
  // In bytes with 2-byte data and a 1-byte mask: 17 N² + 8 Nd forward, 19 N² + 16 Nd backward.
  o.sizes = ElementSizes{2, 4, 1};
  io = attention_io(AttentionAlgo::standard, dims(N, N, d), o);
  EXPECT_EQ(io.forward.traffic.bytes(), 17 * NN + 8 * Nd);
  EXPECT_EQ(io.backward.traffic.bytes(), 19 * NN + 16 * Nd);
}

// Tiled standard GEMMs, N = 8, d = 2, M = 16 (blocks 2 x 2, T_r = 4): K and V are re-read once per
// row block: 4N² + 2Nd + 2·T_r·Nd forward.
TEST(IoModel, StandardTiledGemms) {
  IoOptions o = elements(16);
  o.standard.tiled_gemm = true;
  const AttentionIo io = attention_io(AttentionAlgo::standard, dims(8, 8, 2), o);
  EXPECT_EQ(io.forward.traffic.elements(), 4 * 64 + 2 * 16 + 2 * 4 * 16);
  EXPECT_EQ(reads(io.forward.traffic, "K"), 4 * 16);
  EXPECT_EQ(reads(io.forward.traffic, "Q"), 16);
  // Backward: dV_j resident re-reads dO T_c times, dP re-reads V T_r times, dQ re-reads K T_r
  // times, dK re-reads Q T_c times; the N² traffic is unchanged (7 N²).
  EXPECT_EQ(io.backward.traffic.elements(), 7 * 64 + 16 /*dO, once for dP*/ +
                                                3 * 16 /*dV, dQ, dK writes*/ +
                                                4 * (4 * 16) /*dO for dV, V, K, Q: 4 times each*/);
}

// FlashAttention Algorithm 1, N = 8, d = 2, M = 16: B_r = B_c = 2, T_r = T_c = 4. Forward: the
// initialisation writes O, l, m (16 + 8 + 8); K and V are loaded once (16 + 16); each of the 16
// block pairs reads Q_i, O_i (4 each), l_i, m_i (2 each) and writes O_i, l_i, m_i (4 + 2 + 2).
TEST(IoModel, Flash1HandCount) {
  const AttentionIo io = attention_io(AttentionAlgo::flash1, dims(8, 8, 2), elements(16));
  EXPECT_EQ(io.forward.Tr, 4);
  EXPECT_EQ(io.forward.Tc, 4);
  EXPECT_EQ(io.forward.active_blocks, 16);
  EXPECT_EQ(io.forward.traffic.elements(), 32 + 32 + 16 * (12 + 8));
  EXPECT_EQ(reads(io.forward.traffic, "Q"), 4 * 16);
  EXPECT_EQ(reads(io.forward.traffic, "K"), 16);
  EXPECT_EQ(writes(io.forward.traffic, "O"), 16 + 4 * 16);
  // Backward: dQ, dK, dV initialised (48); K, V loaded once (32); each pair reads Q_i, O_i, dO_i,
  // dQ_i (16) and l_i, m_i (4) and writes dQ_i (4); dK_j, dV_j written once (32).
  EXPECT_EQ(io.backward.traffic.elements(), 48 + 32 + 16 * 24 + 32);
  EXPECT_EQ(io.backward.traffic.elements(), 7 * 16 + 4 * (5 * 16 + 2 * 8));
}

// Causal, N = 4, d = 1, M = 4: blocks of 1, the 10 pairs with j <= i are computed. Forward: init
// 12 writes, K and V 8 reads (every key has a query that sees it), 7 accesses per pair. Backward:
// init 12, K and V 8, 7 per pair (6 reads, 1 write), dK and dV 8 writes.
TEST(IoModel, Flash1CausalHandCount) {
  const AttentionIo io = attention_io(AttentionAlgo::flash1, dims(4, 4, 1, true), elements(4));
  EXPECT_EQ(io.forward.active_blocks, 10);
  EXPECT_EQ(io.forward.traffic.elements(), 12 + 8 + 10 * 7);
  EXPECT_EQ(io.backward.traffic.elements(), 12 + 8 + 10 * 7 + 8);
  // FLOPs: two 1x1x1 GEMMs (2·2 = 4) and 5 softmax FLOPs per computed score.
  EXPECT_DOUBLE_EQ(io.forward.flops, 10 * (4 + 5));
  EXPECT_DOUBLE_EQ(io.forward.matmul_flops, 10 * 4);
}

// The causal mask is aligned to the bottom-right corner. Nq = 2, Nk = 4: query 0 sees keys 0..2,
// query 1 all four: 7 pairs. Nq = 4, Nk = 2: queries 0 and 1 see nothing, query 2 key 0, query 3
// keys 0 and 1: 3 pairs.
TEST(IoModel, CausalAlignsBottomRight) {
  EXPECT_EQ(
      attention_io(AttentionAlgo::flash1, dims(2, 4, 1, true), elements(4)).forward.active_blocks,
      7);
  const AttentionIo tall = attention_io(AttentionAlgo::flash1, dims(4, 2, 1, true), elements(4));
  EXPECT_EQ(tall.forward.active_blocks, 3);
  // Literal Algorithm 1: init 12, K and V 4, 7 per pair.
  EXPECT_EQ(tall.forward.traffic.elements(), 12 + 4 + 3 * 7);
  // Initialisation folded into the first visit: no init writes and no first reads of O, l, m
  // (rows 2 and 3 are first visited at j = 0; row 3 again at j = 1); rows 0 and 1 are never
  // visited and get their O, l, m written once (3 each).
  IoOptions o = elements(4);
  o.count_init = false;
  const AttentionIo folded = attention_io(AttentionAlgo::flash1, dims(4, 2, 1, true), o);
  EXPECT_EQ(folded.forward.traffic.elements(),
            3 /*Q*/ + 3 /*O,l,m re-read*/ + 9 /*writes*/ + 4 /*K,V*/ + 6 /*unvisited rows*/);
}

// Square causal problems whose block sizes divide N compute T(T+1)/2 of T² block pairs.
TEST(IoModel, CausalBlockCount) {
  for (int64_t T : {1, 2, 3, 8, 33}) {
    IoOptions o = elements(1);
    o.blocks = Blocks{4, 4};
    const AttentionIo io = attention_io(AttentionAlgo::flash1, dims(4 * T, 4 * T, 8, true), o);
    EXPECT_EQ(io.forward.active_blocks, T * (T + 1) / 2) << T;
    EXPECT_DOUBLE_EQ(io.forward.matmul_flops, 4.0 * 16 * 8 * static_cast<double>(T * (T + 1) / 2));
  }
}

// FlashAttention-2, N = 8, d = 2. M = 16: blocks 2 x 2; forward reads Q once (16) and K, V once
// per Q block (4 x 32), writes O (16) and L (8). M = 64: B_r = 8 (Q resident), B_c = 2: one Q
// block, so K and V are read once: 16 + 32 + 16 + 8.
TEST(IoModel, Flash2HandCount) {
  EXPECT_EQ(
      attention_io(AttentionAlgo::flash2, dims(8, 8, 2), elements(16)).forward.traffic.elements(),
      16 + 4 * 32 + 16 + 8);
  const AttentionIo io = attention_io(AttentionAlgo::flash2, dims(8, 8, 2), elements(64));
  EXPECT_EQ(io.forward.blocks.Br, 8);
  EXPECT_EQ(io.forward.blocks.Bc, 2);
  EXPECT_EQ(io.forward.traffic.elements(), 16 + 32 + 16 + 8);
  // Its backward keeps K/V resident (B_c = 8, B_r = 2): D = rowsum(dO∘O) reads O and dO (32)
  // and writes D (8); dQ is zeroed (16); K, V read once (32); each of the 4 pairs reads Q_i,
  // dO_i, dQ_i (12) and L_i, D_i (4) and writes dQ_i (4); dK, dV written once (32).
  EXPECT_EQ(io.backward.blocks.Bc, 8);
  EXPECT_EQ(io.backward.traffic.elements(), 40 + 16 + 32 + 4 * 20 + 32);
}

// Closed forms summed over blocks, for random shapes with ragged last blocks (no mask): the row
// counts of the blocks add up to Nq and Nk whatever the block sizes.
TEST(IoModel, ClosedFormsOnRandomShapes) {
  tgtest::SplitMix64 rng{42};
  for (int trial = 0; trial < 40; ++trial) {
    const int64_t Nq = rng.in(1, 300), Nk = rng.in(1, 300), d = rng.in(1, 40);
    const int64_t M = rng.in(1, 4000);
    SCOPED_TRACE(std::to_string(Nq) + " " + std::to_string(Nk) + " " + std::to_string(d) + " " +
                 std::to_string(M));
    const AttentionIo f1 = attention_io(AttentionAlgo::flash1, dims(Nq, Nk, d), elements(M));
    const int64_t Tc = f1.forward.Tc, Qd = Nq * d, Kd = Nk * d;
    EXPECT_EQ(Tc, (Nk + algorithm1_blocks(M, d).Bc - 1) / algorithm1_blocks(M, d).Bc);
    const Traffic& a = f1.forward.traffic;
    EXPECT_EQ(reads(a, "K"), Kd);
    EXPECT_EQ(reads(a, "V"), Kd);
    EXPECT_EQ(reads(a, "Q"), Tc * Qd);
    EXPECT_EQ(reads(a, "O"), Tc * Qd);
    EXPECT_EQ(writes(a, "O"), Qd + Tc * Qd);
    EXPECT_EQ(reads(a, "l") + reads(a, "m"), 2 * Tc * Nq);
    EXPECT_EQ(writes(a, "l") + writes(a, "m"), 2 * Nq + 2 * Tc * Nq);
    const Traffic& b = f1.backward.traffic;
    EXPECT_EQ(b.elements(), Qd + 6 * Kd + Tc * (5 * Qd + 2 * Nq));

    const AttentionIo f2 = attention_io(AttentionAlgo::flash2, dims(Nq, Nk, d), elements(M));
    const int64_t Tr = f2.forward.Tr, Tc2 = f2.backward.Tc;
    EXPECT_EQ(f2.forward.traffic.elements(), Qd + 2 * Tr * Kd + Qd + Nq);
    EXPECT_EQ(f2.backward.traffic.elements(),
              2 * Qd + Nq /*D*/ + Qd /*dQ = 0*/ + 2 * Kd + Tc2 * (3 * Qd + 2 * Nq + Qd) + 2 * Kd);

    const AttentionIo st = attention_io(AttentionAlgo::standard, dims(Nq, Nk, d), elements(M));
    const int64_t NN = Nq * Nk, p = Nk <= M ? 1 : 2;
    EXPECT_EQ(st.forward.traffic.elements(), (3 + p) * NN + 2 * Qd + 2 * Kd);
    EXPECT_EQ(st.backward.traffic.elements(), (5 + 2 * p) * NN + 4 * Qd + 4 * Kd);

    // FLOPs: 2 GEMMs forward; 4 backward (standard), 5 (flash).
    const double nnd = static_cast<double>(NN * d);
    EXPECT_DOUBLE_EQ(st.forward.matmul_flops, 4 * nnd);
    EXPECT_DOUBLE_EQ(st.backward.matmul_flops, 8 * nnd);
    EXPECT_DOUBLE_EQ(f1.forward.matmul_flops, 4 * nnd);
    EXPECT_DOUBLE_EQ(f1.backward.matmul_flops, 10 * nnd);
    EXPECT_DOUBLE_EQ(f2.backward.matmul_flops, 10 * nnd);
  }
}

TEST(IoModel, HeadsScaleEveryCount) {
  AttentionDims one = dims(37, 53, 16, true);
  AttentionDims many = one;
  many.B = 3;
  many.H = 5;
  IoOptions o;
  o.M = 700;
  for (AttentionAlgo a : {AttentionAlgo::standard, AttentionAlgo::flash1, AttentionAlgo::flash2}) {
    const AttentionIo x = attention_io(a, one, o), y = attention_io(a, many, o);
    EXPECT_EQ(15 * x.bytes(), y.bytes());
    EXPECT_EQ(15 * x.elements(), y.elements());
    EXPECT_DOUBLE_EQ(15 * x.flops(), y.flops());
  }
}

TEST(IoModel, RejectsBadInput) {
  EXPECT_NE(error_of([] {
              attention_io(AttentionAlgo::flash1, dims(0, 4, 4), elements(16));
            }).find("Nq=0"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              attention_io(AttentionAlgo::flash1, dims(4, 4, 4), elements(0));
            }).find("fast memory M"),
            std::string::npos);
  // 2^16 x 2^16 blocks of one row is past the walk limit.
  IoOptions o = elements(1);
  o.blocks = Blocks{1, 1};
  EXPECT_NE(error_of([&] {
              attention_io(AttentionAlgo::flash1, dims(1 << 16, 1 << 16, 1), o);
            }).find("too many to walk"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_algo("flash3"); }).find("unknown algorithm 'flash3'"),
            std::string::npos);
  EXPECT_EQ(parse_algo("flash"), AttentionAlgo::flash1);
}

}  // namespace
