// The training loop: the loss falls on real text, and a run resumed from a checkpoint computes the
// same losses, bit for bit, as the run that never stopped (Note [Bit-exact resume]).
#include "train/trainer.h"

#include <filesystem>

#include "io/checkpoint.h"
#include "testing.h"
#include "train/train_testing.h"

namespace tgtest {
namespace {

namespace fs = std::filesystem;

fs::path dataset(const std::string& name) {
  return char_dataset("tilegrad_train_test_" + name, "To be, or not to be, that is the question ");
}

train::TrainConfig tiny(const fs::path& dir, const std::string& out) {
  train::TrainConfig c = tiny_run(dir, out);
  c.lr = 3e-3;
  c.warmup = 2;
  c.eval_interval = 2;
  return c;
}

TEST(Trainer, ResumeIsBitExact) {
  const fs::path dir = dataset("resume");
  train::TrainConfig whole = tiny(dir, "whole");
  whole.steps = 6;
  const train::TrainResult a = train::run_training(whole);
  ASSERT_EQ(a.steps.size(), 6u);

  train::TrainConfig first = tiny(dir, "split");
  first.steps = 6;
  first.checkpoint_interval = 3;
  // The schedule depends on `steps`, so the interrupted run is the 6-step run cut at step 3: run
  // it whole with a checkpoint at 3, delete the later checkpoint, and resume from 3.
  const train::TrainResult b0 = train::run_training(first);
  fs::remove_all(first.out_dir / "checkpoints" / "step-00000006");
  train::TrainConfig again = first;
  again.resume = true;
  const train::TrainResult b = train::run_training(again);
  EXPECT_EQ(b.first_step, 3);
  ASSERT_EQ(b.steps.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(b.steps[i].loss, a.steps[i + 3].loss) << "step " << i + 4;
    EXPECT_EQ(b.steps[i].grad_norm, a.steps[i + 3].grad_norm) << "step " << i + 4;
    EXPECT_EQ(b0.steps[i + 3].loss, a.steps[i + 3].loss);
  }
  EXPECT_EQ(b.steps.back().val_loss, a.steps.back().val_loss);
}

TEST(Trainer, LossFalls) {
  const fs::path dir = dataset("falls");
  train::TrainConfig c = tiny(dir, "out");
  c.model.dropout = 0.0;
  c.steps = 60;
  c.eval_interval = 0;
  const train::TrainResult r = train::run_training(c);
  // From about ln(V) at the start to well below it on this repetitive text.
  EXPECT_GT(r.steps.front().loss, 2.5);
  EXPECT_LT(r.steps.back().loss, 0.6 * r.steps.front().loss);
  EXPECT_GT(r.steps.back().val_loss, 0);
  EXPECT_TRUE(fs::exists(c.out_dir / "metrics.jsonl"));
}

// --profile: the steps it covers, their wall time, and no effect on what is computed. The CPU
// backend does not time its entries, so it gives no rows.
TEST(Trainer, ProfileCoversItsStepsAndChangesNoLoss) {
  const fs::path dir = dataset("profile");
  train::TrainConfig plain = tiny(dir, "plain");
  plain.steps = 6;
  train::TrainConfig profiled = tiny(dir, "profiled");
  profiled.steps = 6;
  profiled.profile_steps = 2;
  const train::TrainResult a = train::run_training(plain);
  const train::TrainResult b = train::run_training(profiled);
  EXPECT_EQ(a.profiled_steps, 0);
  EXPECT_EQ(b.profiled_steps, 2);
  EXPECT_GT(b.profiled_wall_s, 0.0);
  EXPECT_TRUE(b.profile.empty());
  ASSERT_EQ(a.steps.size(), b.steps.size());
  for (size_t i = 0; i < a.steps.size(); ++i) EXPECT_EQ(a.steps[i].loss, b.steps[i].loss);
  // Fewer steps left than asked for: the profile stops at the last step.
  profiled.out_dir = dir / "short";
  profiled.steps = 3;
  profiled.profile_steps = 5;
  EXPECT_EQ(train::run_training(profiled).profiled_steps, 1);
}

// Note [Failing cleanly]: a step that throws (here the testing seam fault_at_step, as a CUDA error
// would) ends the run with an error naming the step and the last checkpoint; that checkpoint is
// complete, and resuming from it finishes the run with the losses of a run that never failed.
TEST(Trainer, AFailedStepStopsCleanlyAndResumesFromTheLastCheckpoint) {
  const fs::path dir = dataset("fault");
  train::TrainConfig whole = tiny(dir, "whole");
  whole.steps = 6;
  const train::TrainResult a = train::run_training(whole);

  train::TrainConfig c = tiny(dir, "faulty");
  c.steps = 6;
  c.checkpoint_interval = 2;
  c.fault_at_step = 5;
  const fs::path root = c.out_dir / "checkpoints";
  try {
    train::run_training(c);
    ADD_FAILURE() << "step 5 did not fail";
  } catch (const train::StepError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(e.step, 5);
    ASSERT_TRUE(e.last_checkpoint.has_value());
    EXPECT_EQ(*e.last_checkpoint, io::step_checkpoint_dir(root, 4));
    EXPECT_NE(msg.find("step 5 of 6 failed: injected fault"), std::string::npos) << msg;
    EXPECT_NE(msg.find("step-00000004"), std::string::npos) << msg;
    EXPECT_NE(msg.find("--resume"), std::string::npos) << msg;
    // The original error is nested.
    EXPECT_NE(error_of([&] { std::rethrow_if_nested(e); }).find("injected fault"),
              std::string::npos);
  }
  // Checkpoints of steps 2 and 4, complete, and nothing after them or half-written.
  EXPECT_EQ(io::latest_checkpoint(root), io::step_checkpoint_dir(root, 4));
  EXPECT_EQ(io::read_checkpoint_info(io::step_checkpoint_dir(root, 4)).state.step, 4);
  for (const auto& e : fs::directory_iterator(root)) {
    const std::string name = e.path().filename().string();
    EXPECT_TRUE(name == "step-00000002" || name == "step-00000004") << name;
  }

  c.fault_at_step = 0;
  c.resume = true;
  const train::TrainResult b = train::run_training(c);
  EXPECT_EQ(b.first_step, 4);
  ASSERT_EQ(b.steps.size(), 2u);
  for (size_t i = 0; i < 2; ++i) EXPECT_EQ(b.steps[i].loss, a.steps[i + 4].loss) << i;
  EXPECT_EQ(b.steps.back().val_loss, a.steps.back().val_loss);
  EXPECT_EQ(io::latest_checkpoint(root), io::step_checkpoint_dir(root, 6));
}

// A failure before any checkpoint says so, and names a checkpoint that an earlier run in the same
// directory left, which --resume would take.
TEST(Trainer, AFailedFirstStepSaysThereIsNoCheckpoint) {
  train::TrainConfig c = tiny(dataset("fault_first"), "out");
  c.steps = 3;
  c.fault_at_step = 1;
  std::string msg = error_of([&] { train::run_training(c); });
  EXPECT_NE(msg.find("step 1 of 3 failed"), std::string::npos) << msg;
  EXPECT_NE(msg.find("No checkpoint was written"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("--resume would take"), std::string::npos) << msg;

  c.fault_at_step = 0;
  train::run_training(c);
  c.fault_at_step = 1;
  msg = error_of([&] { train::run_training(c); });
  EXPECT_NE(msg.find("No checkpoint was written"), std::string::npos) << msg;
  EXPECT_NE(msg.find("--resume would take"), std::string::npos) << msg;
  EXPECT_NE(msg.find("step-00000003"), std::string::npos) << msg;
}

// The device fault of the testing seam: on CUDA a real trap (tests/cuda/run_engine.sh checks that
// run end to end); the CPU cannot fail so and throws at once, which still fails only the step.
TEST(Trainer, AnInjectedDeviceFaultFailsTheStep) {
  train::TrainConfig c = tiny(dataset("device_fault"), "out");
  ASSERT_TRUE(c.device.is_cpu());
  c.steps = 3;
  c.fault_at_step = 2;
  c.fault_kind = train::TrainConfig::FaultKind::device;
  const std::string msg = error_of([&] { train::run_training(c); });
  EXPECT_NE(msg.find("step 2 of 3 failed: injected device fault"), std::string::npos) << msg;
}

// bias = false reaches the checkpoint's config (and back); a model with biases writes the JSON it
// wrote before the option existed (no "bias" key), so that its older checkpoints still resume; and
// a run without biases trains and resumes bit for bit like any other.
TEST(Trainer, AModelWithoutBiasesRecordsItAndResumes) {
  models::GPTConfig m = models::gpt_preset("tiny");
  EXPECT_FALSE(train::model_json(m).contains("bias"));
  EXPECT_TRUE(train::model_from_json(train::model_json(m)).bias);
  m.bias = false;
  EXPECT_EQ(train::model_json(m).at("bias"), false);
  EXPECT_FALSE(train::model_from_json(train::model_json(m)).bias);

  const fs::path dir = dataset("no_bias");
  train::TrainConfig whole = tiny(dir, "whole");
  whole.model.bias = false;
  whole.steps = 4;
  const train::TrainResult a = train::run_training(whole);
  train::TrainConfig split = whole;
  split.out_dir = dir / "split";
  split.checkpoint_interval = 2;
  train::run_training(split);
  fs::remove_all(split.out_dir / "checkpoints" / "step-00000004");
  split.resume = true;
  const train::TrainResult b = train::run_training(split);
  ASSERT_EQ(b.steps.size(), 2u);
  for (size_t i = 0; i < 2; ++i) EXPECT_EQ(b.steps[i].loss, a.steps[i + 2].loss) << i;
  // The same checkpoint refuses a run with biases: another model.
  train::TrainConfig with_bias = split;
  with_bias.model.bias = true;
  EXPECT_NE(error_of([&] { train::run_training(with_bias); }).find("config"), std::string::npos);
}

TEST(Trainer, BadDataIsAClearError) {
  const fs::path dir = fs::temp_directory_path() / "tilegrad_train_test_missing";
  fs::remove_all(dir);
  train::TrainConfig c = tiny(dir, "out");
  EXPECT_FALSE(error_of([&] { train::run_training(c); }).empty());
  c = tiny(dataset("resume_missing"), "out");
  c.resume = true;
  EXPECT_NE(error_of([&] { train::run_training(c); }).find("found no checkpoint"),
            std::string::npos);
}

}  // namespace
}  // namespace tgtest
