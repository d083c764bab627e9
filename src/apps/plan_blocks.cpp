// `tilegrad plan blocks` (plan_blocks.h): the block model's policies and its exact DP, as a table
// sorted by peak or one JSON object.
#include "apps/plan_blocks.h"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include "apps/cli_util.h"
#include "apps/plan_chain.h"
#include "core/dtype.h"
#include "core/error.h"
#include "remat/pareto.h"

namespace tilegrad::apps {

remat::BlockChainSpec plan_blocks_spec(const PlanBlocksConfig& c) {
  TG_CHECK(c.blocks >= 1, "plan blocks: --blocks must be at least 1, got ", c.blocks);
  TG_CHECK(c.kind == "mlp" || c.kind == "attention" || c.kind == "transformer",
           "plan blocks: --kind must be mlp, attention or transformer, got '", c.kind, "'");
  TG_CHECK(c.act_bytes >= 1 && c.elements >= 1 && c.weight_bytes >= 0 && c.matmul_flops >= 0 &&
               c.ratio >= 1 && c.score_ratio >= 1,
           "plan blocks: sizes must be positive");
  const remat::BlockChainSpec mlp =
      remat::BlockChainSpec::mlp_blocks(1, c.act_bytes, c.matmul_flops, c.ratio);
  const remat::BlockChainSpec attn =
      remat::BlockChainSpec::attention_blocks(1, c.act_bytes, c.matmul_flops, c.score_ratio);
  std::vector<remat::BlockOp> mlp_block = mlp.blocks[0];
  // The MLP's two weights are [dim, ratio·dim] and [ratio·dim, dim]: their gradients stay live
  // from their backward step to the end.
  mlp_block[0].param_grad_bytes = c.ratio * c.weight_bytes;
  mlp_block[2].param_grad_bytes = c.ratio * c.weight_bytes;
  // Gelu costs 8 FLOPs per element (unary_flops_per_element), softmax 5 (softmax_cost).
  mlp_block[1].flops = 8 * c.ratio * c.elements;
  std::vector<remat::BlockOp> attn_block = attn.blocks[0];
  attn_block[1].flops = 5 * c.score_ratio * c.elements;
  remat::BlockChainSpec s;
  s.input_bytes = c.act_bytes;
  for (int b = 0; b < c.blocks; ++b) {
    const bool attention = c.kind == "attention" || (c.kind == "transformer" && b % 2 == 0);
    s.blocks.push_back(attention ? attn_block : mlp_block);
  }
  return s;
}

namespace {

remat::BlockPolicy named_policy(const remat::BlockChainSpec& spec, const std::string& name) {
  const int N = spec.num_blocks();
  remat::BlockPolicy p;
  p.checkpoint.assign(static_cast<size_t>(N), 0);
  p.save.assign(static_cast<size_t>(N), 0);
  p.checkpoint[0] = 1;
  const bool selective = name.find("selective") != std::string::npos;
  if (name == "checkpoint-blocks" || name == "checkpoint-blocks+selective")
    std::fill(p.checkpoint.begin(), p.checkpoint.end(), 1);
  if (name == "sqrt") {
    const int K = static_cast<int>(std::ceil(std::sqrt(static_cast<double>(N))));
    for (int b = 0; b < N; b += K) p.checkpoint[static_cast<size_t>(b)] = 1;
  }
  for (int b = 0; b < N; ++b) {
    const auto& ops = spec.blocks[static_cast<size_t>(b)];
    for (size_t j = 0; j + 1 < ops.size(); ++j) {
      const bool is_matmul = ops[j].name.rfind("matmul", 0) == 0;
      if (name == "keep-all" || (selective && is_matmul)) p.save[static_cast<size_t>(b)] |= 1u << j;
    }
  }
  return p;
}

}  // namespace

PlanBlocksResult plan_blocks_table(const PlanBlocksConfig& config) {
  PlanBlocksResult r;
  r.config = config;
  r.spec = plan_blocks_spec(config);
  TG_CHECK(!config.budget || *config.budget >= 0, "plan blocks: --budget must be >= 0");
  r.min_feasible_bytes = remat::blocks_min_feasible_bytes(r.spec);
  TG_CHECK(!config.budget || *config.budget >= r.min_feasible_bytes, "plan blocks: no policy fits ",
           "the budget of ", config.budget.value_or(0), " bytes; the smallest feasible budget is ",
           r.min_feasible_bytes, " bytes");

  auto add = [&](std::string name, const remat::BlockPolicy& policy) {
    PlanBlocksRow row;
    row.policy = std::move(name);
    row.choice = policy;
    row.sim = remat::simulate_blocks(r.spec, remat::block_schedule(r.spec, policy));
    row.recomputed_ops = row.sim.computes - r.spec.num_ops();
    row.fits = config.budget && row.sim.peak_bytes <= *config.budget;
    r.rows.push_back(std::move(row));
  };
  for (const char* name :
       {"keep-all", "checkpoint-blocks", "sqrt", "selective", "checkpoint-blocks+selective"})
    add(name, named_policy(r.spec, name));
  r.keep_all_bytes = r.rows[0].sim.peak_bytes;

  // The DP on a geometric grid of budgets, plus the given one.
  std::set<int64_t> budgets;
  const double lo = static_cast<double>(r.min_feasible_bytes);
  const double hi = static_cast<double>(std::max(r.keep_all_bytes, r.min_feasible_bytes));
  for (int i = 0; i < 10; ++i)
    budgets.insert(static_cast<int64_t>(std::llround(lo * std::pow(hi / lo, i / 9.0))));
  if (config.budget) budgets.insert(*config.budget);
  // Each budget's optimum is planned at the least budget with the same optimal recompute, so that
  // among equally cheap plans the row shows the one with the least peak (a Pareto point); budgets
  // that give an already listed plan add no row (unless it is the user's).
  std::set<int64_t> planned;
  for (int64_t b : budgets) {
    const int64_t v = remat::blocks_min_recompute(r.spec, b);
    int64_t lo_b = r.min_feasible_bytes, hi_b = b;
    while (lo_b < hi_b) {
      const int64_t mid = lo_b + (hi_b - lo_b) / 2;
      if (remat::blocks_min_recompute(r.spec, mid) == v)
        hi_b = mid;
      else
        lo_b = mid + 1;
    }
    const bool users = config.budget && b == *config.budget;
    if (!planned.insert(lo_b).second && !users) continue;
    add("budget:" + std::to_string(b), remat::plan_blocks(r.spec, lo_b).policy);
  }

  std::vector<remat::ParetoPoint> points;
  for (const PlanBlocksRow& row : r.rows)
    points.push_back({row.policy, row.sim.peak_bytes, row.sim.recompute_flops, row.recomputed_ops});
  remat::mark_dominated(points);
  for (size_t i = 0; i < r.rows.size(); ++i) r.rows[i].pareto = !points[i].dominated;
  std::stable_sort(r.rows.begin(), r.rows.end(), [](const auto& a, const auto& b) {
    if (a.sim.peak_bytes != b.sim.peak_bytes) return a.sim.peak_bytes < b.sim.peak_bytes;
    if (a.sim.recompute_flops != b.sim.recompute_flops)
      return a.sim.recompute_flops < b.sim.recompute_flops;
    return a.policy < b.policy;
  });
  if (config.budget) {
    const std::string want = "budget:" + std::to_string(*config.budget);
    for (size_t i = 0; i < r.rows.size(); ++i)
      if (r.rows[i].policy == want) r.best = i;
  }
  return r;
}

namespace {

struct Options {
  std::string kind = "transformer";
  int blocks = 0;
  int64_t batch = 4096;  // tokens: batch × sequence
  int64_t dim = 1024;
  std::string dtype = "bf16";
  int ratio = 4;
  int score_ratio = 2;
  std::string budget;
  bool json = false;
};

// Per block: "C" when its input is a checkpoint, then the ops whose outputs are saved.
std::string describe(const remat::BlockChainSpec& spec, const remat::BlockPolicy& p) {
  std::string s;
  for (size_t b = 0; b < p.checkpoint.size(); ++b) {
    if (!s.empty()) s += ' ';
    s += p.checkpoint[b] ? "C" : "-";
    const auto& ops = spec.blocks[b];
    for (size_t j = 0; j + 1 < ops.size(); ++j) s += (p.save[b] >> j & 1u) ? "s" : ".";
  }
  return s;
}

nlohmann::ordered_json row_json(const PlanBlocksResult& r, const PlanBlocksRow& row) {
  nlohmann::ordered_json j = {{"policy", row.policy},
                              {"layout", describe(r.spec, row.choice)},
                              {"peak_bytes", row.sim.peak_bytes},
                              {"peak_activation_bytes", row.sim.peak_act_bytes},
                              {"peak_gradient_bytes", row.sim.peak_grad_bytes},
                              {"recomputed_ops", row.recomputed_ops},
                              {"recompute_flops", row.sim.recompute_flops},
                              {"pareto", row.pareto}};
  if (r.config.budget) j["fits"] = row.fits;
  return j;
}

void run(const Options& o) {
  PlanBlocksConfig c;
  c.kind = o.kind;
  c.blocks = o.blocks;
  const int64_t item = static_cast<int64_t>(dtype_size(parse_dtype(o.dtype)));
  int64_t flops = 0;
  const bool overflow = __builtin_mul_overflow(o.batch, o.dim, &flops) ||
                        __builtin_mul_overflow(flops, o.dim, &flops) ||
                        __builtin_mul_overflow(flops, int64_t{64}, &flops);
  TG_CHECK(!overflow, "plan blocks: --batch ", o.batch, " and --dim ", o.dim, " are too large");
  c.elements = o.batch * o.dim;
  c.act_bytes = c.elements * item;
  c.weight_bytes = o.dim * o.dim * item;
  c.matmul_flops = 2 * o.batch * o.dim * o.dim;
  c.ratio = o.ratio;
  c.score_ratio = o.score_ratio;
  if (!o.budget.empty()) c.budget = parse_bytes(o.budget, "--budget");
  const PlanBlocksResult r = plan_blocks_table(c);
  if (o.json) {
    nlohmann::ordered_json j;
    j["config"] = {{"kind", c.kind},
                   {"blocks", c.blocks},
                   {"batch", o.batch},
                   {"dim", o.dim},
                   {"dtype", o.dtype},
                   {"ratio", c.ratio},
                   {"score_ratio", c.score_ratio},
                   {"budget_bytes", c.budget ? nlohmann::ordered_json(*c.budget) : nullptr}};
    j["min_feasible_bytes"] = r.min_feasible_bytes;
    j["keep_all_bytes"] = r.keep_all_bytes;
    j["rows"] = nlohmann::ordered_json::array();
    for (const auto& row : r.rows) j["rows"].push_back(row_json(r, row));
    j["best"] = r.best ? row_json(r, r.rows[*r.best]) : nullptr;
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  std::printf("tilegrad plan blocks: %d %s blocks, activations [%lld, %lld] %s (%lld bytes)\n",
              c.blocks, c.kind.c_str(), ll(o.batch), ll(o.dim), o.dtype.c_str(), ll(c.act_bytes));
  std::printf(
      "  block model (docs/REMAT.md): peak = input + stored outputs + live gradients (activation "
      "and weight); 1 MB = 10^6 bytes\n");
  std::printf("  smallest feasible peak %lld bytes (%.3f MB); keep-all %lld bytes (%.3f MB)\n",
              ll(r.min_feasible_bytes), mb(r.min_feasible_bytes), ll(r.keep_all_bytes),
              mb(r.keep_all_bytes));
  std::printf(
      "  layout per block: C = checkpoint, then s (saved) or . (recomputed) per inner op\n\n");
  std::printf("%-30s %14s %10s %10s %18s %6s%s  %s\n", "policy", "peak bytes", "peak MB",
              "recomputed", "recompute FLOPs", "pareto", c.budget ? "   fits" : "", "layout");
  for (const auto& row : r.rows) {
    std::printf("%-30s %14lld %10.3f %10lld %18lld %6s%s  %s\n", row.policy.c_str(),
                ll(row.sim.peak_bytes), mb(row.sim.peak_bytes), ll(row.recomputed_ops),
                ll(row.sim.recompute_flops), row.pareto ? "yes" : "no",
                c.budget ? (row.fits ? "    yes" : "     no") : "",
                describe(r.spec, row.choice).c_str());
  }
  if (r.best) {
    const auto& b = r.rows[*r.best];
    std::printf("\nbest within the budget (exact DP): %s, peak %lld bytes, %lld recompute FLOPs\n",
                describe(r.spec, b.choice).c_str(), ll(b.sim.peak_bytes),
                ll(b.sim.recompute_flops));
  }
}

}  // namespace

void register_plan_blocks(CLI::App& plan) {
  auto o = std::make_shared<Options>();
  CLI::App* cmd = plan.add_subcommand(
      "blocks",
      "Checkpointing and selective recomputation on transformer-like blocks: every policy's "
      "predicted peak and recompute, and the exact optimum under a budget");
  cmd->add_option("--blocks", o->blocks, "Number of blocks N")->required()->check(at_least_one());
  cmd->add_option("--kind", o->kind, "Block kind")
      ->check(CLI::IsMember({"mlp", "attention", "transformer"}))
      ->capture_default_str();
  cmd->add_option("--batch", o->batch, "Rows of each activation (tokens: batch x sequence)")
      ->check(at_least_one())
      ->capture_default_str();
  cmd->add_option("--dim", o->dim, "Model width")->check(at_least_one())->capture_default_str();
  cmd->add_option("--dtype", o->dtype, "Element type")
      ->check(CLI::IsMember({"f64", "f32", "bf16", "f16"}))
      ->capture_default_str();
  cmd->add_option("--ratio", o->ratio, "MLP hidden width / dim")
      ->check(at_least_one())
      ->capture_default_str();
  cmd->add_option("--score-ratio", o->score_ratio, "Attention scores' bytes / one activation's")
      ->check(at_least_one())
      ->capture_default_str();
  cmd->add_option("--budget", o->budget, "Byte budget (e.g. 2GB); marks what fits, plans it")
      ->type_name("BYTES");
  cmd->add_flag("--json", o->json, "Print the result as one JSON object instead of a table");
  cmd->callback([o] { run(*o); });
}

}  // namespace tilegrad::apps
