// `tilegrad memtrace`: the command-line face of the memtrace experiment (memtrace_experiment.h).
//
// Parses the configuration, runs the experiment and prints its result as tables (default) or as one
// JSON object (--json); --timeline FILE also writes every allocate/free event as JSON lines, and
// --plot FILE an SVG picture of them (plot_svg.h). All figures printed are the tracker's
// measurements; the only formula shown is the size of one activation in the header, as the
// reference the measured per-layer bytes can be compared with.
#include <CLI/CLI.hpp>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "apps/cli_util.h"
#include "apps/commands.h"
#include "apps/memtrace_experiment.h"
#include "apps/plot_svg.h"
#include "core/error.h"

namespace tilegrad::apps {

namespace {

struct MemtraceOptions {
  MemtraceConfig config;
  std::string dtype = "f64";
  bool json = false;
  std::string timeline;  // path; empty for none
  std::string plot;      // path of the SVG picture; empty for none
};

double gflops_per_s(double flops, double seconds) {
  return seconds > 0 ? flops / seconds / 1e9 : 0.0;
}

// The categories the tables show (the others stay zero in this experiment; --json has them all).
constexpr Category kShown[] = {Category::parameter, Category::gradient, Category::activation,
                               Category::other};

std::string category_cells(const MemoryPoint& p) {
  std::string s;
  for (Category c : kShown) s += strf(" %11.3f", mb(p.of(c)));
  return s;
}

std::string category_heads() {
  std::string s;
  for (Category c : kShown) s += strf(" %11s", std::string(category_name(c)).c_str());
  return s;
}

void print_text(const MemtraceResult& r) {
  const MemtraceConfig& c = r.config;
  const std::string dt(dtype_name(c.dtype));
  std::printf("tilegrad memtrace: x = matmul(x, W_i) for i = 1..%lld, then sum(x) and backward\n",
              ll(c.layers));
  std::printf("  batch %lld, dim %lld, dtype %s, gradients %s, seed %llu\n", ll(c.batch), ll(c.dim),
              dt.c_str(), c.eager_grads ? "eager (allocated with every tensor)" : "lazy",
              static_cast<unsigned long long>(c.seed));
  const int64_t x_bytes = c.batch * c.dim * static_cast<int64_t>(dtype_size(c.dtype));
  const int64_t w_bytes = c.dim * c.dim * static_cast<int64_t>(dtype_size(c.dtype));
  std::printf(
      "  one x_i [%lld, %lld] holds %lld bytes (%.3f MB); one W_i [%lld, %lld] %lld bytes\n",
      ll(c.batch), ll(c.dim), ll(x_bytes), mb(x_bytes), ll(c.dim), ll(c.dim), ll(w_bytes));
  std::printf(
      "  live bytes are counted from before the weights and the input were created "
      "(1 MB = 10^6 bytes)\n\n");

  std::printf("forward (category columns: live MB)\n");
  std::printf("%6s %11s %11s %12s%s\n", "layer", "live MB", "delta MB", "delta bytes",
              category_heads().c_str());
  auto forward_row = [](const std::string& label, const MemoryPoint& p) {
    std::printf("%6s %11.3f %+11.3f %+12lld%s\n", label.c_str(), mb(p.live), mb(p.delta),
                ll(p.delta), category_cells(p).c_str());
  };
  forward_row("setup", r.setup);
  for (const ForwardStep& s : r.forward) forward_row(s.label, s.mem);

  std::printf("\nbackward, one step per node the engine ran (category columns: live MB)\n");
  std::printf("%5s %-15s %5s %11s %11s %12s%s\n", "step", "node", "layer", "live MB", "delta MB",
              "delta bytes", category_heads().c_str());
  for (const BackwardStep& s : r.backward) {
    const std::string layer = s.layer > 0 ? std::to_string(s.layer) : "-";
    std::printf("%5lld %-15s %5s %11.3f %+11.3f %+12lld%s\n", ll(s.step), s.node.c_str(),
                layer.c_str(), mb(s.mem.live), mb(s.mem.delta), ll(s.mem.delta),
                category_cells(s.mem).c_str());
  }

  std::printf("\nsummary\n");
  std::printf("  bytes per forward layer  %lld bytes (%.3f MB), median of %lld layer deltas\n",
              ll(r.bytes_per_layer), mb(r.bytes_per_layer), ll(c.layers));
  std::printf(
      "  peak                     %lld bytes (%.3f MB); %lld bytes (%.3f MB) above the "
      "weights and input\n",
      ll(r.peak_bytes), mb(r.peak_bytes), ll(r.peak_bytes_above_setup),
      mb(r.peak_bytes_above_setup));
  std::printf("  live after backward      %lld bytes (%.3f MB)\n",
              ll(r.backward.empty() ? r.forward.back().mem.live : r.backward.back().mem.live),
              mb(r.backward.empty() ? r.forward.back().mem.live : r.backward.back().mem.live));
  std::printf("  matmul calls             %lld (%lld forward + %lld backward)\n",
              ll(r.matmul_calls), ll(r.forward_matmul_calls), ll(r.backward_matmul_calls));
  if (c.remat != "none") {
    // The planner's predictions (chain model) next to the measurements.
    std::printf("  remat policy             %s\n", r.remat_policy.c_str());
    std::printf(
        "  recomputed forward steps predicted %lld; measured %lld extra backward matmuls "
        "(executor re-ran %lld)\n",
        ll(r.predicted_recomputed_steps), ll(r.extra_backward_matmul_calls),
        ll(r.recomputed_steps));
    if (!c.eager_grads) {
      std::printf("  peak                     predicted %lld bytes; measured %lld bytes\n",
                  ll(r.predicted_peak_bytes), ll(r.peak_bytes));
      std::printf("  peak by category         predicted / measured:");
      for (int k = 0; k < kNumCategories; ++k) {
        if (r.predicted_peak_by_category[k] == 0 && r.stats.peak[k] == 0) continue;
        std::printf(" %s %lld / %lld", std::string(category_name(static_cast<Category>(k))).c_str(),
                    ll(r.predicted_peak_by_category[k]), ll(r.stats.peak[k]));
      }
      std::printf("\n");
    }
  }
  std::printf(
      "  time                     forward %.2f s (%.1f GFLOP/s), backward %.2f s "
      "(%.1f GFLOP/s)\n",
      r.forward_seconds, gflops_per_s(r.forward_flops, r.forward_seconds), r.backward_seconds,
      gflops_per_s(r.backward_flops, r.backward_seconds));
  std::printf("\nmemory tracker (live and peak relative to the start of the experiment)\n%s",
              r.stats.table().c_str());
}

nlohmann::ordered_json point_json(const MemoryPoint& p) {
  nlohmann::ordered_json by_category = nlohmann::ordered_json::object();
  for (int i = 0; i < kNumCategories; ++i) {
    by_category[std::string(category_name(static_cast<Category>(i)))] = p.by_category[i];
  }
  return {{"live_bytes", p.live}, {"delta_bytes", p.delta}, {"by_category", by_category}};
}

nlohmann::ordered_json result_json(const MemtraceResult& r) {
  const MemtraceConfig& c = r.config;
  nlohmann::ordered_json j;
  j["config"] = {{"layers", c.layers},
                 {"batch", c.batch},
                 {"dim", c.dim},
                 {"dtype", std::string(dtype_name(c.dtype))},
                 {"eager_grads", c.eager_grads},
                 {"seed", c.seed}};
  j["setup"] = point_json(r.setup);
  j["forward"] = nlohmann::ordered_json::array();
  for (const ForwardStep& s : r.forward) {
    nlohmann::ordered_json row = point_json(s.mem);
    row["label"] = s.label;
    row["layer"] = s.layer;
    j["forward"].push_back(std::move(row));
  }
  j["backward"] = nlohmann::ordered_json::array();
  for (const BackwardStep& s : r.backward) {
    nlohmann::ordered_json row = point_json(s.mem);
    row["step"] = s.step;
    row["node"] = s.node;
    row["layer"] = s.layer;
    j["backward"].push_back(std::move(row));
  }
  j["summary"] = {{"bytes_per_layer", r.bytes_per_layer},
                  {"peak_bytes", r.peak_bytes},
                  {"peak_bytes_above_setup", r.peak_bytes_above_setup},
                  {"matmul_calls", r.matmul_calls},
                  {"forward_matmul_calls", r.forward_matmul_calls},
                  {"backward_matmul_calls", r.backward_matmul_calls},
                  {"forward_seconds", r.forward_seconds},
                  {"backward_seconds", r.backward_seconds},
                  {"forward_flops", r.forward_flops},
                  {"backward_flops", r.backward_flops}};
  if (c.remat != "none") {
    j["remat"] = {{"policy", r.remat_policy},
                  {"predicted_recomputed_steps", r.predicted_recomputed_steps},
                  {"extra_backward_matmul_calls", r.extra_backward_matmul_calls},
                  {"recomputed_steps", r.recomputed_steps},
                  {"predicted_peak_bytes", r.predicted_peak_bytes},
                  {"measured_peak_bytes", r.peak_bytes}};
  }
  nlohmann::ordered_json categories = nlohmann::ordered_json::object();
  for (int i = 0; i < kNumCategories; ++i) {
    categories[std::string(category_name(static_cast<Category>(i)))] = {
        {"live_bytes", r.stats.live[i]}, {"peak_bytes", r.stats.peak[i]}};
  }
  j["memory"] = {{"categories", categories},          {"live_bytes", r.stats.live_total},
                 {"peak_bytes", r.stats.peak_total},  {"reserved_bytes", r.stats.reserved},
                 {"allocations", r.stats.num_allocs}, {"frees", r.stats.num_frees}};
  return j;
}

void write_timeline(const std::vector<MemoryEvent>& events, std::ofstream& out,
                    const std::string& path) {
  for (const MemoryEvent& e : events) {
    const nlohmann::ordered_json line = {{"seq", e.seq},
                                         {"event", e.alloc ? "alloc" : "free"},
                                         {"category", std::string(category_name(e.category))},
                                         {"bytes", e.bytes},
                                         {"op", e.op},
                                         {"live_after", e.live_after}};
    out << line.dump() << '\n';
  }
  out.flush();
  TG_CHECK(out, "memtrace: writing the timeline file '", path, "' failed");
}

void run(const MemtraceOptions& o) {
  MemtraceConfig config = o.config;
  config.dtype = parse_dtype(o.dtype);
  config.record_timeline = !o.timeline.empty() || !o.plot.empty();
  validate(config);
  // Opened before the run, so that a bad path fails at once rather than after the experiment.
  std::ofstream timeline;
  if (!o.timeline.empty()) {
    timeline.open(o.timeline);
    TG_CHECK(timeline, "memtrace: cannot open timeline file '", o.timeline, "' for writing");
  }
  std::ofstream plot;
  if (!o.plot.empty()) {
    plot.open(o.plot);
    TG_CHECK(plot, "memtrace: cannot open plot file '", o.plot, "' for writing");
  }
  const MemtraceResult r = run_memtrace(config);
  if (o.json) {
    std::printf("%s\n", result_json(r).dump(2).c_str());
  } else {
    print_text(r);
  }
  if (!o.timeline.empty()) {
    write_timeline(r.timeline, timeline, o.timeline);
    // On stderr, so that stdout stays a single JSON object under --json.
    std::fprintf(stderr, "memtrace: wrote %zu events to %s\n", r.timeline.size(),
                 o.timeline.c_str());
  }
  if (!o.plot.empty()) {
    plot << memtrace_svg(r);
    plot.flush();
    TG_CHECK(plot, "memtrace: writing the plot file '", o.plot, "' failed");
    std::fprintf(stderr, "memtrace: wrote the memory plot to %s\n", o.plot.c_str());
  }
}

}  // namespace

void register_memtrace(CLI::App& app) {
  auto o = std::make_shared<MemtraceOptions>();
  CLI::App* cmd = app.add_subcommand(
      "memtrace", "Trace the memory of a chain of matmuls, layer by layer, forward and backward");

  cmd->add_option("--layers", o->config.layers, "Number of matmul layers L")
      ->check(at_least_one())
      ->capture_default_str();
  cmd->add_option("--batch", o->config.batch, "Rows of x")
      ->check(at_least_one())
      ->capture_default_str();
  cmd->add_option("--dim", o->config.dim, "Columns of x; each W_i is [dim, dim]")
      ->check(at_least_one())
      ->capture_default_str();
  cmd->add_option("--dtype", o->dtype, "Element type")
      ->check(CLI::IsMember({"f64", "f32", "bf16", "f16"}))
      ->capture_default_str();
  cmd->add_flag(
      "--eager-grads", o->config.eager_grads,
      "Allocate each gradient buffer with its tensor (default: at first use in backward)");
  cmd->add_option("--seed", o->config.seed, "Seed of the random weights and input")
      ->capture_default_str();
  cmd->add_option("--remat", o->config.remat,
                  "Rematerialization policy: none, every:K, sqrt, chen:B, chen-search:BYTES, "
                  "revolve:C, budget:BYTES or naive:C (the lecture's recipe, checkpoint x_C)")
      ->capture_default_str();
  cmd->add_flag("--json", o->json, "Print the result as one JSON object instead of tables");
  cmd->add_option("--timeline", o->timeline,
                  "Write every allocate/free event to FILE as JSON lines")
      ->type_name("FILE");
  cmd->add_option("--plot", o->plot, "Write an SVG picture of live memory by category to FILE")
      ->type_name("FILE");

  cmd->callback([o] { run(*o); });
}

}  // namespace tilegrad::apps
