// The `tilegrad plan chain` computation (see plan_chain.h): the policies tried, the rows, the
// Pareto marks, the choice under a budget, and the byte-count parser of the command line.
#include "apps/plan_chain.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <numeric>
#include <set>

#include "core/error.h"
#include "remat/budget.h"
#include "remat/pareto.h"
#include "remat/plan.h"

namespace tilegrad::apps {

namespace {

// Exact arithmetic for the byte parser (a GCC/Clang extension; -Wpedantic needs the marker).
__extension__ typedef __int128 i128;

int64_t floor_sqrt(int64_t n) {
  int64_t r = static_cast<int64_t>(std::sqrt(static_cast<double>(n)));
  while (r * r > n) --r;
  while ((r + 1) * (r + 1) <= n) ++r;
  return r;
}

}  // namespace

std::vector<std::string> chain_policies(int L, int64_t act_bytes, int64_t min_feasible_bytes,
                                        int64_t keep_all_bytes, std::optional<int64_t> budget) {
  std::vector<std::string> names{"none", "sqrt"};
  // Powers of two: a log-spaced sweep that keeps the table readable for any L; K or C >= L-1
  // would only repeat `none`.
  for (int K = 2; K < L; K *= 2) names.push_back("every:" + std::to_string(K));
  // Chen et al.'s threshold for a sqrt(L) placement: with b = floor(sqrt(L)) activations' worth,
  // the greedy checkpoints every floor(sqrt(L)) + 1 layers (L = 1 has no x to checkpoint).
  if (L > 1) names.push_back("chen:" + std::to_string(floor_sqrt(L) * act_bytes));
  for (int C = 1; C < L - 1; C *= 2) names.push_back("revolve:" + std::to_string(C));
  if (L <= 2) names.push_back("revolve:" + std::to_string(L - 1));
  // Budgets on a geometric grid from the smallest feasible one to the keep-all peak, in whole
  // activations (the budget planner's unit on a uniform chain), so the grid is dense where the
  // recompute changes fastest.
  std::set<int64_t> budgets;
  const double lo = static_cast<double>(min_feasible_bytes / act_bytes);
  const double hi = static_cast<double>(keep_all_bytes / act_bytes);
  constexpr int kGrid = 12;
  for (int j = 0; j < kGrid; ++j) {
    const double units = lo * std::pow(hi / lo, static_cast<double>(j) / (kGrid - 1));
    budgets.insert(std::clamp(static_cast<int64_t>(std::llround(units)) * act_bytes,
                              min_feasible_bytes, keep_all_bytes));
  }
  if (budget && *budget >= min_feasible_bytes) budgets.insert(std::min(*budget, keep_all_bytes));
  for (int64_t b : budgets) names.push_back("budget:" + std::to_string(b));
  return names;
}

PlanChainResult plan_chain(const PlanChainConfig& config) {
  TG_CHECK(config.layers >= 1, "plan chain: --layers must be at least 1, got ", config.layers);
  TG_CHECK(config.act_bytes >= 1, "plan chain: the activation size must be at least 1 byte, got ",
           config.act_bytes);
  TG_CHECK(config.layer_flops >= 0, "plan chain: the FLOPs per layer must be >= 0, got ",
           config.layer_flops);
  TG_CHECK(!config.budget || *config.budget >= 0, "plan chain: --budget must be >= 0, got ",
           config.budget.value_or(0));

  PlanChainResult r;
  r.config = config;
  r.spec = remat::ChainSpec::uniform_chain(config.layers, config.act_bytes, config.layer_flops);
  r.spec.validate();

  // One DP solver for every budget row: it solves all budgets at once, where plan_budget would
  // rebuild it per row. The rows are the DP's schedules; plan_budget can improve on them for
  // non-uniform chains by its exact search (budget.h), but this command plans uniform chains, where
  // that search has never found a better schedule (docs/REMAT.md).
  const remat::BudgetSolver solver(r.spec);
  r.min_feasible_bytes = solver.min_feasible_bytes();
  r.keep_all_bytes = solver.keep_all_bytes();
  // Checked before any planning, so that an impossible budget fails at once with the figure the
  // user needs.
  TG_CHECK(!config.budget || *config.budget >= r.min_feasible_bytes, "plan chain: no policy fits ",
           "the budget of ", config.budget.value_or(0), " bytes; the smallest feasible budget is ",
           r.min_feasible_bytes, " bytes");

  for (const std::string& name :
       chain_policies(config.layers, config.act_bytes, r.min_feasible_bytes, r.keep_all_bytes,
                      config.budget)) {
    remat::Plan p;
    if (name.rfind("budget:", 0) == 0) {
      const int64_t bytes = std::stoll(name.substr(7));
      p = remat::make_plan(r.spec, name, solver.schedule(bytes));
    } else {
      p = remat::plan_policy(r.spec, name);
    }
    PlanRow row;
    row.policy = name;
    row.peak_bytes = p.sim.peak_bytes;
    row.recomputed_steps = p.sim.recomputed_steps;
    row.recompute_flops = p.sim.recompute_flops;
    row.fits = config.budget && row.peak_bytes <= *config.budget;
    r.rows.push_back(std::move(row));
  }

  // Dominance by the Pareto helper's rule, so the marks here and there cannot disagree.
  std::vector<remat::ParetoPoint> points;
  for (const PlanRow& row : r.rows) {
    points.push_back({row.policy, row.peak_bytes, row.recompute_flops, row.recomputed_steps});
  }
  remat::mark_dominated(points);
  for (size_t i = 0; i < r.rows.size(); ++i) r.rows[i].pareto = !points[i].dominated;

  std::stable_sort(r.rows.begin(), r.rows.end(), [](const PlanRow& a, const PlanRow& b) {
    if (a.peak_bytes != b.peak_bytes) return a.peak_bytes < b.peak_bytes;
    if (a.recompute_flops != b.recompute_flops) return a.recompute_flops < b.recompute_flops;
    return a.policy < b.policy;
  });

  if (config.budget) {
    for (size_t i = 0; i < r.rows.size(); ++i) {
      const PlanRow& row = r.rows[i];
      if (!row.fits) continue;
      // Rows are sorted by peak, so the first row with the least recompute has the lowest peak.
      if (!r.best || row.recompute_flops < r.rows[*r.best].recompute_flops) r.best = i;
    }
    // The budget row for the given budget always fits once the budget is feasible.
    TG_ASSERT(r.best.has_value(), "plan chain: no row fits a feasible budget");
  }
  return r;
}

int64_t parse_bytes(std::string_view text, std::string_view what) {
  const std::string shown(text);
  size_t i = 0;
  // Digits, an optional fraction, then a unit; kept as an exact fraction digits / 10^frac so that
  // "1.5GiB" is exact and "0.3B" is refused rather than rounded.
  i128 digits = 0;
  int frac = 0;
  int ndigits = 0;
  bool dot = false;
  for (; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '.' && !dot) {
      dot = true;
      continue;
    }
    if (!std::isdigit(static_cast<unsigned char>(c))) break;
    // 24 significant digits times the largest unit (2^40) stays far below the int128 range.
    TG_CHECK(++ndigits <= 24, what, ": '", shown, "' has too many digits");
    digits = digits * 10 + (c - '0');
    if (dot) ++frac;
  }
  TG_CHECK(ndigits > 0, what,
           ": expected a number of bytes such as 1200000, 512MB or 1.5GiB, got '", shown, "'");
  std::string unit;
  for (; i < text.size(); ++i) {
    unit.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(text[i]))));
  }
  struct Unit {
    const char* name;
    int64_t factor;
  };
  static constexpr Unit kUnits[] = {
      {"", 1},
      {"b", 1},
      {"kb", 1000},
      {"mb", 1000 * 1000},
      {"gb", 1000 * 1000 * 1000},
      {"tb", 1000LL * 1000 * 1000 * 1000},
      {"kib", 1LL << 10},
      {"mib", 1LL << 20},
      {"gib", 1LL << 30},
      {"tib", 1LL << 40},
  };
  const Unit* found = nullptr;
  for (const Unit& u : kUnits) {
    if (unit == u.name) found = &u;
  }
  TG_CHECK(found != nullptr, what, ": unknown unit '", unit, "' in '", shown,
           "'; expected B, kB, MB, GB, TB, KiB, MiB, GiB or TiB");
  i128 scale = 1;
  for (int k = 0; k < frac; ++k) scale *= 10;
  const i128 numerator = digits * found->factor;
  TG_CHECK(numerator % scale == 0, what, ": '", shown, "' is not a whole number of bytes");
  const i128 bytes = numerator / scale;
  TG_CHECK(bytes <= INT64_MAX, what, ": '", shown, "' is too large");
  return static_cast<int64_t>(bytes);
}

}  // namespace tilegrad::apps
