// Byte-exact memory prediction for the linear chain that `tilegrad memtrace` runs on the engine:
// x_i = x_{i-1} · W_i with W_i [dim, dim] parameters, loss = sum(x_L), the layers' inputs managed
// by the ChainRematerializer (executor.h) under any schedule, and the engine's ordinary backward.
//
// The chain model of chain.h counts activations and their gradients only. This replays a schedule
// with the engine's own allocation order for that network, event by event, so its peaks can be
// compared with the tracker's for equality:
//   - setup: the weights (parameter) and x_0 (other) are live throughout;
//   - forward(i) allocates x_i (activation), free(i) frees it; the loss action hands x_L to the
//     caller, which keeps it through the backward; sum(x_L) allocates one scalar (activation);
//   - the backward allocates a one-element seed (gradient), which sum's backward broadcasts to
//     x_L's shape without copying;
//   - layer i's node computes dX = g_i · W_iᵀ first (none for i = 1: x_0 needs no gradient), then
//     unpacks x_{i-1} — which is when the executor runs the schedule's actions up to backward(i),
//     recomputing under the activation category — then dW = x_{i-1}ᵀ · g_i; after the node, g_i
//     is freed, then x_{i-1} (except x_0). For i = L, g_L is the broadcast seed, and each GEMM
//     first copies it to a contiguous buffer of x_L's bytes, freed when that GEMM returns;
//   - AccumulateGrad takes dW without a copy, so weight gradients accumulate one per step.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "memory/category.h"
#include "remat/chain.h"
#include "remat/plan.h"

namespace tilegrad::remat {

struct LinearChainBytes {
  int64_t weight = 0;  // bytes of one W_i (and of one dW_i)
  int64_t scalar = 0;  // bytes of one element (the loss, the seed)
};

struct EnginePrediction {
  int64_t peak_total = 0;                                  // live bytes at the peak
  std::array<int64_t, kNumCategories> peak_by_category{};  // each category's own peak
  std::array<int64_t, kNumCategories> final_live{};        // after the backward
};

// The schedule must be valid for spec (simulate.h); spec.act_bytes[i] are the bytes of x_i.
EnginePrediction predict_linear_chain(const ChainSpec& spec, const std::vector<Action>& schedule,
                                      const LinearChainBytes& bytes);

// budget:BYTES with BYTES the engine's peak (what the tracker measures, weights and input
// included) instead of the chain model's: the least-recompute schedule, among the exact budget
// DP's optimal schedules at each of its breakpoints (BudgetSolver::frontier), naive:C, revolve:C
// and every:K for every C and K, whose predict_linear_chain peak fits. The engine adds terms the
// chain model has no slot for (weight gradients accumulating through the backward, the scalar seed,
// the copies of the broadcast gradient), so the DP's optimality in chain bytes carries over only as
// "optimal among these candidates"; docs/REMAT.md says so. Throws tilegrad::Error, stating the
// smallest engine peak among the candidates, when none fits. The plan's policy is "budget:BYTES"
// and its sim is the chain model's.
Plan plan_linear_chain_budget(const ChainSpec& spec, const LinearChainBytes& bytes,
                              int64_t budget_bytes);

}  // namespace tilegrad::remat
