// Training checkpoints: a save/load round trip of model, optimizer and training state; a training
// run resumed from a checkpoint reproduces the uninterrupted run's losses and weights bit for bit;
// an interrupted or damaged directory, a checkpoint of another config and running out of disk
// during a save each give a clear error and leave the previous checkpoint intact.
#include "io/checkpoint.h"
#include "io/io_testing.h"
#include "io/safetensors.h"
#include "optim/adamw.h"
#include "optim/lr_schedule.h"
#include "testing.h"

namespace tgtest {
namespace {

namespace fs = std::filesystem;

bool same_bits(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
  return std::memcmp(a.contiguous().data(), b.contiguous().data(),
                     static_cast<size_t>(a.nbytes())) == 0;
}

// A tiny two-layer network: y = tanh(x W1 + b1) W2, loss = mean((y - t)²).
struct Model {
  NamedTensors params;
  explicit Model(uint64_t seed, DType dt = DType::f32) {
    auto make = [&](const char* name, const Shape& s, uint64_t k) {
      Tensor p = rnd(s, seed * 10 + k, dt, -0.5, 0.5);
      p.set_category(Category::parameter);
      p.set_requires_grad();
      params.push_back({name, p});
    };
    make("h.0.mlp.c_fc.weight", {6, 16}, 1);
    make("h.0.mlp.c_fc.bias", {16}, 2);
    make("h.0.mlp.c_proj.weight", {16, 3}, 3);
  }
  const Tensor& p(size_t i) const { return params[i].tensor; }
  Tensor loss(const Tensor& x, const Tensor& t) const {
    const Tensor y = matmul(tanh(matmul(x, p(0)) + p(1)), p(2));
    const Tensor d = y - t;
    return mean(d * d);
  }
};

nlohmann::json model_config() {
  return {{"n_layer", 1}, {"n_embd", 6}, {"hidden", 16}, {"out", 3}};
}

optim::AdamWOptions adam_options() {
  return {.lr = 1e-2, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1};
}

// The run's data: batch `pos` is drawn from the Philox stream at a position derived from `pos`.
std::pair<Tensor, Tensor> batch(uint64_t seed, int64_t pos) {
  Generator gen(seed, static_cast<uint64_t>(pos) * 1024);
  return {randn({5, 6}, gen), randn({5, 3}, gen)};
}

// Training steps [from, to) of the run; returns the losses.
std::vector<float> train(const Model& m, optim::AdamW& opt, io::TrainingState& st, int64_t to) {
  const optim::WarmupCosineSchedule sched(
      {.max_lr = 1e-2, .min_lr = 1e-3, .warmup_iters = 2, .decay_iters = 10});
  std::vector<float> losses;
  for (; st.step < to; ++st.step) {
    opt.set_lr(sched(st.step));
    const int64_t pos = st.data["position"].get<int64_t>();
    const auto [x, t] = batch(st.rng_seed, pos);
    const Tensor loss = m.loss(x, t);
    losses.push_back(static_cast<float>(loss.item()));
    loss.backward();
    opt.step({.max_grad_norm = 1.0});
    opt.zero_grad();
    st.data["position"] = pos + 3;
  }
  return losses;
}

io::Checkpoint checkpoint_of(const Model& m, const optim::Optimizer& opt,
                             const io::TrainingState& st) {
  return {m.params, opt.state_tensors(), opt.state_scalars(), st};
}

io::TrainingState fresh_state() {
  io::TrainingState st;
  st.rng_seed = 0x8000000000000005ull;  // above 2^63: must survive JSON exactly
  st.rng_offset = 12345678901234ull;
  st.data = {{"position", 0}, {"file", "train.bin"}};
  st.config_name = "tiny";
  st.config = model_config();
  st.extra = {{"best_val_loss", 1.25}};
  return st;
}

TEST(TrainingCheckpoint, ResumedTrainingIsBitExact) {
  // Uninterrupted: 10 steps.
  Model a(1);
  optim::AdamW oa(a.params, adam_options());
  io::TrainingState sa = fresh_state();
  const std::vector<float> uninterrupted = train(a, oa, sa, 10);

  // Interrupted after 4 steps, saved, then resumed by fresh objects from another initialisation.
  TempDir root("ckpt");
  {
    Model b(1);
    optim::AdamW ob(b.params, adam_options());
    io::TrainingState sb = fresh_state();
    const std::vector<float> first = train(b, ob, sb, 4);
    EXPECT_EQ(first, std::vector<float>(uninterrupted.begin(), uninterrupted.begin() + 4));
    io::save_checkpoint(io::step_checkpoint_dir(root.path(), sb.step), checkpoint_of(b, ob, sb));
  }
  const std::optional<fs::path> latest = io::latest_checkpoint(root.path());
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ(latest->filename(), "step-00000004");
  Model c(99);
  optim::AdamW oc(c.params, adam_options());
  const io::CheckpointInfo info =
      io::load_checkpoint(*latest, c.params, oc.state_tensors(),
                          {.expected_config = model_config(), .expected_config_name = "tiny"});
  oc.load_state_scalars(info.optimizer_scalars);
  io::TrainingState sc = info.state;
  EXPECT_EQ(sc.step, 4);
  EXPECT_EQ(sc.rng_seed, 0x8000000000000005ull);
  EXPECT_EQ(sc.rng_offset, 12345678901234ull);
  EXPECT_EQ(sc.data["position"], 12);
  EXPECT_EQ(sc.extra["best_val_loss"], 1.25);
  const std::vector<float> rest = train(c, oc, sc, 10);
  EXPECT_EQ(rest, std::vector<float>(uninterrupted.begin() + 4, uninterrupted.end()));
  for (size_t k = 0; k < a.params.size(); ++k) {
    EXPECT_TRUE(same_bits(a.p(k), c.p(k))) << a.params[k].name;
  }
  EXPECT_EQ(oa.state_scalars(), oc.state_scalars());
}

TEST(TrainingCheckpoint, ModelFileIsPlainSafetensorsWithModelNames) {
  TempDir root("ckpt");
  Model m(1, DType::bf16);
  optim::AdamW opt(m.params, adam_options());
  const fs::path dir = root / "ck";
  io::save_checkpoint(dir, checkpoint_of(m, opt, fresh_state()));
  const io::SafetensorsFile f = io::read_safetensors(dir / "model.safetensors");
  ASSERT_EQ(f.tensors.size(), 3u);
  EXPECT_EQ(f.metadata.at("format"), "pt");
  for (const NamedTensor& p : m.params) {
    ASSERT_NE(find_tensor(f.tensors, p.name), nullptr) << p.name;
    EXPECT_TRUE(same_bits(*find_tensor(f.tensors, p.name), p.tensor)) << p.name;  // bf16 as is
  }
  const io::SafetensorsFile o = io::read_safetensors(dir / "optimizer.safetensors");
  EXPECT_EQ(o.tensors.size(), 9u);  // master, exp_avg, exp_avg_sq per parameter
  EXPECT_EQ(find_tensor(o.tensors, "master/h.0.mlp.c_fc.bias")->dtype(), DType::f32);
  const nlohmann::json manifest = nlohmann::json::parse(slurp(dir / "checkpoint.json"));
  EXPECT_EQ(manifest["format"], "tilegrad-checkpoint");
  EXPECT_EQ(manifest["files"]["model.safetensors"]["bytes"],
            fs::file_size(dir / "model.safetensors"));
  EXPECT_EQ(root.entries(), std::vector<std::string>{"ck"});  // no staging or temporaries left
  // Sampling needs the weights only.
  Model fresh(7, DType::bf16);
  io::load_model_weights(dir, fresh.params);
  EXPECT_TRUE(same_bits(fresh.p(2), m.p(2)));
}

TEST(TrainingCheckpoint, IncompleteDirectoryIsRefusedAndSkipped) {
  TempDir root("ckpt");
  Model m(1);
  optim::AdamW opt(m.params, adam_options());
  io::TrainingState st = fresh_state();
  st.step = 100;
  io::save_checkpoint(io::step_checkpoint_dir(root.path(), 100), checkpoint_of(m, opt, st));
  st.step = 200;
  const fs::path d200 = io::step_checkpoint_dir(root.path(), 200);
  io::save_checkpoint(d200, checkpoint_of(m, opt, st));
  // As if the save of step 200 had died before its commit record.
  fs::remove(d200 / "checkpoint.json");
  const std::string msg =
      error_of([&] { io::load_checkpoint(d200, m.params, opt.state_tensors()); });
  EXPECT_NE(msg.find("is incomplete: checkpoint.json is missing"), std::string::npos) << msg;
  EXPECT_EQ(io::latest_checkpoint(root.path())->filename(), "step-00000100");
}

TEST(TrainingCheckpoint, DamagedFilesAreDetected) {
  TempDir root("ckpt");
  Model m(1);
  optim::AdamW opt(m.params, adam_options());
  const fs::path dir = root / "ck";
  io::save_checkpoint(dir, checkpoint_of(m, opt, fresh_state()));
  const std::string good = slurp(dir / "model.safetensors");
  // One flipped bit in the weights.
  std::string bad = good;
  bad[bad.size() - 3] = static_cast<char>(bad[bad.size() - 3] ^ 0x10);
  spit(dir / "model.safetensors", bad);
  Model other(2);
  std::string msg = error_of([&] { io::load_model_weights(dir, other.params); });
  EXPECT_NE(msg.find("model.safetensors has FNV-1a 64 digest"), std::string::npos) << msg;
  EXPECT_NE(msg.find("damaged"), std::string::npos) << msg;
  // Truncated.
  spit(dir / "model.safetensors", good.substr(0, good.size() - 8));
  msg = error_of([&] { io::load_model_weights(dir, other.params); });
  EXPECT_NE(msg.find("model.safetensors is " + std::to_string(good.size() - 8) + " bytes but"),
            std::string::npos)
      << msg;
  // state.json edited by hand.
  spit(dir / "model.safetensors", good);
  std::string state = slurp(dir / "state.json");
  state.replace(state.find("\"step\": 0"), 9, "\"step\": 7");
  spit(dir / "state.json", state);
  msg = error_of([&] { io::read_checkpoint_info(dir); });
  EXPECT_NE(msg.find("state.json has FNV-1a 64 digest"), std::string::npos) << msg;
}

TEST(TrainingCheckpoint, AnotherConfigIsAClearError) {
  TempDir root("ckpt");
  Model m(1);
  optim::AdamW opt(m.params, adam_options());
  const fs::path dir = root / "ck";
  io::save_checkpoint(dir, checkpoint_of(m, opt, fresh_state()));
  // A run with another config: the hash check names both configs.
  nlohmann::json bigger = model_config();
  bigger["hidden"] = 32;
  Model target(5);
  const Tensor before = target.p(0).clone();
  std::string msg = error_of([&] {
    io::load_checkpoint(dir, target.params, opt.state_tensors(),
                        {.expected_config = bigger, .expected_config_name = "tiny-wide"});
  });
  EXPECT_NE(msg.find("was written for config 'tiny'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("this run's config is 'tiny-wide'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("\"hidden\":32"), std::string::npos) << msg;
  // Without a config to compare, the names and shapes still must match; nothing is overwritten.
  NamedTensors wide = target.params;
  wide[1].tensor = zeros({32});
  wide[2].name = "h.0.mlp.c_proj.w";
  msg = error_of([&] { io::load_checkpoint(dir, wide, opt.state_tensors()); });
  EXPECT_NE(msg.find("'h.0.mlp.c_fc.bias' is [16] F32 in the file but [32] float32 here"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("unexpected tensor 'h.0.mlp.c_proj.weight'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("missing tensor 'h.0.mlp.c_proj.w'"), std::string::npos) << msg;
  EXPECT_TRUE(same_bits(target.p(0), before));
  // An optimizer state of another shape fails before the model is touched.
  Model m2(3);
  optim::AdamW o2(m2.params, adam_options());
  NamedTensors st = o2.state_tensors();
  const std::string dropped = st.back().name;
  st.pop_back();
  msg = error_of([&] { io::load_checkpoint(dir, m2.params, st); });
  EXPECT_NE(msg.find("optimizer.safetensors"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unexpected tensor '" + dropped + "'"), std::string::npos) << msg;
  EXPECT_TRUE(same_bits(m2.p(0), Model(3).p(0)));
}

// Runs a save that fails, then checks that step 100's checkpoint is the latest, complete, and
// loads the very bytes it was saved with.
template <class FailingSave>
void expect_previous_checkpoint_survives(FailingSave failing_save, const char* expected_error) {
  TempDir root("ckpt");
  Model m(1);
  optim::AdamW opt(m.params, adam_options());
  io::TrainingState st = fresh_state();
  st.step = 100;
  const fs::path d100 = io::step_checkpoint_dir(root.path(), 100);
  io::save_checkpoint(d100, checkpoint_of(m, opt, st));
  const std::string model100 = slurp(d100 / "model.safetensors");
  const std::string optim100 = slurp(d100 / "optimizer.safetensors");
  const std::string state100 = slurp(d100 / "state.json");
  // The model moves on; saving step 200 fails.
  {
    NoGradGuard no_grad;
    m.p(0).add_(ones_like(m.p(0)));
  }
  st.step = 200;
  const std::string msg = error_of([&] { failing_save(root.path(), checkpoint_of(m, opt, st)); });
  EXPECT_NE(msg.find(expected_error), std::string::npos) << msg;
  EXPECT_NE(msg.find("step-00000200.partial"), std::string::npos) << msg;  // names the file
  EXPECT_EQ(root.entries(), std::vector<std::string>{"step-00000100"});    // staging removed
  EXPECT_EQ(io::latest_checkpoint(root.path()), d100);
  EXPECT_EQ(slurp(d100 / "model.safetensors"), model100);
  EXPECT_EQ(slurp(d100 / "optimizer.safetensors"), optim100);
  EXPECT_EQ(slurp(d100 / "state.json"), state100);
  Model back(9);
  optim::AdamW ob(back.params, adam_options());
  EXPECT_EQ(io::load_checkpoint(d100, back.params, ob.state_tensors()).state.step, 100);
}

TEST(TrainingCheckpoint, OutOfDiskDuringSaveKeepsThePreviousCheckpoint) {
  if (!fs::exists("/dev/full")) GTEST_SKIP() << "no /dev/full on this system";
  expect_previous_checkpoint_survives(
      [](const fs::path& root, const io::Checkpoint& c) {
        io::save_checkpoint(io::step_checkpoint_dir(root, 200), c,
                            {.write = {.redirect_writes_to = "/dev/full"}});
      },
      "No space left on device");
}

TEST(TrainingCheckpoint, FileSizeLimitMidSaveKeepsThePreviousCheckpoint) {
  // The kernel refuses to grow any file past the model file's size: model.safetensors is written
  // into the staging directory, optimizer.safetensors (3x larger) fails part-way.
  expect_previous_checkpoint_survives(
      [](const fs::path& root, const io::Checkpoint& c) {
        FileSizeLimit limit(1200);
        io::save_checkpoint(io::step_checkpoint_dir(root, 200), c);
      },
      "File too large");
}

TEST(TrainingCheckpoint, ReplacingAndPruning) {
  TempDir root("ckpt");
  Model m(1);
  optim::AdamW opt(m.params, adam_options());
  io::TrainingState st = fresh_state();
  for (int64_t step : {10, 20, 30, 40}) {
    st.step = step;
    io::save_checkpoint(io::step_checkpoint_dir(root.path(), step), checkpoint_of(m, opt, st));
  }
  // Saving the same step again replaces it once the new one is complete.
  st.extra = {{"note", "second save"}};
  io::save_checkpoint(io::step_checkpoint_dir(root.path(), 40), checkpoint_of(m, opt, st));
  EXPECT_EQ(io::read_checkpoint_info(io::step_checkpoint_dir(root.path(), 40)).state.extra["note"],
            "second save");
  fs::create_directories(root / "step-00000050.partial");  // a crashed save's leftover
  fs::create_directories(root / "notes");                  // not ours: never touched
  const std::vector<fs::path> removed = io::prune_checkpoints(root.path(), 2);
  EXPECT_EQ(removed.size(), 3u);
  EXPECT_EQ(root.entries(), (std::vector<std::string>{"notes", "step-00000030", "step-00000040"}));
  EXPECT_EQ(io::latest_checkpoint(root.path())->filename(), "step-00000040");
  EXPECT_FALSE(io::latest_checkpoint(root / "nowhere").has_value());
}

}  // namespace
}  // namespace tgtest
