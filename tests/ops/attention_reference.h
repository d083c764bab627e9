// A float64 attention reference for the attention tests, written from the definitions in
// ops/attention.h and independent of the code under test (no attention kernel, no attention op).
//
// Masks, softmax, dropout and the backward formulas are plain loops over one (batch, head) at a
// time, with every (i, j) decided by the visibility rule written out again here. The four kinds of
// matrix product per head go through the engine's float64 matmul (OpenBLAS dgemm, checked on its
// own in matmul_test.cpp): plain loops would take minutes for the 2048 x 2048 x 256 shapes in the
// unoptimised sanitizer build.
#pragma once

#include <cstdint>
#include <vector>

#include "testing.h"

namespace tgtest {

struct RefProblem {
  int64_t B = 1, H = 1, Hkv = 1, Nq = 1, Nk = 1, D = 1;
  double scale = 1.0;
  bool causal = false;
  int64_t left = -1, right = -1;
  std::vector<uint8_t> layout;  // [ceil(Nq / bq), ceil(Nk / bk)] or empty
  int64_t bq = 0, bk = 0;
  double p = 0.0;
  uint64_t seed = 0, offset = 0;
};

// Query i of any head may see key j.
bool ref_visible(const RefProblem& pr, int64_t i, int64_t j);
// Element (b, h, i, j) survives dropout.
bool ref_kept(const RefProblem& pr, int64_t b, int64_t h, int64_t i, int64_t j);

struct RefResult {
  std::vector<double> out;         // [B, H, Nq, D]
  std::vector<double> lse;         // [B, H, Nq]; -inf for rows without visible keys
  std::vector<double> dq, dk, dv;  // empty when no dout was given
};

// q [B, H, Nq, D], k and v [B, Hkv, Nk, D], dout like q (may be empty: forward only), glse [B, H,
// Nq] (may be empty: zero), all row-major.
RefResult attention_reference(const RefProblem& pr, const std::vector<double>& q,
                              const std::vector<double>& k, const std::vector<double>& v,
                              const std::vector<double>& dout = {},
                              const std::vector<double>& glse = {});

// The RefProblem of a call: shapes from the tensors, the rest from the options (scale defaulted to
// 1/sqrt(D) as the op documents).
RefProblem ref_problem(const Tensor& q, const Tensor& k, const AttentionOptions& o);

}  // namespace tgtest
