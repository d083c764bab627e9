// The FlashAttention paper's GPT-2 medium example (B = 64, H = 16, N = 1024, d = 64, fp16):
// the IO model's counts against closed forms derived on paper, and against the paper's figures
// within tolerances argued in the comments (docs/IO_MODEL.md has the discussion).
#include <gtest/gtest.h>

#include <cmath>

#include "analysis/flash_paper.h"

namespace {

using namespace tilegrad::analysis;

constexpr int64_t kHeads = 64 * 16;
constexpr int64_t N = 1024, d = 64, NN = N * N, Nd = N * d;

const PaperRow& row(const std::vector<PaperRow>& rows, const std::string& name) {
  for (const PaperRow& r : rows) {
    if (r.accounting.name == name) return r;
  }
  throw std::runtime_error("no row " + name);
}

// Standard attention with its separate mask and dropout kernels, in fp16 (2 bytes) with a 1-byte
// dropout mask: 17 N² + 8 Nd bytes forward, 19 N² + 16 Nd backward (io_model_test derives these
// counts): 36 N² + 24 Nd bytes per head, i.e. 18 N²-sized fp16 passes and 12 Nd-sized ones.
TEST(FlashPaper, StandardWithMaskAndDropoutReproduces40Point3GB) {
  const std::vector<PaperRow> rows = gpt2_medium_rows();
  const PaperRow r = row(rows, "std+mask+dropout");
  EXPECT_EQ(r.io.bytes(), kHeads * (36 * NN + 24 * Nd));  // 40,265,318,400 bytes
  // The paper rounds to 0.1 GB (±0.12%); one extra N×d fp16 copy somewhere in the measured run
  // would add 0.134 GB (0.33%), one N² pass too many or too few 2.1 GB (5%). 0.5% therefore
  // confirms the pass count without pretending to resolve the Nd-sized terms.
  EXPECT_LT(std::abs(r.relative_error), 0.005);
  // Without the dropout kernel, or without the mask kernel, the count is far off.
  EXPECT_LT(row(rows, "std+mask").relative_error, -0.2);
  EXPECT_LT(row(rows, "std").relative_error, -0.3);
}

// Algorithm 1 + 4 with M = 192 KB (98304 fp16 elements): B_c = 384 (blocks 384, 384, 256: T_c = 3),
// B_r = 64. Per head, data elements: forward Nd (O = 0) + 2Nd (K, V) + 3·3Nd (Q, O read, O
// written per K/V block) = 12 Nd; backward 3Nd (zeros) + 2Nd + 3·5Nd + 2Nd = 22 Nd. Statistics
// (4 bytes): forward 2N + 3·4N = 14N, backward 3·2N = 6N. Bytes: 68 Nd + 80 N per head.
TEST(FlashPaper, Flash1AtA100SramMatchesItsClosedForm) {
  const std::vector<PaperRow> rows = gpt2_medium_rows();
  const PaperRow r = row(rows, "flash1 M=192KB");
  EXPECT_EQ(r.io.forward.Tc, 3);
  EXPECT_EQ(r.io.forward.blocks.Bc, 384);
  EXPECT_EQ(r.io.bytes(), kHeads * (68 * Nd + 80 * N));  // 4,647,288,832 bytes
  // Within 6% of the paper's 4.4 GB (the model does not know the profiler's L2 hits or the
  // kernel's fp32 partial outputs; docs/IO_MODEL.md).
  EXPECT_LT(std::abs(r.relative_error), 0.06);
}

// The paper's 4.4 GB lies between the causal and the non-causal count for the block sizes the
// FlashAttention kernel used (B_c = 256 for d = 64 on an A100); the causal one (GPT-2 trains with
// a causal mask) is within 7%.
TEST(FlashPaper, KernelBlocksBracketThePaper) {
  const std::vector<PaperRow> rows = gpt2_medium_rows();
  const PaperRow causal = row(rows, "flash1 kernel blocks causal");
  const PaperRow full = row(rows, "flash1 kernel blocks");
  EXPECT_LT(causal.hbm_gb, 4.4);
  EXPECT_GT(full.hbm_gb, 4.4);
  EXPECT_LT(std::abs(causal.relative_error), 0.07);
  // The causal kernel computes 5 of 8 block pairs: (1+2+3+4)·4 of 16·4 Q blocks of 16 rows.
  EXPECT_EQ(causal.io.forward.active_blocks, 160);
  EXPECT_EQ(full.io.forward.active_blocks, 256);
}

// FLOPs: the matmuls alone are 2·2N²d per head forward, 4·2N²d backward for standard and 5·2N²d
// for flash (S recomputed): 824.6 and 962.1 GFLOP, the corrected figures the paper's authors give
// (825 and 963; the paper's table prints 66.6 and 75.2, which they say are off by a factor). The
// ratio is 7/6 by construction; the paper's 1.129 is not reproduced (docs/IO_MODEL.md).
TEST(FlashPaper, MatmulFlops) {
  const std::vector<PaperRow> rows = gpt2_medium_rows();
  const double unit = 2.0 * static_cast<double>(NN) * d * kHeads;  // one N×N×d GEMM
  const PaperRow st = row(rows, "std+mask+dropout");
  const PaperRow fl = row(rows, "flash1 M=192KB");
  EXPECT_DOUBLE_EQ(st.io.forward.matmul_flops + st.io.backward.matmul_flops, 6 * unit);
  EXPECT_DOUBLE_EQ(fl.io.forward.matmul_flops + fl.io.backward.matmul_flops, 7 * unit);
  EXPECT_NEAR(6 * unit / 1e9, 825, 825 * 0.002);
  EXPECT_NEAR(7 * unit / 1e9, 963, 963 * 0.002);
}

}  // namespace
