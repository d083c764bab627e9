// The GPT-2 medium accountings (see flash_paper.h).
#include "analysis/flash_paper.h"

namespace tilegrad::analysis {

namespace {

// FlashAttention's fp16 kernels for head dim 64 on sm80, seqlen_k >= 256
// (csrc/flash_attn/src/fmha_fwd_hdim64.cu, FMHA_kernel_traits<256, 64, 16, 1, 4>): 256 keys per
// K/V block, Q processed 16 rows at a time.
constexpr Blocks kFlash1Kernel{16, 256};

PaperAccounting make(std::string name, std::string description, AttentionAlgo algo, bool causal,
                     int64_t M) {
  PaperAccounting a;
  a.name = std::move(name);
  a.description = std::move(description);
  a.algo = algo;
  a.dims = gpt2_medium_dims(causal);
  a.io.M = M;
  a.io.sizes = ElementSizes{2, 4, 1};  // fp16 data, fp32 statistics, bool dropout mask
  return a;
}

}  // namespace

AttentionDims gpt2_medium_dims(bool causal) {
  AttentionDims d;
  d.B = 64;
  d.H = 16;
  d.Nq = d.Nk = 1024;
  d.d = 64;
  d.causal = causal;
  return d;
}

int64_t a100_sram_elements() {
  return 192 * 1024 / 2;
}

std::vector<PaperAccounting> gpt2_medium_accountings() {
  const int64_t M = a100_sram_elements();
  std::vector<PaperAccounting> v;
  v.push_back(make("std", "Algorithm 0 + its backward: S, P, dP, dS through HBM (11 N² passes)",
                   AttentionAlgo::standard, true, M));
  {
    PaperAccounting a = make("std+mask", "as std, plus a separate causal-mask kernel (13 N²)",
                             AttentionAlgo::standard, true, M);
    a.io.standard.mask_kernel = true;
    v.push_back(a);
  }
  {
    PaperAccounting a =
        make("std+mask+dropout",
             "as std+mask, plus a dropout kernel with a 1-byte mask, forward and backward (18 N²)",
             AttentionAlgo::standard, true, M);
    a.io.standard.mask_kernel = true;
    a.io.standard.dropout = true;
    v.push_back(a);
  }
  {
    PaperAccounting a =
        make("std+mask+dropout, tiled",
             "as std+mask+dropout, GEMMs re-reading operands per block (M = 192 KB)",
             AttentionAlgo::standard, true, M);
    a.io.standard.mask_kernel = true;
    a.io.standard.dropout = true;
    a.io.standard.tiled_gemm = true;
    v.push_back(a);
  }
  v.push_back(make("flash1 M=192KB",
                   "Algorithm 1 + 4, M = 192 KB: B_c = 384, B_r = 64 (T_c = 3), not causal",
                   AttentionAlgo::flash1, false, M));
  v.push_back(make("flash1 M=192KB causal", "as flash1 M=192KB, masked blocks skipped",
                   AttentionAlgo::flash1, true, M));
  {
    PaperAccounting a = make("flash1 kernel blocks",
                             "Algorithm 1 + 4 with the FlashAttention kernel's blocks for d = 64 "
                             "(B_c = 256, B_r = 16: T_c = 4), not causal",
                             AttentionAlgo::flash1, false, M);
    a.io.blocks = kFlash1Kernel;
    v.push_back(a);
  }
  {
    PaperAccounting a =
        make("flash1 kernel blocks causal", "as flash1 kernel blocks, masked blocks skipped",
             AttentionAlgo::flash1, true, M);
    a.io.blocks = kFlash1Kernel;
    v.push_back(a);
  }
  {
    PaperAccounting a = make("flash1 kernel blocks, no init",
                             "as flash1 kernel blocks, initialisation folded into the first "
                             "visit (no zero writes, no first reads of O, l, m, dQ)",
                             AttentionAlgo::flash1, false, M);
    a.io.blocks = kFlash1Kernel;
    a.io.count_init = false;
    v.push_back(a);
  }
  {
    PaperAccounting a = make("flash1 kernel blocks causal, no init",
                             "as flash1 kernel blocks, no init, masked blocks skipped",
                             AttentionAlgo::flash1, true, M);
    a.io.blocks = kFlash1Kernel;
    a.io.count_init = false;
    v.push_back(a);
  }
  v.push_back(make("flash2 M=192KB",
                   "FlashAttention-2 order, M = 192 KB: forward B_r = 384, B_c = 64 (Q resident), "
                   "backward B_c = 384, B_r = 64 (K/V resident), not causal",
                   AttentionAlgo::flash2, false, M));
  return v;
}

std::vector<PaperRow> gpt2_medium_rows() {
  const PaperFigures paper;
  std::vector<PaperRow> rows;
  for (const PaperAccounting& a : gpt2_medium_accountings()) {
    PaperRow r;
    r.accounting = a;
    r.io = attention_io(a.algo, a.dims, a.io);
    r.hbm_gb = static_cast<double>(r.io.bytes()) / 1e9;
    r.gflops = r.io.flops() / 1e9;
    r.paper_hbm_gb = a.algo == AttentionAlgo::standard ? paper.standard_hbm_gb : paper.flash_hbm_gb;
    r.relative_error = r.hbm_gb / r.paper_hbm_gb - 1;
    rows.push_back(r);
  }
  return rows;
}

}  // namespace tilegrad::analysis
