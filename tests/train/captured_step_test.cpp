// The recorded training step (train/captured_step.h): when a config can be recorded, and on a GPU
// (TILEGRAD_TEST_DEVICE=cuda, tests/cuda/run_engine.sh) that replays equal eager steps bit for bit.
#include "train/captured_step.h"

#include <random>
#include <vector>

#include "backend/backend.h"
#include "ops/factory.h"
#include "ops/reduce.h"
#include "testing.h"
#include "train/step.h"

namespace tgtest {
namespace {

train::TrainConfig graph_config(Device device) {
  train::TrainConfig c;
  c.device = device;
  c.model = models::gpt_preset("tiny");
  c.model.T = 16;
  c.model.V = 61;  // odd, so that the head's padding takes part
  c.model.head_chunk = 24;
  c.model.dtype = DType::bf16;
  c.batch = 3;
  return c;
}

// Random ids in [0, V) on the host, shaped as a batch.
data::Batch random_batch(const train::TrainConfig& c, uint64_t seed) {
  data::Batch b;
  std::mt19937_64 g(seed);
  std::uniform_int_distribution<int64_t> id(0, c.model.V - 1);
  for (Tensor* t : {&b.x, &b.y}) {
    std::vector<int64_t> ids(static_cast<size_t>(c.batch * c.model.T));
    for (int64_t& v : ids) v = id(g);
    *t = from_vector(ids, {c.batch, c.model.T}, {DType::i64, Device::cpu()});
  }
  return b;
}

TEST(CapturedStep, SaysWhatStandsInTheWay) {
  train::TrainConfig c = graph_config(Device::cuda(0));
  EXPECT_EQ(train::CapturedStep::unsupported_reason(c), "");
  c.cuda_graph = false;
  EXPECT_NE(train::CapturedStep::unsupported_reason(c).find("--no-cuda-graph"), std::string::npos);
  c = graph_config(Device::cpu());
  EXPECT_NE(train::CapturedStep::unsupported_reason(c).find("CUDA"), std::string::npos);
  c = graph_config(Device::cuda(0));
  c.model.dropout = 0.1;
  EXPECT_NE(train::CapturedStep::unsupported_reason(c).find("dropout"), std::string::npos);
  c = graph_config(Device::cuda(0));
  c.accumulation = 2;
  EXPECT_NE(train::CapturedStep::unsupported_reason(c).find("micro-batch"), std::string::npos);
  c = graph_config(Device::cuda(0));
  c.profile_steps = 2;
  EXPECT_NE(train::CapturedStep::unsupported_reason(c).find("profil"), std::string::npos);
  c = graph_config(Device::cuda(0));
  c.model.head_chunk = 0;
  EXPECT_NE(train::CapturedStep::unsupported_reason(c).find("head"), std::string::npos);
}

// Where graphs cannot be recorded the step says so and leaves no gradient behind.
TEST(CapturedStep, RefusedWhereTheDeviceRecordsNoGraphs) {
  if (default_device().type != DeviceType::cpu) GTEST_SKIP() << "the CPU's refusal";
  const train::TrainConfig c = graph_config(Device::cpu());
  Generator init(3), gen(4);
  const models::GPT model(c.model, init);
  try {
    train::CapturedStep step(model, random_batch(c, 10), c, gen);
    FAIL() << "recorded on the CPU";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot record graphs"), std::string::npos) << e.what();
  }
  for (const NamedTensor& p : model.named_parameters()) EXPECT_FALSE(p.tensor.grad().defined());
}

// Replays of the recorded step on four different batches give the losses and gradients of eager
// steps on the same batches, bit for bit (one key block per head: the backward's dq sums have one
// order). A batch with an id outside the vocabulary is refused before it reaches the device.
TEST(CapturedStep, ReplaysEqualEagerStepsBitForBit) {
  const Device d = default_device();
  if (d.type != DeviceType::cuda) GTEST_SKIP() << "graphs are recorded on CUDA devices";
  const train::TrainConfig c = graph_config(d);
  Generator init_a(5), init_b(5), gen(6);
  const models::GPT eager(c.model, init_a), graphed(c.model, init_b);
  std::vector<data::Batch> batches;
  for (uint64_t i = 0; i < 4; ++i) batches.push_back(random_batch(c, 100 + 10 * i));

  train::CapturedStep step(graphed, batches[0], c, gen);
  EXPECT_GT(step.operations(), 20);
  const NamedParameters pe = eager.named_parameters(), pg = graphed.named_parameters();
  for (size_t i = 0; i < batches.size(); ++i) {
    for (const NamedTensor& p : pe) p.tensor.set_grad(Tensor());
    const double le = train::forward_backward(eager, batches[i], c, gen);
    if (i > 0) step.load(batches[i]);
    step.replay();
    const double lg = step.loss();
    EXPECT_EQ(le, lg) << "batch " << i;
    for (size_t k = 0; k < pe.size(); ++k) {
      ASSERT_TRUE(pg[k].tensor.grad().defined()) << pg[k].name;
      EXPECT_TRUE(bitwise_equal(pe[k].tensor.grad(), pg[k].tensor.grad()))
          << pe[k].name << " at batch " << i;
    }
  }
  data::Batch bad = random_batch(c, 7);
  static_cast<int64_t*>(bad.y.data())[5] = c.model.V;
  try {
    step.load(bad);
    FAIL() << "an id outside the vocabulary was loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("outside the vocabulary"), std::string::npos) << e.what();
  }
}

// Inside a capture the host cannot read the device: the capture fails with a clear error, and the
// device works on afterwards.
TEST(CapturedStep, AHostReadFailsTheCaptureCleanly) {
  const Device d = default_device();
  if (d.type != DeviceType::cuda) GTEST_SKIP() << "graphs are recorded on CUDA devices";
  const Tensor x = full({4}, 2.0, {DType::f32, d});
  try {
    (void)backend(d).capture_graph([&] { (void)sum(x, {0}, false).item(); });
    FAIL() << "a capture with a host read succeeded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("CUDA graph"), std::string::npos) << e.what();
  }
  EXPECT_EQ(sum(x, {0}, false).item(), 8.0);
}

}  // namespace
}  // namespace tgtest
