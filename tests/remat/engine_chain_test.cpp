// Prediction equals measurement: for the memtrace chain under every policy, the byte-exact model of
// remat/engine_chain.h gives the tracker's peak — in total and per category — and its final live
// bytes, and the chain model's recompute count equals the executor's.
#include "remat/engine_chain.h"
#include "apps/memtrace_experiment.h"
#include "remat/executor.h"
#include "testing.h"

namespace tgtest {
namespace {

struct Measured {
  int64_t peak_total = 0;
  std::array<int64_t, kNumCategories> peak{};
};

// Peaks over the traced forward and backward, from the tracker's event timeline (live bytes after
// each event, relative to the experiment's start, setup included).
Measured measure(const apps::MemtraceResult& r) {
  Measured m;
  m.peak_total = r.setup.live;
  m.peak = r.setup.by_category;
  for (const MemoryEvent& e : r.timeline) {
    m.peak_total = std::max(m.peak_total, e.live_after);
    for (int c = 0; c < kNumCategories; ++c) m.peak[c] = std::max(m.peak[c], e.live_by_category[c]);
  }
  return m;
}

TEST(EngineChain, PredictedPeakEqualsTheTrackerForEveryPolicy) {
  // A device's first GEMM takes the GEMM workspace it then keeps (cuda/gemm.cpp): one GEMM first
  // keeps that buffer out of the experiments' final live bytes.
  matmul(rnd({2, 2}, 1), rnd({2, 2}, 2));
  for (DType dt : {DType::f64, DType::f32}) {
    apps::MemtraceConfig config;
    config.layers = 10;
    config.batch = 40;
    config.dim = 10;
    config.dtype = dt;
    config.record_timeline = true;
    const int64_t item = static_cast<int64_t>(dtype_size(dt));
    const remat::LinearChainBytes bytes{config.dim * config.dim * item, item};
    for (const char* policy :
         {"none", "every:2", "every:3", "sqrt", "revolve:1", "revolve:2", "revolve:4", "naive:0",
          "naive:5", "budget:45000", "budget:40000", "budget:34kB"}) {
      SCOPED_TRACE(std::string(policy) + " " + std::string(dtype_name(dt)));
      config.remat = policy;
      const remat::ChainSpec spec = apps::memtrace_chain_spec(config);
      const remat::Plan plan = apps::memtrace_plan(config);
      const remat::EnginePrediction predicted =
          remat::predict_linear_chain(spec, plan.schedule, bytes);
      const apps::MemtraceResult r = apps::run_memtrace(config);
      const Measured measured = measure(r);
      EXPECT_EQ(predicted.peak_total, measured.peak_total);
      EXPECT_EQ(predicted.peak_total, r.peak_bytes);
      for (int c = 0; c < kNumCategories; ++c) {
        EXPECT_EQ(predicted.peak_by_category[c], measured.peak[c])
            << category_name(static_cast<Category>(c));
        EXPECT_EQ(predicted.final_live[c], r.stats.live[c])
            << category_name(static_cast<Category>(c));
      }
      EXPECT_EQ(plan.sim.recomputed_steps, r.recomputed_steps);
    }
  }
}

// budget:BYTES is a budget for the tracker's peak: the measured peak never exceeds it, a larger
// budget never recomputes more, and below the smallest feasible budget nothing runs.
TEST(EngineChain, BudgetIsStatedInEngineBytes) {
  apps::MemtraceConfig config;
  config.layers = 12;
  config.batch = 40;
  config.dim = 10;
  config.remat = "budget:1";
  const std::string msg = error_of([&] { apps::run_memtrace(config); });
  const std::string key = "the smallest feasible budget is ";
  ASSERT_NE(msg.find(key), std::string::npos) << msg;
  const int64_t smallest = std::stoll(msg.substr(msg.find(key) + key.size()));
  config.remat = "none";
  const int64_t keep_all = apps::run_memtrace(config).peak_bytes;
  EXPECT_LT(smallest, keep_all);
  int64_t last = INT64_MAX;
  for (int i = 0; i <= 6; ++i) {
    const int64_t budget = smallest + (keep_all - smallest) * i / 6;
    config.remat = "budget:" + std::to_string(budget);
    const apps::MemtraceResult r = apps::run_memtrace(config);
    EXPECT_LE(r.peak_bytes, budget);
    EXPECT_EQ(r.peak_bytes, r.predicted_peak_bytes);
    EXPECT_LE(r.recomputed_steps, last);
    last = r.recomputed_steps;
  }
  EXPECT_EQ(last, 0);
  config.remat = "budget:" + std::to_string(smallest - 1);
  EXPECT_NE(error_of([&] { apps::run_memtrace(config); }).find(key), std::string::npos);
}

}  // namespace
}  // namespace tgtest
