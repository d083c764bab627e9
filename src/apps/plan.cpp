// `tilegrad plan chain`: the memory/recompute trade-off of every checkpointing policy on a uniform
// chain (plan_chain.h), as a table sorted by peak (default) or one JSON object (--json).
//
// The chain is memtrace's: L layers whose activations are [batch, dim] in the given dtype and whose
// forward costs 2·batch·dim² FLOPs each, or L layers of --act-bytes each. With --budget the command
// also says which policies fit and which of those recomputes least; a budget nothing fits is a
// usage error (exit status 2) whose message states the smallest feasible budget.
#include <CLI/CLI.hpp>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "apps/cli_util.h"
#include "apps/commands.h"
#include "apps/plan_blocks.h"
#include "apps/plan_chain.h"
#include "core/dtype.h"
#include "core/error.h"

namespace tilegrad::apps {

namespace {

struct PlanChainOptions {
  int layers = 0;
  std::string act_bytes;  // empty: from batch, dim and dtype
  int64_t batch = 4000;
  int64_t dim = 1000;
  std::string dtype = "f64";
  int64_t layer_flops = -1;  // -1: 2·batch·dim², or 1 (one layer's forward) with --act-bytes
  std::string budget;        // empty: none
  bool json = false;
};

PlanChainConfig config_of(const PlanChainOptions& o) {
  PlanChainConfig c;
  c.layers = o.layers;
  if (!o.act_bytes.empty()) {
    c.act_bytes = parse_bytes(o.act_bytes, "--act-bytes");
    c.layer_flops = o.layer_flops >= 0 ? o.layer_flops : 1;
  } else {
    const DType dt = parse_dtype(o.dtype);
    // 2·batch·dim² is the largest product; refuse sizes whose figures would overflow int64.
    int64_t flops = 0;
    const bool overflow = __builtin_mul_overflow(o.batch, o.dim, &flops) ||
                          __builtin_mul_overflow(flops, o.dim, &flops) ||
                          __builtin_mul_overflow(flops, int64_t{16}, &flops);
    TG_CHECK(!overflow, "plan chain: --batch ", o.batch, " and --dim ", o.dim, " are too large");
    c.act_bytes = o.batch * o.dim * static_cast<int64_t>(dtype_size(dt));
    c.layer_flops = o.layer_flops >= 0 ? o.layer_flops : 2 * o.batch * o.dim * o.dim;
  }
  if (!o.budget.empty()) c.budget = parse_bytes(o.budget, "--budget");
  return c;
}

std::string chain_description(const PlanChainOptions& o, const PlanChainConfig& c) {
  std::string s = std::to_string(c.layers) + " uniform layers, each activation " +
                  std::to_string(c.act_bytes) + " bytes";
  if (o.act_bytes.empty()) {
    s += " ([" + std::to_string(o.batch) + ", " + std::to_string(o.dim) + "] " + o.dtype + ")";
  }
  return s;
}

void print_text(const PlanChainOptions& o, const PlanChainResult& r) {
  const PlanChainConfig& c = r.config;
  std::printf("tilegrad plan chain: %s, %lld FLOPs per layer forward\n",
              chain_description(o, c).c_str(), ll(c.layer_flops));
  std::printf(
      "  chain model (docs/REMAT.md): peak = input + stored activations + live gradients; "
      "1 MB = 10^6 bytes\n");
  std::printf(
      "  smallest feasible peak %lld bytes (%.3f MB); keeping everything %lld bytes (%.3f "
      "MB)\n",
      ll(r.min_feasible_bytes), mb(r.min_feasible_bytes), ll(r.keep_all_bytes),
      mb(r.keep_all_bytes));
  if (c.budget) {
    std::printf("  budget %lld bytes (%.3f MB)\n", ll(*c.budget), mb(*c.budget));
  }
  std::printf("\n%-20s %14s %10s %10s %18s %6s%s\n", "policy", "peak bytes", "peak MB",
              "recomputed", "recompute FLOPs", "pareto", c.budget ? "   fits" : "");
  for (const PlanRow& row : r.rows) {
    std::printf("%-20s %14lld %10.3f %10lld %18lld %6s%s\n", row.policy.c_str(), ll(row.peak_bytes),
                mb(row.peak_bytes), ll(row.recomputed_steps), ll(row.recompute_flops),
                row.pareto ? "yes" : "no", c.budget ? (row.fits ? "    yes" : "     no") : "");
  }
  if (r.best) {
    const PlanRow& b = r.rows[*r.best];
    std::printf(
        "\nbest within the budget: %s (peak %lld bytes, %.3f MB; %lld recomputed forwards, %lld "
        "recompute FLOPs)\n",
        b.policy.c_str(), ll(b.peak_bytes), mb(b.peak_bytes), ll(b.recomputed_steps),
        ll(b.recompute_flops));
  }
}

nlohmann::ordered_json row_json(const PlanRow& row, bool with_budget) {
  nlohmann::ordered_json j = {{"policy", row.policy},
                              {"peak_bytes", row.peak_bytes},
                              {"recomputed_steps", row.recomputed_steps},
                              {"recompute_flops", row.recompute_flops},
                              {"pareto", row.pareto}};
  if (with_budget) j["fits"] = row.fits;
  return j;
}

nlohmann::ordered_json result_json(const PlanChainOptions& o, const PlanChainResult& r) {
  const PlanChainConfig& c = r.config;
  nlohmann::ordered_json config = {
      {"layers", c.layers}, {"act_bytes", c.act_bytes}, {"layer_flops", c.layer_flops}};
  if (o.act_bytes.empty()) {
    config["batch"] = o.batch;
    config["dim"] = o.dim;
    config["dtype"] = o.dtype;
  }
  config["budget_bytes"] = c.budget ? nlohmann::ordered_json(*c.budget) : nullptr;
  nlohmann::ordered_json j;
  j["config"] = config;
  j["min_feasible_bytes"] = r.min_feasible_bytes;
  j["keep_all_bytes"] = r.keep_all_bytes;
  j["rows"] = nlohmann::ordered_json::array();
  for (const PlanRow& row : r.rows) j["rows"].push_back(row_json(row, c.budget.has_value()));
  j["best"] = r.best ? row_json(r.rows[*r.best], true) : nullptr;
  return j;
}

void run(const PlanChainOptions& o) {
  const PlanChainResult r = plan_chain(config_of(o));
  if (o.json) {
    std::printf("%s\n", result_json(o, r).dump(2).c_str());
  } else {
    print_text(o, r);
  }
}

}  // namespace

void register_plan(CLI::App& app) {
  CLI::App* plan =
      app.add_subcommand("plan", "Plan activation checkpointing: memory against recompute");
  plan->require_subcommand(1);

  auto o = std::make_shared<PlanChainOptions>();
  CLI::App* chain = plan->add_subcommand(
      "chain", "Every checkpointing policy on a uniform chain: predicted peak and recompute");

  chain->add_option("--layers", o->layers, "Number of layers L")->required()->check(at_least_one());
  CLI::Option* act =
      chain
          ->add_option("--act-bytes", o->act_bytes,
                       "Bytes of one activation, e.g. 3200000 or 512MB (instead of batch/dim)")
          ->type_name("BYTES");
  CLI::Option* batch = chain->add_option("--batch", o->batch, "Rows of each activation")
                           ->check(at_least_one())
                           ->capture_default_str();
  CLI::Option* dim = chain->add_option("--dim", o->dim, "Columns of each activation")
                         ->check(at_least_one())
                         ->capture_default_str();
  CLI::Option* dtype = chain->add_option("--dtype", o->dtype, "Element type")
                           ->check(CLI::IsMember({"f64", "f32", "bf16", "f16"}))
                           ->capture_default_str();
  act->excludes(batch)->excludes(dim)->excludes(dtype);
  chain
      ->add_option("--layer-flops", o->layer_flops,
                   "Forward FLOPs of one layer (default: 2*batch*dim^2, or 1 with --act-bytes)")
      ->check(CLI::NonNegativeNumber);
  chain
      ->add_option("--budget", o->budget,
                   "Mark the policies whose peak fits BYTES (e.g. 64MB, 1.5GiB) and pick the best")
      ->type_name("BYTES");
  chain->add_flag("--json", o->json, "Print the result as one JSON object instead of a table");

  chain->callback([o] { run(*o); });

  register_plan_blocks(*plan);
}

}  // namespace tilegrad::apps
