// The training loop (trainer.h, Note [Bit-exact resume]).
#include "train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <exception>
#include <fstream>
#include <memory>

#include "autograd/grad_mode.h"
#include "backend/backend.h"
#include "core/error.h"
#include "data/batch_sampler.h"
#include "data/read_file.h"
#include "data/token_file.h"
#include "data/tokenizer_file.h"
#include "io/atomic_file.h"
#include "io/checkpoint.h"
#include "memory/tracker.h"
#include "optim/adamw.h"
#include "optim/lr_schedule.h"
#include "train/captured_step.h"
#include "train/step.h"

namespace tilegrad::train {

nlohmann::json model_json(const models::GPTConfig& m) {
  nlohmann::json j = {{"L", m.L},
                      {"H", m.H},
                      {"C", m.C},
                      {"V", m.V},
                      {"T", m.T},
                      {"dropout", m.dropout},
                      {"dtype", std::string(dtype_name(m.dtype))},
                      {"attention", m.attention == AttentionImpl::flash ? "flash" : "standard"}};
  // Written only when false: a model with biases has the JSON (and config hash) it had before the
  // option existed, so its checkpoints from then still resume.
  if (!m.bias) j["bias"] = false;
  return j;
}

models::GPTConfig model_from_json(const nlohmann::json& j) {
  models::GPTConfig m;
  m.L = j.at("L").get<int>();
  m.H = j.at("H").get<int64_t>();
  m.C = j.at("C").get<int64_t>();
  m.V = j.at("V").get<int64_t>();
  m.T = j.at("T").get<int64_t>();
  m.dropout = j.at("dropout").get<double>();
  m.bias = j.value("bias", true);
  m.dtype = parse_dtype(j.at("dtype").get<std::string>());
  m.attention = j.at("attention").get<std::string>() == "flash" ? AttentionImpl::flash
                                                                : AttentionImpl::standard;
  return m;
}

double flops_per_token(const models::GPTConfig& m, int64_t num_params) {
  return 6.0 * static_cast<double>(num_params) +
         12.0 * m.L * static_cast<double>(m.C) * static_cast<double>(m.T);
}

namespace {

// Host copies of device tensors (the tensors themselves when they are on the host already), for
// the checkpoint files.
NamedTensors host_copies(const NamedTensors& ts) {
  NamedTensors out;
  out.reserve(ts.size());
  for (const NamedTensor& t : ts) out.push_back({t.name, t.tensor.to(Device::cpu())});
  return out;
}

// Writes host tensors into their device originals (nothing to do when they are the same tensor).
void copy_back(const NamedTensors& host, const NamedTensors& dst) {
  NoGradGuard no_grad;
  for (size_t i = 0; i < host.size(); ++i) {
    if (host[i].tensor.storage() == dst[i].tensor.storage()) continue;
    dst[i].tensor.copy_(host[i].tensor.to(dst[i].tensor.device()));
  }
}

// Sets the backend's GEMM tuning for the run and restores what it was.
class GemmTuningScope {
 public:
  GemmTuningScope(Backend& be, bool on) : be_(be), prev_(be.gemm_tuning()) {
    be_.set_gemm_tuning(on);
  }
  ~GemmTuningScope() { be_.set_gemm_tuning(prev_); }
  GemmTuningScope(const GemmTuningScope&) = delete;
  GemmTuningScope& operator=(const GemmTuningScope&) = delete;

 private:
  Backend& be_;
  bool prev_;
};

// The error for a step that threw `e`: the step, what went wrong and where --resume continues.
// `last` is this run's last complete checkpoint (saved, or resumed from); --resume takes the
// highest step under the root, which an earlier run in the same directory may have left.
std::string step_failure(int64_t step, const TrainConfig& c, const std::exception& e,
                         const std::optional<std::filesystem::path>& last,
                         const std::filesystem::path& ckpt_root) {
  std::string s = detail::cat("train: step ", step, " of ", c.steps, " failed: ", e.what(), ". ");
  if (last) {
    s += detail::cat("The last complete checkpoint is ", last->string(),
                     "; `tilegrad train --resume` with the same options continues from it");
  } else {
    s += "No checkpoint was written before it (--checkpoint-interval K saves every K steps)";
  }
  const std::optional<std::filesystem::path> latest = io::latest_checkpoint(ckpt_root);
  if (latest && latest != last) {
    s += detail::cat(" (but --resume would take ", latest->string(),
                     ", left by an earlier run: move it away first)");
  }
  return s;
}

}  // namespace

TrainResult run_training(
    const TrainConfig& c0, const std::function<void(const StepMetrics&)>& on_step,
    const std::function<double()>& peak_flops,
    const std::function<void(const MemoryPrediction&, const AvailableMemory&)>& on_memory_check) {
  TrainConfig c = c0;
  TG_CHECK(c.steps >= 1 && c.batch >= 1 && c.accumulation >= 1 && c.eval_iters >= 1,
           "train: steps, batch, accumulation and eval_iters must be >= 1");
  TG_CHECK(c.memory_limit >= 0, "train: the memory limit must be >= 0 bytes, got ", c.memory_limit);
  TG_CHECK(std::filesystem::is_directory(c.data_dir), "train: dataset directory ",
           c.data_dir.string(), " does not exist (`tilegrad prepare` makes one)");
  const std::unique_ptr<data::Tokenizer> tokenizer = data::load_tokenizer(c.data_dir);
  c.model.V = tokenizer->vocab_size();
  auto train_data = std::make_shared<const data::TokenFile>(
      data::TokenFile::open(c.data_dir / "train.bin", c.model.V));
  auto val_data = std::make_shared<const data::TokenFile>(
      data::TokenFile::open(c.data_dir / "val.bin", c.model.V));

  // GEMM tuning (TrainConfig::gemm_tuning) before any GEMM, the memory check's probe included: a
  // problem is tuned at its first call, or takes the choice of the run that --resume continues.
  Backend& device_backend = backend(c.device);
  const GemmTuningScope gemm_tuning(device_backend, c.gemm_tuning);
  const std::filesystem::path tuning_file = c.out_dir / "gemm_tuning.json";
  if (c.gemm_tuning && c.resume && std::filesystem::exists(tuning_file))
    device_backend.load_gemm_tuning_state(data::read_file(tuning_file, "GEMM tuning state"));

  TrainResult result;
  std::optional<std::filesystem::path> last_checkpoint;  // this run's last complete one
  // The memory check, before anything is built or written (memory_check.h), when there is
  // something to compare with (a CUDA device's free memory or a limit); what the device has free
  // is read after the probe, whose blocks the caching allocator then holds.
  if (c.memory_check && available_memory(c).has_value()) {
    const MemoryPrediction p = predict_memory(c, train_data, val_data);
    const AvailableMemory a = available_memory(c).value();
    check_memory(p, a, c);
    result.memory_prediction = p;
    result.memory_available = a;
    if (on_memory_check) on_memory_check(p, a);
  }

  // Every tensor created below without a device (the model's parameters, the optimizer's state,
  // activations) goes to the training device.
  const DeviceScope on_device(c.device);
  Generator init(c.seed);
  models::GPT model(c.model, init);
  const NamedParameters params = model.named_parameters();
  optim::AdamW opt(params, adamw_options(c));
  optim::WarmupCosineConfig sc;
  sc.max_lr = c.lr;
  sc.min_lr = c.min_lr;
  sc.warmup_iters = c.warmup;
  sc.decay_iters = c.steps;
  const optim::WarmupCosineSchedule schedule(sc);

  Generator dropout_gen(c.seed + 1);
  Generator sampler_gen(c.seed + 2);
  const nlohmann::json config_json = model_json(c.model);
  const std::filesystem::path ckpt_root = c.out_dir / "checkpoints";
  std::filesystem::create_directories(c.out_dir);
  data::save_tokenizer(*tokenizer, c.out_dir);  // so that `sample` needs only the run directory

  if (c.resume) {
    const auto latest = io::latest_checkpoint(ckpt_root);
    TG_CHECK(latest.has_value(), "train: --resume found no checkpoint under ", ckpt_root.string());
    io::LoadOptions lo;
    lo.expected_config = config_json;
    lo.expected_config_name = c.preset;
    // Files are read into host tensors, then copied to the device ones.
    const NamedTensors host_params = host_copies(params),
                       host_state = host_copies(opt.state_tensors());
    const io::CheckpointInfo info = io::load_checkpoint(*latest, host_params, host_state, lo);
    copy_back(host_params, params);
    copy_back(host_state, opt.state_tensors());
    opt.load_state_scalars(info.optimizer_scalars);
    dropout_gen.set_state(info.state.rng_seed, info.state.rng_offset);
    sampler_gen.set_state(info.state.data.at("seed").get<uint64_t>(),
                          info.state.data.at("offset").get<uint64_t>());
    result.first_step = info.state.step;
    last_checkpoint = *latest;
  }
  data::BatchSampler sampler(train_data, c.batch, c.model.T, sampler_gen);

  auto save = [&](int64_t step) {
    io::Checkpoint ck;
    ck.model = host_copies(params);
    ck.optimizer = host_copies(opt.state_tensors());
    ck.optimizer_scalars = opt.state_scalars();
    ck.state.step = step;
    ck.state.rng_seed = dropout_gen.seed();
    ck.state.rng_offset = dropout_gen.offset();
    ck.state.data = {{"seed", sampler.generator().seed()},
                     {"offset", sampler.generator().offset()}};
    ck.state.config_name = c.preset;
    ck.state.config = config_json;
    io::save_checkpoint(io::step_checkpoint_dir(ckpt_root, step), ck);
    last_checkpoint = io::step_checkpoint_dir(ckpt_root, step);
    // Every choice so far (a superset of those the checkpoint's steps used).
    const std::string tuning = c.gemm_tuning ? device_backend.gemm_tuning_state() : "";
    if (!tuning.empty()) {
      io::AtomicFile f(tuning_file);
      f.write(tuning);
      f.commit();
    }
  };

  std::ofstream metrics(c.out_dir / "metrics.jsonl", c.resume ? std::ios::app : std::ios::trunc);
  TG_CHECK(metrics.good(), "train: cannot write ", (c.out_dir / "metrics.jsonl").string());
  const double fpt = flops_per_token(c.model, model.num_parameters());
  MemoryScope memory(false, c.device);
  // Profiled steps: [profile_first, profile_last].
  const int64_t profile_first = std::min(result.first_step + 3, c.steps);
  const int64_t profile_last = std::min(profile_first + c.profile_steps - 1, c.steps);

  // Note [Captured steps]: the recorded forward and backward, from this process's second step on.
  std::string graph_off = CapturedStep::unsupported_reason(c);
  std::unique_ptr<CapturedStep> captured;

  // One step: forward and backward of its micro-batches, the update, and the validation and
  // checkpoint that fall on it.
  auto run_step = [&](int64_t step) {
    const bool profile_begins = c.profile_steps > 0 && step == profile_first;
    if (profile_begins) {
      device_backend.synchronize();
      device_backend.start_profile();
    }
    const auto t0 = std::chrono::steady_clock::now();
    opt.set_lr(schedule(step - 1));
    const bool fault = step == c.fault_at_step;
    if (fault && c.fault_kind == TrainConfig::FaultKind::device)
      device_backend.inject_device_fault();
    double loss_sum = 0;
    if (captured) {
      captured->load(sampler.next());
      captured->replay();
    } else if (graph_off.empty() && step > result.first_step + 1) {
      const data::Batch b = sampler.next();
      try {
        captured = CapturedStep::record(model, b, c, dropout_gen);
      } catch (const Error& e) {
        graph_off = detail::cat("the capture at step ", step, " failed: ", e.what());
      }
      if (captured) {
        result.graph_step = step;
        result.graph_operations = captured->operations();
        captured->replay();
      } else {
        loss_sum = forward_backward(model, b, c, dropout_gen);
      }
    } else {
      loss_sum = forward_backward(model, sampler, c.accumulation, c, dropout_gen);
    }
    TG_CHECK(!fault, "injected fault (--fault-at-step ", step, ", for tests)");
    const optim::StepResult r = update(opt, c.accumulation, c, captured != nullptr);
    // A replay's loss is read after the update is queued behind it: the device then goes from the
    // recorded step to the update without waiting for the host.
    if (captured) loss_sum = captured->loss();
    if (c.profile_steps > 0 && step >= profile_first && step <= profile_last) {
      device_backend.synchronize();  // the step's wall time includes its device work
      result.profiled_wall_s +=
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      result.profiled_steps += 1;
      if (step == profile_last) result.profile = device_backend.stop_profile();
    }
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    StepMetrics m;
    m.step = step;
    m.loss = loss_sum / static_cast<double>(c.accumulation);
    m.lr = opt.lr();
    m.replayed = captured != nullptr;
    m.grad_norm = r.grad_norm;
    const double tokens = static_cast<double>(c.batch * c.accumulation * c.model.T);
    m.tokens_per_s = tokens / dt;
    const double peak = peak_flops ? peak_flops() : 0.0;
    m.mfu = peak > 0 ? fpt * m.tokens_per_s / peak : 0;
    m.peak_bytes = memory.snapshot().peak_total;
    if ((c.eval_interval > 0 && step % c.eval_interval == 0) || step == c.steps) {
      auto eval = [&] { m.val_loss = evaluate(model, val_data, c, step, c.eval_iters); };
      if (captured) {
        captured->run_in_pool(eval);
      } else {
        eval();
      }
    }
    if ((c.checkpoint_interval > 0 && step % c.checkpoint_interval == 0) || step == c.steps)
      save(step);
    return m;
  };

  for (int64_t step = result.first_step + 1; step <= c.steps; ++step) {
    StepMetrics m;
    try {
      m = run_step(step);
    } catch (const std::exception& e) {
      const std::string what = step_failure(step, c, e, last_checkpoint, ckpt_root);
      if (dynamic_cast<const Error*>(&e) != nullptr) {
        std::throw_with_nested(StepError(what, step, last_checkpoint));
      }
      std::throw_with_nested(std::runtime_error(what));
    }
    nlohmann::json j = {{"step", m.step},
                        {"loss", m.loss},
                        {"lr", m.lr},
                        {"grad_norm", m.grad_norm},
                        {"tokens_per_s", m.tokens_per_s},
                        {"peak_bytes", m.peak_bytes}};
    if (m.val_loss >= 0) j["val_loss"] = m.val_loss;
    if (m.replayed) j["graph"] = true;
    metrics << j.dump() << "\n" << std::flush;
    result.steps.push_back(m);
    if (on_step) on_step(m);
  }
  result.graph_off_reason = captured ? "" : graph_off;
  return result;
}

}  // namespace tilegrad::train
