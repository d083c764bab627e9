// `tilegrad train`: trains a GPT preset on a prepared dataset (train.bin, val.bin, tokenizer.json
// from `tilegrad prepare`), with a live progress line, metrics as JSON lines, checkpoints that
// `--resume` continues bit-exactly, a loss-curve SVG at the end, and a short sample.
#include <CLI/CLI.hpp>

#include <unistd.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>

#include "analysis/measured_peak.h"
#include "apps/cli_util.h"
#include "apps/commands.h"
#include "apps/loss_svg.h"
#include "apps/plan_chain.h"
#include "backend/backend.h"
#include "core/error.h"
#include "data/tokenizer_file.h"
#include "io/checkpoint.h"
#include "memory/tracker.h"
#include "models/sampling.h"
#include "ops/lm_head_cross_entropy.h"
#include "train/trainer.h"

namespace tilegrad::apps {

namespace {

struct Options {
  std::string preset = "shakespeare-char";
  std::string data, out = "out";
  std::string remat = "none";
  int64_t head_chunk = kDefaultLmHeadChunkRows;
  std::string attention = "flash";
  int64_t steps = 200, batch = 8, block = 0, accumulation = 1;
  double lr = 1e-3, min_lr = 1e-4, dropout = -1, peak_gflops = 0;
  int64_t warmup = -1, eval_interval = 50, eval_iters = 10, checkpoint_interval = 0;
  int64_t layers = 0, heads = 0, width = 0;
  uint64_t seed = 1337;
  bool resume = false;
  bool no_bias = false;
  bool f32_residual = false;
  int64_t sample_tokens = 200;
  std::string device;  // empty: cuda when a GPU is present, else cpu
  std::string dtype = "f32";
  int64_t profile = 0;
  std::string memory_limit;  // empty: none
  bool no_memory_check = false;
  bool no_gemm_tune = false;
  bool no_cuda_graph = false;
  int64_t fault_at_step = 0;
  std::string fault_kind = "error";
};

std::string duration(double s) {
  const auto t = static_cast<int64_t>(s + 0.5);
  return t >= 60 ? strf("%lldm%02llds", ll(t / 60), ll(t % 60)) : strf("%llds", ll(t));
}

void run(const Options& o) {
  train::TrainConfig c;
  c.preset = o.preset;
  c.model = models::gpt_preset(o.preset);
  if (o.layers > 0) c.model.L = static_cast<int>(o.layers);
  if (o.heads > 0) c.model.H = o.heads;
  if (o.width > 0) c.model.C = o.width;
  if (o.block > 0) c.model.T = o.block;
  if (o.dropout >= 0) c.model.dropout = o.dropout;
  if (o.no_bias) c.model.bias = false;
  c.model.residual_f32 = o.f32_residual;
  c.model.remat = o.remat;
  c.model.head_chunk = o.head_chunk;
  c.model.attention = o.attention == "standard" ? AttentionImpl::standard : AttentionImpl::flash;
  c.data_dir = o.data;
  c.out_dir = o.out;
  c.steps = o.steps;
  c.batch = o.batch;
  c.accumulation = o.accumulation;
  c.lr = o.lr;
  c.min_lr = o.min_lr;
  // Default warmup: 20 steps, or a tenth of a shorter run.
  c.warmup = o.warmup >= 0 ? o.warmup : std::min<int64_t>(20, o.steps / 10);
  c.eval_interval = o.eval_interval;
  c.eval_iters = o.eval_iters;
  c.checkpoint_interval = o.checkpoint_interval;
  c.seed = o.seed;
  c.resume = o.resume;
  c.device = o.device.empty()
                 ? (device_available(DeviceType::cuda) ? Device::cuda() : Device::cpu())
                 : parse_device(o.device);
  TG_CHECK(c.device.is_cpu() || device_available(c.device.type), "train: --device ", c.device.str(),
           ": this build or this machine has no such device");
  c.model.dtype = parse_dtype(o.dtype);
  c.profile_steps = o.profile;
  c.memory_check = !o.no_memory_check;
  if (!o.memory_limit.empty()) c.memory_limit = parse_bytes(o.memory_limit, "--memory-limit");
  TG_CHECK(o.memory_limit.empty() || c.memory_limit > 0, "--memory-limit: must be > 0 bytes, got '",
           o.memory_limit, "'");
  c.fault_at_step = o.fault_at_step;
  c.fault_kind = o.fault_kind == "device" ? train::TrainConfig::FaultKind::device
                                          : train::TrainConfig::FaultKind::error;
  c.gemm_tuning = !o.no_gemm_tune;
  c.cuda_graph = !o.no_cuda_graph;

  std::printf(
      "tilegrad train: %s (L=%d H=%lld C=%lld T=%lld, dropout %.2f,%s %s attention, remat "
      "%s, %s%s) on %s, batch %lld x %lld, %lld steps, on %s\n",
      o.preset.c_str(), c.model.L, ll(c.model.H), ll(c.model.C), ll(c.model.T), c.model.dropout,
      c.model.bias ? "" : " no biases,", o.attention.c_str(), o.remat.c_str(), o.dtype.c_str(),
      c.model.stream_dtype() != c.model.dtype ? ", float32 residual stream" : "", o.data.c_str(),
      ll(c.batch), ll(c.accumulation), ll(c.steps), c.device.str().c_str());
  // MFU's denominator: the given peak, else this machine's measured float32 GEMM rate (see
  // analysis/measured_peak.h), measured again at every validation and the best kept: other load on
  // the machine at the first measurement would otherwise inflate the MFU for the whole run.
  // On a GPU, the device's GEMM rate in the model's dtype on 8192² operands, measured once: the
  // GPU is not shared the way the host's cores are.
  const bool measured = o.peak_gflops <= 0;
  const bool on_gpu = !c.device.is_cpu();
  double peak_flops = !measured ? o.peak_gflops * 1e9
                      : on_gpu  ? analysis::measure_gemm_flops_on(c.device, c.model.dtype, 8192, 10)
                                : analysis::measure_gemm_flops();
  if (measured && on_gpu) {
    std::printf("MFU is against %s's measured %s GEMM rate, %.0f TFLOP/s\n", c.device.str().c_str(),
                o.dtype.c_str(), peak_flops / 1e12);
  } else if (measured) {
    std::printf(
        "MFU is against this machine's measured float32 GEMM rate, %.0f GFLOP/s, measured again "
        "at each validation (--peak-gflops sets a fixed one)\n",
        peak_flops / 1e9);
  }
  std::fflush(stdout);  // the header before the first step, also into a file or pipe
  const auto start = std::chrono::steady_clock::now();
  int64_t first = -1;
  // On a terminal one line is rewritten in place; into a file or pipe, a line per validation (and
  // the last step) keeps logs short.
  const bool tty = isatty(fileno(stdout)) != 0;
  auto progress = [&](const train::StepMetrics& m) {
    if (first < 0) first = m.step - 1;
    const bool keep = m.val_loss >= 0 || m.step == c.steps;
    if (!tty && !keep) return;
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double eta =
        elapsed / static_cast<double>(m.step - first) * static_cast<double>(c.steps - m.step);
    const MemoryStats s = tracker(c.device).stats();
    auto cat = [&](Category k) { return mb(s.peak_of(k)); };
    std::printf(
        "%sstep %lld/%lld  loss %.4f%s  %.0f tok/s  MFU %.2f%%  peak %.1f MB (param %.1f grad "
        "%.1f optim %.1f act %.1f)  ETA %s   ",
        tty ? "\r" : "", ll(m.step), ll(c.steps), m.loss,
        m.val_loss >= 0 ? strf("  val %.4f", m.val_loss).c_str() : "", m.tokens_per_s, 100 * m.mfu,
        mb(s.peak_total), cat(Category::parameter), cat(Category::gradient),
        cat(Category::optimizer_state), cat(Category::activation), duration(eta).c_str());
    if (keep || !tty) std::printf("\n");
    std::fflush(stdout);
    if (measured && !on_gpu && m.val_loss >= 0) {
      peak_flops = std::max(peak_flops, analysis::measure_gemm_flops());
    }
  };
  auto memory_checked = [](const train::MemoryPrediction& p, const train::AvailableMemory& a) {
    std::printf("memory check: predicted peak %s; %.1f MB available (%s); checked in %.2f s\n",
                train::describe(p).c_str(), mb(a.bytes), a.source.c_str(), p.seconds);
    std::fflush(stdout);
  };
  const train::TrainResult r = train::run_training(
      c, progress, [&] { return peak_flops; }, memory_checked);

  if (c.device.type == DeviceType::cuda) {
    if (r.graph_step > 0) {
      std::printf(
          "\nCUDA graph: forward and backward recorded at step %lld (%lld operations) and "
          "replayed from then on\n",
          ll(r.graph_step), ll(r.graph_operations));
    } else {
      std::printf("\nCUDA graph: not used (%s)\n", r.graph_off_reason.c_str());
    }
    // The driver's view beside the tracker's: the allocator's segments (cache and a graph's pool
    // included) and what the device has in use (this process's context and other processes too).
    const std::optional<DeviceMemoryInfo> dm = backend(c.device).device_memory();
    std::printf(
        "device memory at the end: %.1f MB held by tilegrad's allocator, %.1f MB in use on "
        "the device (driver)\n",
        mb(tracker(c.device).stats().reserved), dm ? mb(dm->total - dm->free) : -1.0);
  }
  if (r.profiled_steps > 0) {
    double busy = 0;
    for (const ProfileRow& row : r.profile) busy += row.seconds;
    const auto n = static_cast<double>(r.profiled_steps);
    std::printf(
        "\nprofile of %lld steps on %s (per step; category = memory category in force):\n%s",
        ll(r.profiled_steps), c.device.str().c_str(),
        format_profile(r.profile, r.profiled_steps).c_str());
    std::printf("wall %.3f ms/step, device busy in backend entries %.3f ms/step (%.1f%%)\n",
                1e3 * r.profiled_wall_s / n, 1e3 * busy / n,
                r.profiled_wall_s > 0 ? 100.0 * busy / r.profiled_wall_s : 0.0);
    if (r.profile.empty()) std::printf("(this device's backend does not time its entries)\n");
  }
  const std::filesystem::path svg = std::filesystem::path(o.out) / "loss.svg";
  std::ofstream(svg) << loss_svg(r.steps, "tilegrad train " + o.preset);
  std::printf("metrics: %s; loss curve: %s; checkpoint: %s\n",
              (std::filesystem::path(o.out) / "metrics.jsonl").string().c_str(),
              svg.string().c_str(),
              (std::filesystem::path(o.out) / "checkpoints").string().c_str());
  if (o.sample_tokens > 0) {
    // A sample from the trained weights, so a run ends with text a person can judge.
    const auto tokenizer = data::load_tokenizer(o.data);
    Generator init(c.seed);
    models::GPTConfig mc = c.model;
    mc.V = tokenizer->vocab_size();
    models::GPT model(mc, init);
    const auto latest = io::latest_checkpoint(std::filesystem::path(o.out) / "checkpoints");
    io::load_model_weights(*latest, model.named_parameters());
    models::SampleOptions so;
    so.max_new_tokens = o.sample_tokens;
    so.temperature = 0.8;
    so.top_k = 40;
    Generator gen(c.seed + 7);
    const std::vector<int32_t> prompt = tokenizer->encode("\n");
    const auto ids = models::generate(model, prompt, so, gen);
    std::printf("\nsample:\n%s\n", tokenizer->decode(ids).c_str());
  }
}

}  // namespace

void register_train(CLI::App& app) {
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("train", "Train a GPT on a prepared dataset");
  cmd->add_option("--preset", o->preset, "Model preset")
      ->check(CLI::IsMember(models::gpt_preset_names()))
      ->capture_default_str();
  cmd->add_option("--data", o->data, "Dataset directory from `tilegrad prepare`")->required();
  cmd->add_option("--out", o->out, "Output directory")->capture_default_str();
  cmd->add_option("--remat", o->remat, "none, every:K, sqrt or selective")->capture_default_str();
  cmd->add_option("--head-chunk", o->head_chunk,
                  "Rows per chunk of the fused head + cross-entropy, which never holds the full "
                  "logits and computes their gradient in the forward (0: the plain head, full "
                  "logits)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--device", o->device,
                  "cpu, cuda or cuda:N (default: cuda when a GPU is present, else cpu)");
  cmd->add_option("--dtype", o->dtype,
                  "Parameter and activation dtype (bf16 keeps float32 master weights and moments)")
      ->check(CLI::IsMember({"f32", "bf16"}))
      ->capture_default_str();
  cmd->add_option("--attention", o->attention, "Attention implementation")
      ->check(CLI::IsMember({"flash", "standard"}))
      ->capture_default_str();
  cmd->add_option("--steps", o->steps, "Optimizer steps")
      ->check(at_least_one())
      ->capture_default_str();
  cmd->add_option("--batch", o->batch, "Sequences per micro-batch")
      ->check(at_least_one())
      ->capture_default_str();
  cmd->add_option("--accumulation", o->accumulation, "Micro-batches per step")
      ->check(at_least_one())
      ->capture_default_str();
  cmd->add_option("--block", o->block, "Context length T (default: the preset's)");
  cmd->add_option("--layers", o->layers, "Override the preset's layers");
  cmd->add_option("--heads", o->heads, "Override the preset's heads");
  cmd->add_option("--width", o->width, "Override the preset's width C");
  cmd->add_option("--dropout", o->dropout, "Override the preset's dropout");
  cmd->add_flag("--no-bias", o->no_bias,
                "No biases in the linear layers and layer norms (nanoGPT's bias = False)");
  cmd->add_flag("--f32-residual", o->f32_residual,
                "With --dtype bf16, keep the residual stream and its gradient in float32 (as "
                "PyTorch's autocast does)");
  cmd->add_option("--lr", o->lr, "Peak learning rate")->capture_default_str();
  cmd->add_option("--min-lr", o->min_lr, "Final learning rate")->capture_default_str();
  cmd->add_option("--warmup", o->warmup, "Warmup steps (default: min(20, steps / 10))");
  cmd->add_option("--eval-interval", o->eval_interval, "Steps between validations")
      ->capture_default_str();
  cmd->add_option("--eval-iters", o->eval_iters, "Batches per validation")
      ->check(at_least_one())
      ->capture_default_str();
  cmd->add_option("--checkpoint-interval", o->checkpoint_interval,
                  "Steps between checkpoints (0: at the end)");
  cmd->add_option("--seed", o->seed, "Seed of every random stream")->capture_default_str();
  cmd->add_option("--peak-gflops", o->peak_gflops,
                  "Peak GFLOP/s for the MFU (default: a float32 GEMM measured at start)");
  cmd->add_option("--sample-tokens", o->sample_tokens, "Tokens to sample at the end (0: none)")
      ->capture_default_str();
  cmd->add_option("--profile", o->profile,
                  "Print device time per op and backend entry over this many steps (from step 3)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--resume", o->resume, "Continue from the latest checkpoint in --out");
  cmd->add_option("--memory-limit", o->memory_limit,
                  "Refuse the run before its first step if its predicted peak of tracked bytes "
                  "exceeds this (e.g. 2GB, 512MiB); on CUDA the device's free memory also applies");
  cmd->add_flag("--no-memory-check", o->no_memory_check,
                "Skip predicting the peak memory before the first step (and refusing a run that "
                "would not fit)");
  cmd->add_flag(
      "--no-gemm-tune", o->no_gemm_tune,
      "Take the GEMM library's heuristic algorithm for each problem instead of timing its "
      "candidates at the problem's first call and keeping the fastest (CUDA; the choices "
      "go to --out/gemm_tuning.json, which --resume takes)");
  cmd->add_flag("--no-cuda-graph", o->no_cuda_graph,
                "Run every step eagerly instead of recording the forward and backward as a CUDA "
                "graph at the second step and replaying it (recorded only without dropout, with "
                "one micro-batch and without --profile)");
  // Testing only (tests/cli/train_bad_inputs.sh): fail inside step N as a CUDA error would.
  cmd->add_option("--fault-at-step", o->fault_at_step)->group("");
  // `error`: a tilegrad error thrown in the step; `device`: the device made to fail for real.
  cmd->add_option("--fault-kind", o->fault_kind)
      ->check(CLI::IsMember({"error", "device"}))
      ->group("");
  cmd->callback([o] { run(*o); });
}

}  // namespace tilegrad::apps
