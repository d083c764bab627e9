// The FlashAttention paper's GPT-2 medium example (Figure 2, left: forward + backward of attention
// for sequence length 1024, head dim 64, 16 heads, batch 64, fp16 on an A100): standard attention
// 66.6 GFLOPs and 40.3 GB of HBM reads/writes, FlashAttention 75.2 GFLOPs and 4.4 GB.
//
// The paper's HBM figures were measured with a profiler; the IO model counts an algorithm's
// accesses. gpt2_medium_accountings() lists the accountings that bracket the figures — which
// algorithm steps are separate kernels, which block sizes (from which M), causal or not, whether
// the explicit initialisation writes count — and gpt2_medium_rows() evaluates each;
// docs/IO_MODEL.md discusses which reproduces the paper and how closely.
#pragma once

#include <string>
#include <vector>

#include "analysis/io_model.h"

namespace tilegrad::analysis {

struct PaperFigures {
  double standard_gflops = 66.6;
  double flash_gflops = 75.2;
  double standard_hbm_gb = 40.3;  // GB = 10^9 bytes
  double flash_hbm_gb = 4.4;
  double standard_ms = 41.7;
  double flash_ms = 7.3;
};

// B = 64, H = 16, N = 1024, d = 64.
AttentionDims gpt2_medium_dims(bool causal);

struct PaperAccounting {
  std::string name;         // short id, e.g. "std+mask+dropout"
  std::string description;  // what is counted
  AttentionAlgo algo = AttentionAlgo::standard;
  AttentionDims dims;
  IoOptions io;
};

struct PaperRow {
  PaperAccounting accounting;
  AttentionIo io;
  double hbm_gb = 0;          // forward + backward bytes / 10^9
  double gflops = 0;          // forward + backward FLOPs / 10^9
  double paper_hbm_gb = 0;    // the paper's figure for this algorithm
  double relative_error = 0;  // hbm_gb / paper_hbm_gb − 1
};

// The fast memory the paper's hardware offers: the A100's 192 KB of SRAM per SM, in fp16 elements.
int64_t a100_sram_elements();

std::vector<PaperAccounting> gpt2_medium_accountings();
std::vector<PaperRow> gpt2_medium_rows();

}  // namespace tilegrad::analysis
