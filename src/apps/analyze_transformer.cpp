// `tilegrad analyze mlp` and `tilegrad analyze transformer`: per-op FLOPs, bytes, arithmetic
// intensity and roofline class of the engine's ops for an MLP or a GPT-like model (one layer and
// the whole model), MFU for a measured time, and for the transformer the lectures' memory formulas
// beside the tracker's measurement of the same configuration (apps/analyze_gpt.h).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "analysis/transformer_memory.h"
#include "analysis/transformer_ops.h"
#include "apps/analyze_common.h"
#include "apps/analyze_gpt.h"
#include "apps/cli_util.h"
#include "core/error.h"

namespace tilegrad::apps {

namespace {

using namespace analysis;
using ojson = nlohmann::ordered_json;

// A training step costs about three forwards: the backward of a matmul is two matmuls of the same
// size, and the matmuls dominate.
constexpr double kStepOverForward = 3;

// Measurement is skipped above this many bytes of predicted graph memory (the run needs a few
// times that).
constexpr double kMeasureLimitBytes = 2e9;

ojson rows_json(const std::vector<OpRow>& rows, double peak, double bandwidth) {
  ojson a = ojson::array();
  for (const OpRow& r : rows) {
    a.push_back(
        {{"name", r.name},
         {"op", r.op},
         {"shape", r.shape},
         {"roofline", roofline_json(roofline(r.cost.flops, r.cost.bytes, peak, bandwidth))}});
  }
  return a;
}

void print_rows(const std::vector<OpRow>& rows, double peak, double bandwidth) {
  std::printf("%-16s %-13s %-30s %12s %11s %s\n", "name", "op", "shapes", "GFLOP", "MB",
              roofline_header().c_str());
  for (const OpRow& r : rows) {
    std::printf("%-16s %-13s %-30s %12.5f %11.3f %s\n", r.name.c_str(), r.op.c_str(),
                r.shape.c_str(), r.cost.flops / 1e9, r.cost.bytes / 1e6,
                roofline_cells(roofline(r.cost.flops, r.cost.bytes, peak, bandwidth)).c_str());
  }
}

void print_total(const char* label, const Cost& c, double peak, double bandwidth) {
  std::printf("%-61s %12.5f %11.3f %s\n", label, c.flops / 1e9, c.bytes / 1e6,
              roofline_cells(roofline(c.flops, c.bytes, peak, bandwidth)).c_str());
}

// ---- mlp ----

struct MlpOptions {
  int64_t batch = 1;
  int64_t seq = 1024;
  int64_t dim = 768;
  int64_t hidden = 0;  // 0: 4·dim
  bool no_bias = false;
  std::string dtype = "bf16";
  std::string time_pass = "forward";
  DeviceOptions dev;
  bool json = false;
};

void run_mlp(const MlpOptions& o) {
  const DType dt = parse_dtype(o.dtype);
  const DeviceSpec dev = resolve_device(o.dev, dt);
  const double peak = dev.peak_flops(dt, o.dev.tf32);
  const int64_t hidden = o.hidden > 0 ? o.hidden : 4 * o.dim;
  const std::vector<OpRow> rows = mlp_ops(o.batch, o.seq, o.dim, hidden, dt, !o.no_bias);
  const Cost total = total_cost(rows);
  const bool step = o.time_pass == "step";
  const double timed_flops = step ? kStepOverForward * total.flops : total.flops;
  if (o.json) {
    ojson j;
    j["config"] = {{"batch", o.batch}, {"seq", o.seq},       {"dim", o.dim},
                   {"hidden", hidden}, {"bias", !o.no_bias}, {"dtype", o.dtype}};
    j["device"] = device_json(dev, dt, o.dev.tf32);
    j["ops"] = rows_json(rows, peak, dev.bandwidth);
    j["forward"] = roofline_json(roofline(total.flops, total.bytes, peak, dev.bandwidth));
    if (o.dev.time_ms > 0) {
      j["timing"] = {{"time_ms", o.dev.time_ms},
                     {"pass", o.time_pass},
                     {"model_flops", timed_flops},
                     {"mfu", utilization(timed_flops, o.dev.time_ms / 1e3, peak)}};
    }
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  std::printf("tilegrad analyze mlp: x [%lld, %lld, %lld], hidden %lld, %s, %s\n", ll(o.batch),
              ll(o.seq), ll(o.dim), ll(hidden), o.dtype.c_str(),
              o.no_bias ? "no biases" : "biases");
  std::printf("%s\n\n", device_line(dev, dt, o.dev.tf32).c_str());
  print_rows(rows, peak, dev.bandwidth);
  print_total("forward total (each op's bytes counted separately)", total, peak, dev.bandwidth);
  if (o.dev.time_ms > 0) {
    std::printf("\nmeasured %.4f ms for the %s: MFU %.2f%% (%.4g FLOPs%s)\n", o.dev.time_ms,
                step ? "forward + backward" : "forward",
                100 * utilization(timed_flops, o.dev.time_ms / 1e3, peak), timed_flops,
                step ? ", 3 x forward" : "");
  }
}

// ---- transformer ----

struct TransformerOptions {
  int64_t batch = 1;
  int64_t seq = 256;
  int64_t dim = 128;
  int64_t heads = 4;
  int64_t layers = 4;
  int64_t vocab = 1000;
  bool no_bias = false;
  std::string dtype = "f32";
  bool no_measure = false;
  std::string time_pass = "step";
  DeviceOptions dev;
  bool json = false;
};

// The saved storages in the lecture's units (B·d·T, B·H·T², B·V·T); the rest is "other". The
// attention probabilities and the logits are told apart by the op that saves them first (softmax,
// cross_entropy), since their sizes can coincide with multiples of d·T (V = 4d, or T = D).
struct GraphUnits {
  int64_t dT = 0;  // multiples of B·d·T
  int64_t HT2 = 0;
  int64_t VT = 0;
  int64_t other_elements = 0;
};

GraphUnits units_of(const std::vector<SavedGroup>& saved, const GptDims& g) {
  GraphUnits u;
  const int64_t dT = g.B * g.d * g.T, HT2 = g.B * g.H * g.T * g.T, VT = g.B * g.V * g.T;
  for (const SavedGroup& s : saved) {
    if (s.elements == HT2 && s.op == "softmax") {
      u.HT2 += s.count;
    } else if (s.elements == VT && s.op == "cross_entropy") {
      u.VT += s.count;
    } else if (s.elements % dT == 0) {
      u.dT += s.count * (s.elements / dT);
    } else {
      u.other_elements += s.count * s.elements;
    }
  }
  return u;
}

struct MeasuredRuns {
  bool measured = false;
  std::string skipped;  // why not, when not
  GptMeasurement none, every_block, sqrt_segments;
};

void run_transformer(const TransformerOptions& o) {
  GptDims g;
  g.B = o.batch;
  g.T = o.seq;
  g.d = o.dim;
  g.H = o.heads;
  g.L = o.layers;
  g.V = o.vocab;
  g.dtype = parse_dtype(o.dtype);
  g.bias = !o.no_bias;
  g.validate();
  const DeviceSpec dev = resolve_device(o.dev, g.dtype);
  const double peak = dev.peak_flops(g.dtype, o.dev.tf32);
  const int64_t esize = static_cast<int64_t>(dtype_size(g.dtype));

  const std::vector<OpRow> layer = gpt_layer_ops(g);
  const Cost embed = total_cost(gpt_embed_ops(g));
  const Cost head = total_cost(gpt_head_ops(g));
  const Cost layer_total = total_cost(layer);
  const Cost layers{layer_total.flops * static_cast<double>(g.L),
                    layer_total.bytes * static_cast<double>(g.L)};
  const Cost forward = gpt_forward_cost(g);
  const bool step = o.time_pass == "step";
  const double timed_flops = step ? kStepOverForward * forward.flops : forward.flops;

  const MemoryFormulas f = memory_formulas({g.L, g.d, g.H, g.V, g.T, g.B});
  MeasuredRuns m;
  if (o.no_measure) {
    m.skipped = "--no-measure";
  } else if (static_cast<double>(f.graph * esize) > kMeasureLimitBytes) {
    m.skipped = strf("the predicted graph memory (%.1f MB) is above the %.0f MB limit",
                     static_cast<double>(f.graph * esize) / 1e6, kMeasureLimitBytes / 1e6);
  } else {
    m.measured = true;
    m.none = measure_gpt(g, GptCheckpoint::none);
    m.every_block = measure_gpt(g, GptCheckpoint::every_block);
    m.sqrt_segments = measure_gpt(g, GptCheckpoint::sqrt_segments);
  }
  const GraphUnits units = m.measured ? units_of(m.none.saved, g) : GraphUnits{};

  if (o.json) {
    ojson j;
    j["config"] = {{"batch", g.B},   {"seq", g.T},       {"dim", g.d},
                   {"heads", g.H},   {"layers", g.L},    {"vocab", g.V},
                   {"bias", g.bias}, {"dtype", o.dtype}, {"elem_bytes", esize}};
    j["device"] = device_json(dev, g.dtype, o.dev.tf32);
    j["layer_ops"] = rows_json(layer, peak, dev.bandwidth);
    j["totals"] = {
        {"embed", roofline_json(roofline(embed.flops, embed.bytes, peak, dev.bandwidth))},
        {"layers", roofline_json(roofline(layers.flops, layers.bytes, peak, dev.bandwidth))},
        {"head", roofline_json(roofline(head.flops, head.bytes, peak, dev.bandwidth))},
        {"forward", roofline_json(roofline(forward.flops, forward.bytes, peak, dev.bandwidth))},
        {"step_flops", kStepOverForward * forward.flops}};
    if (o.dev.time_ms > 0) {
      j["timing"] = {{"time_ms", o.dev.time_ms},
                     {"pass", o.time_pass},
                     {"model_flops", timed_flops},
                     {"mfu", utilization(timed_flops, o.dev.time_ms / 1e3, peak)}};
    }
    ojson formulas = {
        {"unit", "elements"},   {"parameters", f.parameters},   {"forward", f.forward},
        {"graph", f.graph},     {"checkpoint1", f.checkpoint1}, {"checkpoint2", f.checkpoint2},
        {"stored1", f.stored1}, {"stored2", f.stored2},         {"segment", f.segment}};
    j["formulas"] = formulas;
    if (m.measured) {
      auto run_json = [](const GptMeasurement& r) {
        return ojson{{"graph_bytes", r.graph_bytes},
                     {"forward_peak_bytes", r.forward_peak},
                     {"step_peak_bytes", r.step_peak}};
      };
      ojson saved = ojson::array();
      for (const SavedGroup& s : m.none.saved) {
        saved.push_back({{"op", s.op},
                         {"shape", s.shape},
                         {"count", s.count},
                         {"elements", s.elements},
                         {"bytes", s.bytes}});
      }
      j["measured"] = {{"unit", "bytes"},
                       {"parameter_bytes", m.none.parameter_bytes},
                       {"parameter_count", m.none.parameter_count},
                       {"parameter_gradient_bytes", m.none.gradient_bytes},
                       {"inference_peak_bytes", m.none.inference_peak},
                       {"none", run_json(m.none)},
                       {"checkpoint1", run_json(m.every_block)},
                       {"checkpoint2", run_json(m.sqrt_segments)},
                       {"saved_bytes", m.none.saved_bytes},
                       {"graph_units",
                        {{"dT", units.dT},
                         {"HT2", units.HT2},
                         {"VT", units.VT},
                         {"other_elements", units.other_elements}}},
                       {"saved", saved}};
    } else {
      j["measured"] = nullptr;
      j["not_measured_because"] = m.skipped;
    }
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }

  std::printf(
      "tilegrad analyze transformer: L=%lld d=%lld H=%lld T=%lld V=%lld B=%lld, %s (%lld "
      "bytes), %s\n",
      ll(g.L), ll(g.d), ll(g.H), ll(g.T), ll(g.V), ll(g.B), o.dtype.c_str(), ll(esize),
      g.bias ? "biases" : "no biases");
  std::printf("%s\n\none layer, forward (the engine's ops; analysis/transformer_ops.h):\n",
              device_line(dev, g.dtype, o.dev.tf32).c_str());
  print_rows(layer, peak, dev.bandwidth);
  std::printf("\nmodel, forward:\n");
  print_total("embedding (wte gather + wpe add)", embed, peak, dev.bandwidth);
  print_total(strf("%lld layers", ll(g.L)).c_str(), layers, peak, dev.bandwidth);
  print_total("head (ln_f, lm_head, cross_entropy)", head, peak, dev.bandwidth);
  print_total("forward total", forward, peak, dev.bandwidth);
  std::printf("training step ~ 3 x forward: %.5f GFLOP\n", kStepOverForward * forward.flops / 1e9);
  if (o.dev.time_ms > 0) {
    std::printf("measured %.4f ms for the %s: MFU %.2f%% (%.4g model FLOPs)\n", o.dev.time_ms,
                step ? "training step" : "forward",
                100 * utilization(timed_flops, o.dev.time_ms / 1e3, peak), timed_flops);
  }

  const double e = static_cast<double>(esize);
  auto fmb = [&](int64_t elements) { return static_cast<double>(elements) * e / 1e6; };
  std::printf(
      "\nmemory: the lectures' formulas (elements x %lld bytes) beside the tracker (bytes above "
      "parameters, their gradients and the inputs); MB = 10^6 bytes\n",
      ll(esize));
  std::printf("%-34s %-26s %14s %12s\n", "quantity", "formula", "formula MB", "measured MB");
  // elements < 0: no formula for the row.
  auto line = [&](const char* what, const char* formula, int64_t elements, double measured) {
    std::printf("%-34s %-26s %14s %12s\n", what, formula,
                elements >= 0 ? strf("%.3f", fmb(elements)).c_str() : "-",
                m.measured ? strf("%.3f", measured / 1e6).c_str() : "-");
  };
  line("parameters", "12d^2 L + 2dV", f.parameters, static_cast<double>(m.none.parameter_bytes));
  line("forward, no graph (peak)", "4dT + HT^2 + VT", f.forward,
       static_cast<double>(m.none.inference_peak));
  line("graph (live when the loss exists)", "12LdT + LHT^2 + 2VT", f.graph,
       static_cast<double>(m.none.graph_bytes));
  line("  training forward peak", "", -1, static_cast<double>(m.none.forward_peak));
  line("  training step peak", "", -1, static_cast<double>(m.none.step_peak));
  line("checkpoint 1: stored", "LdT + 2VT", f.stored1,
       static_cast<double>(m.every_block.graph_bytes));
  line("checkpoint 1: step peak", "LdT + 12dT + HT^2", f.checkpoint1,
       static_cast<double>(m.every_block.step_peak));
  const std::string k = strf("k=%lld", ll(f.segment));
  line(strf("checkpoint 2 (%s): stored", k.c_str()).c_str(), "ceil(L/k)dT + 2VT", f.stored2,
       static_cast<double>(m.sqrt_segments.graph_bytes));
  line(strf("checkpoint 2 (%s): step peak", k.c_str()).c_str(), "ceil(L/k)dT + k(12dT+HT^2)",
       f.checkpoint2, static_cast<double>(m.sqrt_segments.step_peak));
  if (!m.measured) {
    std::printf("not measured: %s\n", m.skipped.c_str());
    return;
  }
  std::printf(
      "(measured: %lld parameters, %.3f MB of parameter gradients allocated before the "
      "step; the step peaks include activation gradients and recomputation)\n",
      ll(m.none.parameter_count), static_cast<double>(m.none.gradient_bytes) / 1e6);
  std::printf(
      "\nthe graph by saved storage (a graph walk from the loss; each storage once, under the "
      "first "
      "op that saves it):\n");
  std::printf("%-15s %-20s %6s %14s\n", "op", "shape", "count", "MB");
  for (const SavedGroup& s : m.none.saved) {
    std::printf("%-15s %-20s %6lld %14.3f\n", s.op.c_str(), s.shape.c_str(), ll(s.count),
                static_cast<double>(s.bytes) / 1e6);
  }
  std::printf(
      "in the lecture's units: %lld dT + %lld HT^2 + %lld VT + %lld other elements (formula: "
      "%lld dT + %lld HT^2 + 2 VT); + the loss: %.3f MB saved, %.3f MB live\n",
      ll(units.dT), ll(units.HT2), ll(units.VT), ll(units.other_elements), ll(12 * g.L), ll(g.L),
      static_cast<double>(m.none.saved_bytes) / 1e6, static_cast<double>(m.none.graph_bytes) / 1e6);
}

}  // namespace

void add_analyze_mlp(CLI::App& analyze) {
  auto o = std::make_shared<MlpOptions>();
  CLI::App* cmd = analyze.add_subcommand(
      "mlp", "The MLP's ops (two matmuls and a GELU): FLOPs, bytes, roofline, MFU");
  cmd->add_option("--batch", o->batch, "Batch B")->check(at_least_one())->capture_default_str();
  cmd->add_option("--seq", o->seq, "Sequence length T")
      ->check(at_least_one())
      ->capture_default_str();
  cmd->add_option("--dim", o->dim, "Model width d")->check(at_least_one())->capture_default_str();
  cmd->add_option("--hidden", o->hidden, "Hidden width (default: 4 x dim)")->check(at_least_one());
  cmd->add_flag("--no-bias", o->no_bias, "Linear layers without biases");
  cmd->add_option("--dtype", o->dtype, "Element type")
      ->check(CLI::IsMember({"f64", "f32", "bf16", "f16"}))
      ->capture_default_str();
  cmd->add_option("--time-pass", o->time_pass, "What --time-ms measured: forward or step")
      ->check(CLI::IsMember({"forward", "step"}))
      ->capture_default_str();
  add_device_options(cmd, o->dev);
  cmd->add_flag("--json", o->json, "Print one JSON object instead of tables");
  cmd->callback([o] { run_mlp(*o); });
}

void add_analyze_transformer(CLI::App& analyze) {
  auto o = std::make_shared<TransformerOptions>();
  CLI::App* cmd = analyze.add_subcommand(
      "transformer",
      "A GPT-like model: per-op roofline, totals, MFU, and the memory formulas beside the tracker");
  cmd->add_option("--batch", o->batch, "Sequences B")->check(at_least_one())->capture_default_str();
  cmd->add_option("--seq", o->seq, "Sequence length T")
      ->check(at_least_one())
      ->capture_default_str();
  cmd->add_option("--dim", o->dim, "Model width d")->check(at_least_one())->capture_default_str();
  cmd->add_option("--heads", o->heads, "Heads H")->check(at_least_one())->capture_default_str();
  cmd->add_option("--layers", o->layers, "Layers L")->check(at_least_one())->capture_default_str();
  cmd->add_option("--vocab", o->vocab, "Vocabulary V")
      ->check(at_least_one())
      ->capture_default_str();
  cmd->add_flag("--no-bias", o->no_bias, "Linear layers without biases");
  cmd->add_option("--dtype", o->dtype, "Element type")
      ->check(CLI::IsMember({"f64", "f32", "bf16"}))
      ->capture_default_str();
  cmd->add_flag("--no-measure", o->no_measure, "Skip running the model under the tracker");
  cmd->add_option("--time-pass", o->time_pass, "What --time-ms measured: forward or step")
      ->check(CLI::IsMember({"forward", "step"}))
      ->capture_default_str();
  add_device_options(cmd, o->dev);
  cmd->add_flag("--json", o->json, "Print one JSON object instead of tables");
  cmd->callback([o] { run_transformer(*o); });
}

}  // namespace tilegrad::apps
