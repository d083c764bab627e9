// `tilegrad analyze attention`: FLOPs, slow-memory bytes (the IO model's count), arithmetic
// intensity and roofline class of standard attention and of FlashAttention (Algorithm 1 order and
// FlashAttention-2 order), forward and backward, for one shape on one device; optionally MFU for a
// measured time, Theorem 2's scaling table (--theorem2) and the paper's GPT-2 medium example
// (--paper). Text by default, one JSON object with --json.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "analysis/flash_paper.h"
#include "analysis/io_model.h"
#include "analysis/io_scaling.h"
#include "apps/analyze_common.h"
#include "apps/cli_util.h"
#include "apps/plan_chain.h"
#include "core/error.h"

namespace tilegrad::apps {

namespace {

using namespace analysis;
using ojson = nlohmann::ordered_json;

struct AttentionOptions {
  int64_t batch = 1;
  int64_t heads = 1;
  int64_t seq = 1024;
  int64_t seq_k = 0;  // 0: = seq
  int64_t head_dim = 64;
  bool causal = false;
  std::string dtype = "f16";
  std::string fast_memory;  // bytes; empty: the device's SRAM per SM
  int64_t block_rows = 0;   // 0: from M
  int64_t block_cols = 0;
  bool mask_kernel = false;
  bool dropout_kernel = false;
  bool tiled_gemm = false;
  bool no_init = false;
  int64_t stat_bytes = 4;
  bool tensors = false;
  bool theorem2 = false;
  bool paper = false;
  std::string time_pass = "step";
  DeviceOptions dev;
  bool json = false;
};

struct Setup {
  AttentionDims dims;
  IoOptions io;
  DType dt = DType::f16;
  DeviceSpec device;
  double peak = 0;
  int64_t fast_bytes = 0;
};

Setup setup_of(const AttentionOptions& o) {
  Setup s;
  s.dt = parse_dtype(o.dtype);
  s.device = resolve_device(o.dev, s.dt);
  s.peak = s.device.peak_flops(s.dt, o.dev.tf32);
  s.dims.B = o.batch;
  s.dims.H = o.heads;
  s.dims.Nq = o.seq;
  s.dims.Nk = o.seq_k > 0 ? o.seq_k : o.seq;
  s.dims.d = o.head_dim;
  s.dims.causal = o.causal;
  const int64_t esize = static_cast<int64_t>(dtype_size(s.dt));
  if (!o.fast_memory.empty()) {
    s.fast_bytes = parse_bytes(o.fast_memory, "--fast-memory");
  } else {
    TG_CHECK(s.device.sram_per_sm > 0, "analyze attention: device ", s.device.name,
             " gives no fast memory size; pass --fast-memory");
    s.fast_bytes = s.device.sram_per_sm;
  }
  s.io.M = s.fast_bytes / esize;
  TG_CHECK(s.io.M >= 1, "--fast-memory: ", s.fast_bytes, " bytes hold no ", o.dtype, " element");
  TG_CHECK((o.block_rows > 0) == (o.block_cols > 0),
           "analyze attention: give both --block-rows and --block-cols, or neither");
  if (o.block_rows > 0) s.io.blocks = Blocks{o.block_rows, o.block_cols};
  s.io.sizes = ElementSizes{esize, o.stat_bytes, 1};
  s.io.standard.mask_kernel = o.mask_kernel;
  s.io.standard.dropout = o.dropout_kernel;
  s.io.standard.tiled_gemm = o.tiled_gemm;
  s.io.count_init = !o.no_init;
  return s;
}

ojson traffic_json(const Traffic& t) {
  ojson tensors = ojson::array();
  for (const TensorTraffic& x : t.tensors) {
    tensors.push_back({{"name", x.name},
                       {"elem_bytes", x.elem_bytes},
                       {"reads", x.reads},
                       {"writes", x.writes},
                       {"bytes", x.bytes()}});
  }
  return {{"reads", t.reads()},
          {"writes", t.writes()},
          {"elements", t.elements()},
          {"bytes", t.bytes()},
          {"tensors", tensors}};
}

ojson pass_json(const PassIo& p, double peak, double bandwidth) {
  return {{"blocks", {{"Br", p.blocks.Br}, {"Bc", p.blocks.Bc}}},
          {"Tr", p.Tr},
          {"Tc", p.Tc},
          {"active_blocks", p.active_blocks},
          {"flops", p.flops},
          {"matmul_flops", p.matmul_flops},
          {"hbm", traffic_json(p.traffic)},
          {"roofline", roofline_json(roofline(p.flops, static_cast<double>(p.traffic.bytes()), peak,
                                              bandwidth))}};
}

// Model FLOPs (no recomputation: the standard algorithm's) and each algorithm's own FLOPs, for
// the timed pass.
double pass_flops(const AttentionIo& io, bool step) {
  return step ? io.flops() : io.forward.flops;
}

void print_theorem2(const std::vector<ScalingRow>& rows, int64_t d) {
  std::printf(
      "\nTheorem 2 (one head, forward, element accesses; flash = Algorithm 1 order; d = %lld; M "
      "in elements, rounded down to 4d x 2^k):\n"
      "standard/(Nd+N^2) stays bounded; flash/(N^2 d^2/M) tends to a constant; doubling N "
      "multiplies flash by ~4, doubling M divides it by ~2\n",
      ll(d));
  std::printf("%7s %8s %14s %12s %14s %14s %10s %10s\n", "N", "M", "standard", "/(Nd+N^2)", "flash",
              "/(N^2d^2/M)", "x(N/2)", "x(2M)");
  for (const ScalingRow& r : rows) {
    std::printf("%7lld %8lld %14lld %12.3f %14lld %14.3f %10s %10s\n", ll(r.N), ll(r.M),
                ll(r.standard), r.standard_over_bound, ll(r.flash), r.flash_over_bound,
                r.flash_vs_half_n > 0 ? strf("%.3f", r.flash_vs_half_n).c_str() : "-",
                r.flash_vs_half_m > 0 ? strf("%.3f", r.flash_vs_half_m).c_str() : "-");
  }
}

void print_paper(const std::vector<PaperRow>& rows) {
  const PaperFigures paper;
  std::printf(
      "\nFlashAttention paper, GPT-2 medium (B=64, H=16, N=1024, d=64, fp16, A100), forward + "
      "backward:\npaper: standard %.1f GB HBM, %.1f GFLOPs; FlashAttention %.1f GB, %.1f GFLOPs "
      "(1 GB = 10^9 bytes; the authors give 825 and 963 GFLOPs for the matmuls, the table's "
      "GFLOPs being off by a factor)\n",
      paper.standard_hbm_gb, paper.standard_gflops, paper.flash_hbm_gb, paper.flash_gflops);
  std::printf("%-38s %9s %9s %9s %8s\n", "accounting", "HBM GB", "paper GB", "error", "GFLOP");
  for (const PaperRow& r : rows) {
    std::printf("%-38s %9.3f %9.1f %8.1f%% %8.1f\n", r.accounting.name.c_str(), r.hbm_gb,
                r.paper_hbm_gb, 100 * r.relative_error, r.gflops);
  }
}

void run(const AttentionOptions& o) {
  const Setup s = setup_of(o);
  const bool step = o.time_pass == "step";
  std::vector<AttentionIo> ios;
  for (AttentionAlgo a : {AttentionAlgo::standard, AttentionAlgo::flash1, AttentionAlgo::flash2}) {
    ios.push_back(attention_io(a, s.dims, s.io));
  }
  const double model_flops = pass_flops(ios[0], step);
  std::vector<ScalingRow> scaling;
  if (o.theorem2) {
    // M rounded down to 4d·2^k, so that B_c = M/4d is a power of two that divides every N in the
    // table: the ceilings in T_c = ⌈N/B_c⌉ then do not blur the ratios.
    int64_t top = 4 * s.dims.d;
    while (top * 2 <= s.io.M) top *= 2;
    std::vector<int64_t> Ms;
    for (int64_t m : {top / 4, top / 2, top}) {
      if (m >= 4 * s.dims.d) Ms.push_back(m);
    }
    scaling =
        theorem2_table(s.dims.d, {1024, 2048, 4096, 8192, 16384}, Ms, AttentionAlgo::flash1, false);
  }
  std::vector<PaperRow> paper;
  if (o.paper) paper = gpt2_medium_rows();

  if (o.json) {
    ojson j;
    j["config"] = {{"batch", s.dims.B},
                   {"heads", s.dims.H},
                   {"seq_q", s.dims.Nq},
                   {"seq_k", s.dims.Nk},
                   {"head_dim", s.dims.d},
                   {"causal", s.dims.causal},
                   {"dtype", o.dtype},
                   {"elem_bytes", s.io.sizes.data},
                   {"stat_bytes", s.io.sizes.stat},
                   {"mask_kernel", o.mask_kernel},
                   {"dropout_kernel", o.dropout_kernel},
                   {"tiled_gemm", o.tiled_gemm},
                   {"count_init", s.io.count_init}};
    j["device"] = device_json(s.device, s.dt, o.dev.tf32);
    j["fast_memory"] = {{"bytes", s.fast_bytes}, {"elements", s.io.M}};
    j["algorithms"] = ojson::array();
    for (const AttentionIo& io : ios) {
      ojson a = {{"name", std::string(algo_name(io.algo))},
                 {"forward", pass_json(io.forward, s.peak, s.device.bandwidth)},
                 {"backward", pass_json(io.backward, s.peak, s.device.bandwidth)},
                 {"total_flops", io.flops()},
                 {"total_bytes", io.bytes()},
                 {"total_elements", io.elements()}};
      if (io.algo == AttentionAlgo::standard) a["softmax_passes"] = io.softmax_passes;
      if (o.dev.time_ms > 0) {
        a["hfu"] = utilization(pass_flops(io, step), o.dev.time_ms / 1e3, s.peak);
      }
      j["algorithms"].push_back(a);
    }
    if (o.dev.time_ms > 0) {
      j["timing"] = {{"time_ms", o.dev.time_ms},
                     {"pass", o.time_pass},
                     {"model_flops", model_flops},
                     {"mfu", utilization(model_flops, o.dev.time_ms / 1e3, s.peak)}};
    }
    if (o.theorem2) {
      j["theorem2"] = ojson::array();
      for (const ScalingRow& r : scaling) {
        j["theorem2"].push_back({{"N", r.N},
                                 {"M", r.M},
                                 {"standard", r.standard},
                                 {"flash", r.flash},
                                 {"standard_over_bound", r.standard_over_bound},
                                 {"flash_over_bound", r.flash_over_bound},
                                 {"flash_vs_half_n", r.flash_vs_half_n},
                                 {"flash_vs_half_m", r.flash_vs_half_m}});
      }
    }
    if (o.paper) {
      const PaperFigures f;
      ojson rows = ojson::array();
      for (const PaperRow& r : paper) {
        rows.push_back({{"name", r.accounting.name},
                        {"description", r.accounting.description},
                        {"algorithm", std::string(algo_name(r.accounting.algo))},
                        {"hbm_gb", r.hbm_gb},
                        {"paper_hbm_gb", r.paper_hbm_gb},
                        {"relative_error", r.relative_error},
                        {"gflops", r.gflops}});
      }
      j["paper"] = {{"standard_hbm_gb", f.standard_hbm_gb},
                    {"flash_hbm_gb", f.flash_hbm_gb},
                    {"standard_gflops", f.standard_gflops},
                    {"flash_gflops", f.flash_gflops},
                    {"rows", rows}};
    }
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }

  std::printf(
      "tilegrad analyze attention: B=%lld H=%lld Nq=%lld Nk=%lld d=%lld, %s, %s (%lld bytes; "
      "statistics %lld bytes)\n",
      ll(s.dims.B), ll(s.dims.H), ll(s.dims.Nq), ll(s.dims.Nk), ll(s.dims.d),
      s.dims.causal ? "causal" : "not causal", o.dtype.c_str(), ll(s.io.sizes.data),
      ll(s.io.sizes.stat));
  std::printf("%s\n", device_line(s.device, s.dt, o.dev.tf32).c_str());
  std::printf(
      "fast memory M = %lld bytes = %lld elements; bytes are the IO model's slow-memory traffic "
      "(docs/IO_MODEL.md)\n\n",
      ll(s.fast_bytes), ll(s.io.M));
  std::printf("%-9s %-9s %11s %10s %15s %11s %s\n", "algorithm", "pass", "Br x Bc", "GFLOP",
              "HBM accesses", "HBM MB", roofline_header().c_str());
  for (const AttentionIo& io : ios) {
    for (const PassIo* p : {&io.forward, &io.backward}) {
      const std::string blocks = io.algo == AttentionAlgo::standard && !o.tiled_gemm
                                     ? std::string("-")
                                     : strf("%lldx%lld", ll(p->blocks.Br), ll(p->blocks.Bc));
      const Roofline r =
          roofline(p->flops, static_cast<double>(p->traffic.bytes()), s.peak, s.device.bandwidth);
      std::printf("%-9s %-9s %11s %10.4f %15lld %11.3f %s\n",
                  std::string(algo_name(io.algo)).c_str(),
                  p == &io.forward ? "forward" : "backward", blocks.c_str(), p->flops / 1e9,
                  ll(p->traffic.elements()), static_cast<double>(p->traffic.bytes()) / 1e6,
                  roofline_cells(r).c_str());
      if (o.tensors) {
        for (const TensorTraffic& t : p->traffic.tensors) {
          std::printf("%21s %-12s reads %14lld  writes %14lld  (%lld bytes each)\n", "",
                      t.name.c_str(), ll(t.reads), ll(t.writes), ll(t.elem_bytes));
        }
      }
    }
  }
  std::printf("\n%-9s %12s %14s %12s\n", "total", "GFLOP", "HBM MB", "vs standard");
  for (const AttentionIo& io : ios) {
    std::printf("%-9s %12.4f %14.3f %11.3fx\n", std::string(algo_name(io.algo)).c_str(),
                io.flops() / 1e9, static_cast<double>(io.bytes()) / 1e6,
                static_cast<double>(io.bytes()) / static_cast<double>(ios[0].bytes()));
  }
  if (o.dev.time_ms > 0) {
    std::printf(
        "\nmeasured %.4f ms for the %s: MFU %.2f%% (model FLOPs %.4g, the standard algorithm's; no "
        "recomputation)\n",
        o.dev.time_ms, step ? "forward + backward" : "forward",
        100 * utilization(model_flops, o.dev.time_ms / 1e3, s.peak), model_flops);
    for (const AttentionIo& io : ios) {
      std::printf("  if it was %s: HFU %.2f%% (its own FLOPs, recomputation included)\n",
                  std::string(algo_name(io.algo)).c_str(),
                  100 * utilization(pass_flops(io, step), o.dev.time_ms / 1e3, s.peak));
    }
  }
  if (o.theorem2) print_theorem2(scaling, s.dims.d);
  if (o.paper) print_paper(paper);
}

}  // namespace

void add_analyze_attention(CLI::App& analyze) {
  auto o = std::make_shared<AttentionOptions>();
  CLI::App* cmd = analyze.add_subcommand(
      "attention", "Standard vs flash attention: FLOPs, HBM traffic (IO model), roofline, MFU");
  cmd->add_option("--batch", o->batch, "Batch B")->check(at_least_one())->capture_default_str();
  cmd->add_option("--heads", o->heads, "Heads H")->check(at_least_one())->capture_default_str();
  cmd->add_option("--seq", o->seq, "Query length N (Nq)")
      ->check(at_least_one())
      ->capture_default_str();
  cmd->add_option("--seq-k", o->seq_k, "Key length Nk (default: --seq)")->check(at_least_one());
  cmd->add_option("--head-dim", o->head_dim, "Head dimension d")
      ->check(at_least_one())
      ->capture_default_str();
  cmd->add_flag("--causal", o->causal, "Causal mask (bottom-right aligned); flash skips blocks");
  cmd->add_option("--dtype", o->dtype, "Element type of Q, K, V, O, S, P")
      ->check(CLI::IsMember({"f64", "f32", "bf16", "f16"}))
      ->capture_default_str();
  cmd->add_option("--fast-memory", o->fast_memory,
                  "Fast memory M in bytes, e.g. 192KB (default: the device's SRAM per SM)")
      ->type_name("BYTES");
  cmd->add_option("--block-rows", o->block_rows, "B_r (default: from M)")->check(at_least_one());
  cmd->add_option("--block-cols", o->block_cols, "B_c (default: from M)")->check(at_least_one());
  cmd->add_flag("--mask-kernel", o->mask_kernel, "Standard: a separate masking kernel");
  cmd->add_flag("--dropout-kernel", o->dropout_kernel,
                "Standard: a separate dropout kernel with a 1-byte mask");
  cmd->add_flag("--tiled-gemm", o->tiled_gemm,
                "Standard: GEMMs re-read the streamed operand for every block of M");
  cmd->add_flag("--no-init", o->no_init,
                "Flash: fold the zero initialisation into the first visit of each block");
  cmd->add_option("--stat-bytes", o->stat_bytes, "Bytes per softmax statistic (l, m, L, D)")
      ->check(at_least_one())
      ->capture_default_str();
  cmd->add_flag("--tensors", o->tensors, "Per-tensor reads and writes under each row");
  cmd->add_flag("--theorem2", o->theorem2,
                "Also print Theorem 2's scaling table over N and M (for this d and M)");
  cmd->add_flag("--paper", o->paper,
                "Also print the FlashAttention paper's GPT-2 medium example under several "
                "accountings");
  cmd->add_option("--time-pass", o->time_pass, "What --time-ms measured: forward or step")
      ->check(CLI::IsMember({"forward", "step"}))
      ->capture_default_str();
  add_device_options(cmd, o->dev);
  cmd->add_flag("--json", o->json, "Print one JSON object instead of tables");
  cmd->callback([o] { run(*o); });
}

}  // namespace tilegrad::apps
