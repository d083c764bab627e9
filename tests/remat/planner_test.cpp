// Tests of the checkpointing planners on the chain model: validity of every planner's schedule, the
// sqrt and revolve guarantees on uniform chains, the budget DP's exactness over its family, and
// budget:BYTES's exactness against an exhaustive search over all valid schedules of small chains.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <iostream>
#include <queue>
#include <string>
#include <vector>

#include "core/error.h"
#include "remat/budget.h"
#include "remat/chain.h"
#include "remat/pareto.h"
#include "remat/plan.h"
#include "remat/simulate.h"
#include "testing.h"

namespace {

using namespace tilegrad::remat;  // NOLINT: the tests read better with the planner names
using tilegrad::Error;

using tgtest::error_of;

using Rng = tgtest::SplitMix64;

ChainSpec random_chain(int L, uint64_t seed, int64_t max_bytes = 9, int64_t max_flops = 9) {
  Rng rng{seed};
  ChainSpec spec;
  for (int i = 0; i <= L; ++i) {
    spec.act_bytes.push_back(rng.in(1, max_bytes));
    spec.fwd_flops.push_back(i == 0 ? 0 : rng.in(0, max_flops));
  }
  spec.validate();
  return spec;
}

// Exhaustive search over every valid schedule (the simulator's rules, transcribed independently):
// Dijkstra on the states (stored set, next step t) whose actions stay within `budget`. Returns the
// least recompute FLOPs, or -1 if nothing fits. For L <= 8 there are at most 2^8 * 10 states.
int64_t exhaustive_min_recompute(const ChainSpec& spec, int64_t budget) {
  const int L = spec.L();
  const auto& a = spec.act_bytes;
  const auto& f = spec.fwd_flops;
  const int T = L + 2;  // t in 0..L+1
  const size_t n_states = (size_t{1} << (L + 1)) * static_cast<size_t>(T);
  std::vector<int64_t> dist(n_states, INT64_MAX);
  using Item = std::pair<int64_t, size_t>;
  std::priority_queue<Item, std::vector<Item>, std::greater<>> pq;
  auto id = [&](uint32_t mask, int t) { return static_cast<size_t>(mask) * T + t; };
  auto push = [&](uint32_t mask, int t, int64_t d) {
    if (d < dist[id(mask, t)]) {
      dist[id(mask, t)] = d;
      pq.emplace(d, id(mask, t));
    }
  };
  push(1u, L + 1, 0);  // bit j: x_j stored; x_0 always
  while (!pq.empty()) {
    auto [d, sid] = pq.top();
    pq.pop();
    if (d != dist[sid]) continue;
    const uint32_t mask = static_cast<uint32_t>(sid / T);
    const int t = static_cast<int>(sid % T);
    if (t == 0) return d - spec.total_fwd_flops();
    int64_t live = t <= L ? a[static_cast<size_t>(t)] : 0;
    for (int j = 0; j <= L; ++j)
      if (mask >> j & 1) live += a[static_cast<size_t>(j)];
    auto has = [&](int j) { return (mask >> j & 1) != 0; };
    for (int i = 1; i < t && i <= L; ++i) {  // forward(i)
      if (has(i - 1) && !has(i) && live + a[static_cast<size_t>(i)] <= budget)
        push(mask | (1u << i), t, d + f[static_cast<size_t>(i)]);
    }
    for (int i = 1; i <= L; ++i)  // free(i)
      if (has(i)) push(mask & ~(1u << i), t, d);
    if (t == L + 1 && has(L) && live + a[static_cast<size_t>(L)] <= budget)  // loss
      push(mask & ~(1u << L), L, d);
    if (t >= 1 && t <= L && has(t - 1) && live + a[static_cast<size_t>(t - 1)] <= budget) {
      const uint32_t next = t - 1 >= 1 ? mask & ~(1u << (t - 1)) : mask;  // backward(t)
      push(next, t - 1, d);
    }
  }
  return -1;
}

// The backward actions of a schedule are exactly L, L-1, ..., 1, after exactly one loss.
void expect_one_backward_each(const ChainSpec& spec, const Plan& p) {
  std::vector<int> bw;
  int losses = 0;
  for (const Action& x : p.schedule) {
    if (x.kind == ActionKind::backward) {
      EXPECT_EQ(losses, 1) << p.policy << ": backward before the loss";
      bw.push_back(x.i);
    }
    if (x.kind == ActionKind::loss) ++losses;
  }
  std::vector<int> want;
  for (int i = spec.L(); i >= 1; --i) want.push_back(i);
  EXPECT_EQ(bw, want) << p.policy;
  EXPECT_EQ(losses, 1) << p.policy;
  EXPECT_GE(p.sim.forward_steps, spec.L()) << p.policy;
}

// Griewank-Walther's count, computed here independently of the library:
// r*l - binom(C+r, C+1), r the smallest integer with binom(C+r, C) >= l.
int64_t choose(int64_t n, int64_t k) {
  if (k < 0 || k > n) return 0;
  k = std::min(k, n - k);
  int64_t r = 1;  // binom(n-k+j, j) after step j; small for the (n, k) used here
  for (int64_t j = 1; j <= k; ++j) r = r * (n - k + j) / j;
  return r;
}
int64_t revolve_formula(int64_t l, int64_t C) {
  int64_t r = 0;
  while (choose(C + r, C) < l) ++r;
  return r * l - choose(C + r, C + 1);
}

TEST(Simulate, CountsBytesByTheRules) {
  // L = 2, a = [1, 2, 4], keep everything. forward(1): 1+2 = 3; forward(2): 1+2+4 = 7;
  // loss: 7 + g_2 (4) = 11; backward(2): x_0 + x_1 + g_2 + g_1 = 1+2+4+2 = 9;
  // backward(1): x_0 + g_1 + g_0 = 1+2+1 = 4.
  ChainSpec spec{{1, 2, 4}, {0, 5, 7}};
  const std::vector<Action> s{Action::forward(1), Action::forward(2), Action::loss(),
                              Action::backward(2), Action::backward(1)};
  const SimResult r = simulate(spec, s);
  EXPECT_EQ(r.peak_bytes, 11);
  EXPECT_EQ(r.peak_act_bytes, 7);
  EXPECT_EQ(r.peak_grad_bytes, 4);
  EXPECT_EQ(r.max_act_bytes, 7);
  EXPECT_EQ(r.max_live_acts, 3);
  EXPECT_EQ(r.forward_steps, 2);
  EXPECT_EQ(r.recomputed_steps, 0);
  EXPECT_EQ(r.recompute_flops, 0);

  // Drop x_1 in the forward and recompute it after the loss: forward(2) is then 1+2+4 = 7 (x_1 is
  // freed only after x_2 exists), loss 1+4+4 = 9, recompute forward(1) with g_2 live: 1+2+4 = 7.
  const std::vector<Action> s2{Action::forward(1), Action::forward(2), Action::free(1),
                               Action::loss(),     Action::forward(1), Action::backward(2),
                               Action::backward(1)};
  const SimResult r2 = simulate(spec, s2);
  EXPECT_EQ(r2.peak_bytes, 9);
  EXPECT_EQ(r2.peak_act_bytes, 5);
  EXPECT_EQ(r2.peak_grad_bytes, 4);
  EXPECT_EQ(r2.recomputed_steps, 1);
  EXPECT_EQ(r2.recompute_flops, 5);
}

TEST(Simulate, RejectsInvalidSchedules) {
  const ChainSpec spec = ChainSpec::uniform_chain(4);
  using A = Action;
  auto err = [&](std::vector<Action> s) { return error_of([&] { simulate(spec, s); }); };
  // Using a freed activation.
  EXPECT_NE(err({A::forward(1), A::forward(2), A::free(2), A::forward(3)})
                .find("action 3 (forward(3)): its input x_2 is not stored"),
            std::string::npos);
  // Skipping a backward.
  EXPECT_NE(err({A::forward(1), A::forward(2), A::forward(3), A::forward(4), A::loss(),
                 A::backward(4), A::backward(2)})
                .find("expected backward(3) next"),
            std::string::npos);
  // Ending early, before the loss, and before the last backward.
  EXPECT_NE(err({A::forward(1)}).find("ends before the loss"), std::string::npos);
  EXPECT_NE(err({A::forward(1), A::forward(2), A::forward(3), A::forward(4), A::loss(),
                 A::backward(4), A::backward(3), A::backward(2)})
                .find("ends before backward(1)"),
            std::string::npos);
  // Backward before the loss; the loss without x_L; freeing x_0; a backward without its input;
  // a forward of an already backpropagated layer; storing twice.
  EXPECT_NE(err({A::forward(1), A::backward(4)}).find("the loss has not run yet"),
            std::string::npos);
  EXPECT_NE(err({A::forward(1), A::loss()}).find("the loss reads x_4, which is not stored"),
            std::string::npos);
  EXPECT_NE(err({A::free(0)}).find("x_0 is the input and is never freed"), std::string::npos);
  EXPECT_NE(err({A::forward(1), A::forward(2), A::forward(3), A::forward(4), A::free(3), A::loss(),
                 A::backward(4)})
                .find("its input x_3 is not stored"),
            std::string::npos);
  EXPECT_NE(
      err({A::forward(1), A::forward(2), A::forward(3), A::forward(4), A::loss(), A::forward(4)})
          .find("already backpropagated"),
      std::string::npos);
  EXPECT_NE(err({A::forward(1), A::forward(1)}).find("x_1 is already stored"), std::string::npos);
  EXPECT_NE(err({A::forward(5)}).find("out of range"), std::string::npos);
  // A malformed spec.
  EXPECT_NE(error_of([] {
              simulate(ChainSpec{{1, 0}, {0, 1}}, {});
            }).find("act_bytes[1]"),
            std::string::npos);
}

TEST(Planner, EverySchedulesValidWithOneBackwardPerLayer) {
  std::vector<ChainSpec> chains;
  for (int L : {1, 2, 3, 5, 8, 16}) chains.push_back(ChainSpec::uniform_chain(L, 3, 2));
  for (uint64_t seed = 1; seed <= 6; ++seed) chains.push_back(random_chain(3 + 2 * seed, seed));
  for (const ChainSpec& spec : chains) {
    const int L = spec.L();
    std::vector<Plan> plans{plan_none(spec), plan_sqrt(spec)};
    for (int K = 1; K <= L + 1; ++K) plans.push_back(plan_every(spec, K));
    for (int C = L == 1 ? 0 : 1; C <= L + 1; ++C) plans.push_back(plan_revolve(spec, C));
    for (int64_t b : {int64_t{0}, int64_t{4}, int64_t{10}}) plans.push_back(plan_chen(spec, b));
    plans.push_back(plan_chen_search(spec, plans[0].sim.peak_bytes));
    const BudgetSolver solver(spec);
    for (const auto& [bytes, flops] : solver.frontier()) {
      plans.push_back(plan_budget(spec, bytes));
      EXPECT_LE(plans.back().sim.recompute_flops, flops);  // the search may beat the DP
      EXPECT_LE(plans.back().sim.peak_bytes, bytes);
    }
    for (const Plan& p : plans) {
      SCOPED_TRACE(p.policy + " L=" + std::to_string(L));
      expect_one_backward_each(spec, p);
      const SimResult again = simulate(spec, p.schedule);  // make_plan simulated it already
      EXPECT_EQ(again.peak_bytes, p.sim.peak_bytes);
      EXPECT_EQ(plan_policy(spec, p.policy).schedule, p.schedule);
    }
    // none is the fastest possible: no recompute, and its peak is the budget DP's keep-all point.
    EXPECT_EQ(plans[0].sim.recomputed_steps, 0);
    EXPECT_EQ(plans[0].sim.peak_bytes, solver.keep_all_bytes());
  }
}

TEST(Planner, SqrtOnUniformChains) {
  for (int L : {16, 64, 256, 1024}) {
    SCOPED_TRACE("L=" + std::to_string(L));
    const ChainSpec spec = ChainSpec::uniform_chain(L);
    const Plan p = plan_sqrt(spec);
    const int K = ceil_sqrt(L);
    EXPECT_GE(int64_t{K} * K, L);
    EXPECT_LT(int64_t{K - 1} * (K - 1), L);
    EXPECT_LE(p.sim.max_live_acts, 2 * K + 1);
    EXPECT_LE(p.sim.recomputed_steps, L);  // at most one extra forward of each layer
    EXPECT_GT(p.sim.recomputed_steps, 0);
    // The segment scheme recomputes each segment but the last once, less its checkpoint.
    const int checkpoints = (L - 1) / K;  // x_K, x_2K, ... below x_L
    EXPECT_EQ(p.sim.recomputed_steps, int64_t{checkpoints} * (K - 1));
  }
}

TEST(Revolve, MatchesGriewankWaltherCountExactly) {
  // Counting (docs/REMAT.md): revolve:C with C slots besides x_0 is Griewank's reversal of l = L
  // steps with s = C snapshots; its advances are the forward actions other than the single
  // forward(L) that feeds the loss. So forward_steps - 1 == r*L - binom(C+r, C+1) exactly, and the
  // recomputed steps (forwards beyond the first L) are that minus (L - 1).
  for (int L : {16, 64, 256, 1024}) {
    for (int C : {1, 2, 3, 4, 5, 8, ceil_sqrt(L), L - 1, L + 3}) {
      if (C == 1 && L > 256) continue;  // L^2/2 forwards; the formula is checked at 256
      SCOPED_TRACE("L=" + std::to_string(L) + " C=" + std::to_string(C));
      const Plan p = plan_revolve(ChainSpec::uniform_chain(L), C);
      const int64_t want = revolve_formula(L, C);
      EXPECT_EQ(p.sim.forward_steps - 1, want);
      EXPECT_EQ(p.sim.recomputed_steps, want - (L - 1));
      EXPECT_EQ(revolve_advances(L, C), want);
      // C slots besides x_0 at rest, plus a forward's output in flight.
      EXPECT_LE(p.sim.max_live_acts, C + 2);
      EXPECT_LE(p.sim.peak_bytes, C + 3);  // and two gradients during a backward step
    }
  }
  EXPECT_EQ(revolve_formula(16, 1), 16 * 15 / 2);  // C = 1: quadratic
  EXPECT_EQ(revolve_formula(16, 15), 15);          // enough slots: no recompute
}

TEST(Revolve, FormulaIsTheMinimumOfTheRecursion) {
  // t(l, c) = min over 1 <= m < l of m + t(l-m, c-1) + t(m, c), t(1, c) = 0: the recursion that
  // plan_revolve instantiates with its binomial split; the closed form must be its minimum.
  const int maxl = 80, maxc = 6;
  std::vector<std::vector<int64_t>> t(maxc + 1, std::vector<int64_t>(maxl + 1, INT64_MAX / 4));
  for (int c = 0; c <= maxc; ++c) t[c][1] = 0;
  for (int c = 1; c <= maxc; ++c)
    for (int l = 2; l <= maxl; ++l)
      for (int m = 1; m < l; ++m) t[c][l] = std::min(t[c][l], m + t[c - 1][l - m] + t[c][m]);
  for (int c = 1; c <= maxc; ++c)
    for (int l = 1; l <= maxl; ++l) {
      EXPECT_EQ(t[c][l], revolve_formula(l, c)) << "l=" << l << " c=" << c;
      EXPECT_EQ(plan_revolve(ChainSpec::uniform_chain(l), c).sim.forward_steps - 1, t[c][l])
          << "l=" << l << " c=" << c;
    }
}

TEST(Revolve, InfeasibleSlotCount) {
  const std::string msg = error_of([] { plan_revolve(ChainSpec::uniform_chain(2), 0); });
  EXPECT_NE(msg.find("revolve:0: infeasible for L = 2"), std::string::npos) << msg;
  EXPECT_NE(msg.find("C >= 1"), std::string::npos) << msg;
  const Plan one = plan_revolve(ChainSpec::uniform_chain(1), 0);  // L = 1 needs no slot
  EXPECT_EQ(one.sim.forward_steps, 1);
  EXPECT_NE(error_of([] { plan_revolve(ChainSpec::uniform_chain(3), -1); }).find("C must be >= 0"),
            std::string::npos);
}

// Every schedule of the DP's family, built independently by explicit enumeration: for segment (s,
// t) with x_s stored and g_t live, either step t directly (t = s+1), or advance to a checkpoint k,
// then every schedule of (k, t), then every schedule of (s, k). There are Catalan(L) of them.
std::vector<std::vector<Action>> nested_schedules(int s, int t, int L) {
  if (t == s + 1) return {{t == L + 1 ? Action::loss() : Action::backward(t)}};
  std::vector<std::vector<Action>> all;
  for (int k = s + 1; k < t; ++k) {
    std::vector<Action> adv;
    for (int j = s + 1; j <= k; ++j) {
      adv.push_back(Action::forward(j));
      if (j - 1 > s) adv.push_back(Action::free(j - 1));
    }
    const auto right = nested_schedules(k, t, L);
    const auto left = nested_schedules(s, k, L);
    for (const auto& r : right)
      for (const auto& l : left) {
        std::vector<Action> x = adv;
        x.insert(x.end(), r.begin(), r.end());
        x.insert(x.end(), l.begin(), l.end());
        all.push_back(std::move(x));
      }
  }
  return all;
}

TEST(PlannerBudget, OptimalOverItsFamilyByBruteForce) {
  // Random non-uniform sizes and costs (fixed seeds), every budget from below the minimum to above
  // keep-all: the DP equals the best simulated schedule among all nested schedules.
  int checked = 0;
  for (uint64_t seed = 100; seed < 140; ++seed) {
    const int L = 1 + static_cast<int>(seed % 8);
    const ChainSpec spec = random_chain(L, seed, seed % 3 == 0 ? 3 : 9, seed % 4 == 0 ? 1 : 9);
    std::vector<SimResult> family;
    for (const auto& x : nested_schedules(0, L + 1, L)) family.push_back(simulate(spec, x));
    const BudgetSolver solver(spec);
    for (int64_t M = 0; M <= solver.keep_all_bytes() + 2; ++M) {
      SCOPED_TRACE("seed=" + std::to_string(seed) + " L=" + std::to_string(L) +
                   " M=" + std::to_string(M));
      int64_t want = -1;
      for (const SimResult& r : family)
        if (r.peak_bytes <= M && (want < 0 || r.recompute_flops < want)) want = r.recompute_flops;
      ASSERT_EQ(solver.min_recompute_flops(M), want);
      if (want < 0) continue;
      const SimResult r = simulate(spec, solver.schedule(M));  // the DP's own schedule
      EXPECT_LE(r.peak_bytes, M);
      EXPECT_EQ(r.recompute_flops, want);
      ++checked;
    }
  }
  EXPECT_GT(checked, 300);
}

TEST(PlannerBudget, AgainstAllSchedulesByExhaustiveSearch) {
  // budget:BYTES equals the optimum over all valid schedules (the exhaustive search above, written
  // independently) at every budget, and says it is proven. The nested DP alone is never below that
  // optimum and has the true smallest feasible budget, but is above it where a schedule drops a
  // checkpoint after using it and recomputes it later (docs/REMAT.md); seed 103 at M = 30 is one.
  int gaps = 0, instances = 0;
  for (uint64_t seed = 100; seed < 140; ++seed) {
    const int L = 1 + static_cast<int>(seed % 8);
    const ChainSpec spec = random_chain(L, seed, seed % 3 == 0 ? 3 : 9, seed % 4 == 0 ? 1 : 9);
    const BudgetSolver solver(spec);
    EXPECT_EQ(exhaustive_min_recompute(spec, solver.min_feasible_bytes() - 1), -1);
    const ExactSearchResult below = exact_search(solver, solver.min_feasible_bytes() - 1);
    EXPECT_TRUE(below.finished);
    EXPECT_FALSE(below.feasible);
    for (int64_t M = solver.min_feasible_bytes(); M <= solver.keep_all_bytes(); ++M) {
      SCOPED_TRACE("seed=" + std::to_string(seed) + " M=" + std::to_string(M));
      const int64_t best = exhaustive_min_recompute(spec, M);
      const int64_t dp = solver.min_recompute_flops(M);
      ASSERT_GE(best, 0);
      EXPECT_GE(dp, best);
      const Plan p = plan_budget(spec, M);
      EXPECT_TRUE(p.exact_over_all_schedules);
      EXPECT_EQ(p.sim.recompute_flops, best);
      EXPECT_LE(p.sim.peak_bytes, M);
      ++instances;
      gaps += dp > best;
      if (seed == 103 && M == 30) {
        EXPECT_EQ(best, 26);
        EXPECT_EQ(dp, 41);
      }
    }
  }
  EXPECT_EQ(instances, 370);
  EXPECT_EQ(gaps, 18);  // where the nested DP alone would be above the optimum
  for (int L = 1; L <= 9; ++L) {
    const ChainSpec spec = ChainSpec::uniform_chain(L, 2, 3);
    const BudgetSolver solver(spec);
    for (int64_t M = 0; M <= solver.keep_all_bytes(); ++M) {
      const int64_t best = exhaustive_min_recompute(spec, M);
      EXPECT_EQ(solver.min_recompute_flops(M), best) << "L=" << L << " M=" << M;
      const ExactSearchResult ex = exact_search(solver, M);
      EXPECT_TRUE(ex.finished);
      EXPECT_EQ(ex.recompute_flops, best) << "L=" << L << " M=" << M;
    }
  }
}

TEST(PlannerBudget, ExactSearchOnLargerChains) {
  // Beyond the exhaustive search's reach: the proven optimum is never above the DP, its schedule
  // simulates to what it claims within the budget, and a search cut short keeps the DP's schedule
  // and says so.
  int proven = 0, improved = 0, instances = 0;
  for (uint64_t seed = 300; seed < 304; ++seed) {
    const ChainSpec spec = random_chain(16, seed);
    const BudgetSolver solver(spec);
    for (int64_t M = solver.min_feasible_bytes(); M <= solver.keep_all_bytes(); M += 7) {
      const Plan p = plan_budget(spec, M);
      EXPECT_LE(p.sim.peak_bytes, M);
      EXPECT_LE(p.sim.recompute_flops, solver.min_recompute_flops(M));
      proven += p.exact_over_all_schedules;
      improved += p.sim.recompute_flops < solver.min_recompute_flops(M);
      ++instances;
    }
  }
  EXPECT_EQ(proven, instances);  // these chains are within the search's reach at every budget
  EXPECT_GT(improved, 0);
  std::cout << "[ remat ] L = 16: " << instances << " budgets, proven optimal " << proven
            << ", below the DP " << improved << "\n";
  const ChainSpec spec = random_chain(16, 300);
  const BudgetSolver solver(spec);
  const ExactSearchResult cut = exact_search(solver, solver.min_feasible_bytes(), 1);
  EXPECT_FALSE(cut.finished);
  EXPECT_EQ(cut.recompute_flops, solver.min_recompute_flops(solver.min_feasible_bytes()));
  EXPECT_EQ(cut.schedule, solver.schedule(solver.min_feasible_bytes()));
}

TEST(PlannerBudget, UniformChainsWithAUnitAboveOne) {
  // act_bytes with gcd 4096: the DP works in units of 4096 bytes, and budgets between multiples
  // round down; the family's brute force agrees at every 1024-byte step.
  ChainSpec spec = random_chain(6, 7);
  for (auto& a : spec.act_bytes) a *= 4096;
  const BudgetSolver solver(spec);
  EXPECT_EQ(solver.unit() % 4096, 0);
  std::vector<SimResult> family;
  for (const auto& x : nested_schedules(0, 7, 6)) family.push_back(simulate(spec, x));
  for (int64_t M = solver.min_feasible_bytes() - 4096; M <= solver.keep_all_bytes(); M += 1024) {
    int64_t want = -1;
    for (const SimResult& r : family)
      if (r.peak_bytes <= M && (want < 0 || r.recompute_flops < want)) want = r.recompute_flops;
    EXPECT_EQ(solver.min_recompute_flops(M), want) << M;
  }
}

TEST(PlannerBudget, InfeasibleBudgetNamesTheSmallestFeasible) {
  for (uint64_t seed : {3u, 11u, 29u}) {
    const ChainSpec spec = random_chain(5, seed);
    const BudgetSolver solver(spec);
    const int64_t m = solver.min_feasible_bytes();
    EXPECT_EQ(exhaustive_min_recompute(spec, m - 1), -1);
    EXPECT_GE(exhaustive_min_recompute(spec, m), 0);
    bool returned = false;
    const std::string msg = error_of([&] {
      plan_budget(spec, m - 1);
      returned = true;
    });
    EXPECT_FALSE(returned);
    EXPECT_NE(msg.find("smallest feasible budget is " + std::to_string(m) + " bytes"),
              std::string::npos)
        << msg;
    EXPECT_EQ(solver.min_recompute_flops(m - 1), -1);
    EXPECT_NO_THROW(plan_budget(spec, m));
  }
  // Uniform chains need 4 activations' worth at least (from L = 2): during a recompute forward
  // x_0, x_{j-1}, x_j and g are live; during B_i x_0, x_{i-1}, g_i and g_{i-1}.
  EXPECT_EQ(BudgetSolver(ChainSpec::uniform_chain(64, 10)).min_feasible_bytes(), 40);
  EXPECT_EQ(BudgetSolver(ChainSpec::uniform_chain(1, 10)).min_feasible_bytes(), 30);
}

TEST(PlannerBudget, FrontierNeverWorseThanSegmentsOrRevolve) {
  for (int L : {16, 64, 256, 1024}) {
    SCOPED_TRACE("L=" + std::to_string(L));
    const ChainSpec spec = ChainSpec::uniform_chain(L);
    const BudgetSolver solver(spec);
    std::vector<Plan> plans{plan_sqrt(spec), plan_none(spec)};
    for (int K = 1; K <= L; ++K) plans.push_back(plan_every(spec, K));
    for (const Plan& p : plans) {
      const int64_t best = solver.min_recompute_flops(p.sim.peak_bytes);
      ASSERT_GE(best, 0) << p.policy;
      EXPECT_LE(best, p.sim.recompute_flops) << p.policy;
    }
    // Revolve is optimal for its slot count, and the DP at revolve's peak finds the same count.
    for (int C : {2, 3, 4, 8, ceil_sqrt(L)}) {
      const Plan p = plan_revolve(spec, C);
      EXPECT_EQ(solver.min_recompute_flops(p.sim.peak_bytes), p.sim.recompute_flops) << p.policy;
    }
  }
}

TEST(PlannerBudget, NeverWorseThanChenOnNonUniformChains) {
  for (uint64_t seed = 200; seed < 206; ++seed) {
    const ChainSpec spec = random_chain(24, seed, 16, 20);
    const BudgetSolver solver(spec);
    const int64_t keep_all = solver.keep_all_bytes();
    for (int64_t M = solver.min_feasible_bytes(); M <= keep_all; M += 7) {
      Plan chen;
      try {
        chen = plan_chen_search(spec, M);
      } catch (const Error&) {
        continue;  // no greedy threshold fits this budget
      }
      EXPECT_LE(chen.sim.peak_bytes, M);
      EXPECT_LE(solver.min_recompute_flops(M), chen.sim.recompute_flops) << "M=" << M;
    }
  }
}

TEST(Planner, ChenGreedyPlacement) {
  // Running size exceeds b = 2 at x_3, then again at x_6 and x_9 (x_L is never a candidate).
  EXPECT_EQ(chen_checkpoints(ChainSpec::uniform_chain(10), 2), (std::vector<int>{3, 6, 9}));
  EXPECT_EQ(chen_checkpoints(ChainSpec::uniform_chain(10), 100), (std::vector<int>{}));
  const std::string msg = error_of([] { plan_chen_search(ChainSpec::uniform_chain(8), 2); });
  EXPECT_NE(msg.find("smallest peak it reaches"), std::string::npos) << msg;
}

TEST(Planner, PolicyNames) {
  const ChainSpec spec = ChainSpec::uniform_chain(8);
  EXPECT_EQ(plan_policy(spec, "every:3").policy, "every:3");
  EXPECT_EQ(plan_policy(spec, "sqrt").schedule, plan_every(spec, 3).schedule);
  EXPECT_NE(error_of([&] { plan_policy(spec, "every:x"); }).find("expected an integer"),
            std::string::npos);
  EXPECT_NE(error_of([&] { plan_policy(spec, "lru"); }).find("is unknown"), std::string::npos);
  EXPECT_NE(error_of([&] { plan_every(spec, 0); }).find("K must be >= 1"), std::string::npos);
}

TEST(Planner, ParetoFrontier) {
  std::vector<ParetoPoint> pts{{"a", 10, 5, 0, false}, {"b", 10, 7, 0, false},
                               {"c", 12, 5, 0, false}, {"d", 8, 9, 0, false},
                               {"e", 8, 9, 0, false},  {"f", 14, 0, 0, false}};
  mark_dominated(pts);
  std::vector<bool> dom;
  for (const auto& p : pts) dom.push_back(p.dominated);
  EXPECT_EQ(dom, (std::vector<bool>{false, true, true, false, false, false}));

  const ChainSpec spec = random_chain(12, 5);
  ParetoOptions opt;
  opt.simulate_budget = true;
  const std::vector<ParetoPoint> all = pareto_points(spec, opt);
  const BudgetSolver solver(spec);
  for (const auto& p : all) {
    // The exact planner's points are never dominated, and nothing beats it at its own peak.
    if (p.policy.rfind("budget:", 0) == 0) {
      EXPECT_FALSE(p.dominated) << p.policy;
    }
    EXPECT_LE(solver.min_recompute_flops(p.peak_bytes), p.recompute_flops) << p.policy;
    EXPECT_GE(p.recomputed_steps, 0) << p.policy;
  }
}

}  // namespace
