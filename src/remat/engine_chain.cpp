#include "remat/engine_chain.h"

#include <algorithm>

#include "core/error.h"
#include "remat/budget.h"
#include "remat/executor.h"
#include "remat/simulate.h"

namespace tilegrad::remat {

namespace {

class Ledger {
 public:
  void alloc(Category c, int64_t bytes) {
    live_[static_cast<int>(c)] += bytes;
    total_ += bytes;
    p_.peak_total = std::max(p_.peak_total, total_);
    auto& pc = p_.peak_by_category[static_cast<int>(c)];
    pc = std::max(pc, live_[static_cast<int>(c)]);
  }
  void free(Category c, int64_t bytes) {
    live_[static_cast<int>(c)] -= bytes;
    total_ -= bytes;
  }
  EnginePrediction done() {
    p_.final_live = live_;
    return p_;
  }

 private:
  std::array<int64_t, kNumCategories> live_{};
  int64_t total_ = 0;
  EnginePrediction p_;
};

}  // namespace

EnginePrediction predict_linear_chain(const ChainSpec& spec, const std::vector<Action>& schedule,
                                      const LinearChainBytes& bytes) {
  simulate(spec, schedule);  // validity (throws naming the first bad action)
  const int L = spec.L();
  auto a = [&](int i) { return spec.act_bytes[static_cast<size_t>(i)]; };
  Ledger m;
  for (int i = 1; i <= L; ++i) m.alloc(Category::parameter, bytes.weight);
  m.alloc(Category::other, a(0));

  // Forward sweep up to the loss.
  size_t p = 0;
  for (; schedule[p].kind != ActionKind::loss; ++p) {
    const Action& x = schedule[p];
    if (x.kind == ActionKind::forward) m.alloc(Category::activation, a(x.i));
    if (x.kind == ActionKind::free) m.free(Category::activation, a(x.i));
  }
  ++p;                                          // the loss: x_L stays with the caller
  m.alloc(Category::activation, bytes.scalar);  // sum(x_L)
  m.alloc(Category::gradient, bytes.scalar);    // the backward's seed

  // The schedule's actions between the previous backward and backward(i), run at the unpack.
  auto run_until_backward = [&](int i) {
    for (; p < schedule.size(); ++p) {
      const Action& x = schedule[p];
      if (x.kind == ActionKind::backward) {
        if (x.i == i) return;
        continue;  // an earlier step's marker: its release happened with its node
      }
      if (x.kind == ActionKind::forward) m.alloc(Category::activation, a(x.i));
      if (x.kind == ActionKind::free) m.free(Category::activation, a(x.i));
    }
    TG_ASSERT(false, "schedule has no backward(", i, ")");
  };

  for (int i = L; i >= 1; --i) {
    const bool broadcast_g = i == L;  // g_L is the seed broadcast to x_L's shape
    if (i > 1) {                      // dX = g_i · W_iᵀ
      if (broadcast_g) m.alloc(Category::gradient, a(L));
      m.alloc(Category::gradient, a(i - 1));
      if (broadcast_g) m.free(Category::gradient, a(L));
    }
    run_until_backward(i);  // unpack x_{i-1}
    ++p;
    if (broadcast_g) m.alloc(Category::gradient, a(L));
    m.alloc(Category::gradient, bytes.weight);  // dW_i, kept by AccumulateGrad
    if (broadcast_g) m.free(Category::gradient, a(L));
    // The node's consumed gradient, then its saved input.
    m.free(Category::gradient, broadcast_g ? bytes.scalar : a(i));
    if (i > 1) m.free(Category::activation, a(i - 1));
  }
  return m.done();
}

Plan plan_linear_chain_budget(const ChainSpec& spec, const LinearChainBytes& bytes,
                              int64_t budget_bytes) {
  const BudgetSolver solver(spec);
  const int L = spec.L();
  std::vector<std::vector<Action>> candidates;
  for (const auto& [chain_bytes, flops] : solver.frontier())
    candidates.push_back(solver.schedule(chain_bytes));
  // The other planners' schedules too: the engine's peak often sits at the end of the backward
  // (weight gradients), where a schedule that is poor in chain bytes early on costs nothing.
  for (int C = 0; C < L; ++C) candidates.push_back(naive_schedule(L, C));  // C = 0 keeps only x_0
  for (int C = 1; C <= L; ++C) candidates.push_back(plan_revolve(spec, C).schedule);
  for (int K = 1; K <= L; ++K) candidates.push_back(plan_every(spec, K).schedule);
  const std::vector<Action>* best = nullptr;
  int64_t best_flops = 0, best_peak = 0, smallest = INT64_MAX;
  for (const auto& schedule : candidates) {
    const int64_t peak = predict_linear_chain(spec, schedule, bytes).peak_total;
    smallest = std::min(smallest, peak);
    if (peak > budget_bytes) continue;
    const int64_t flops = simulate(spec, schedule).recompute_flops;
    if (!best || flops < best_flops || (flops == best_flops && peak < best_peak)) {
      best = &schedule;
      best_flops = flops;
      best_peak = peak;
    }
  }
  TG_CHECK(best != nullptr, "budget:", budget_bytes, ": no schedule fits; the smallest feasible ",
           "budget is ", smallest, " bytes (the engine's peak, weights and input included)");
  return make_plan(spec, "budget:" + std::to_string(budget_bytes), *best);
}

}  // namespace tilegrad::remat
