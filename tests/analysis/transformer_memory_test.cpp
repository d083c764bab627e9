// The lectures' transformer memory formulas, hand-checked; the per-op table against the engine's
// own op counter; and the formulas beside the tracker's measurement of the engine GPT, with every
// difference accounted for term by term (docs/IO_MODEL.md explains each term).
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "analysis/transformer_memory.h"
#include "analysis/transformer_ops.h"
#include "apps/analyze_gpt.h"

namespace {

using namespace tilegrad::analysis;
using tilegrad::apps::GptCheckpoint;
using tilegrad::apps::GptMeasurement;
using tilegrad::apps::measure_gpt;

// L = 2, d = 4, H = 2, V = 10, T = 3: parameters 12·16·2 + 2·4·10 = 464; forward 4·4·3 + 2·9 +
// 10·3 = 96; graph 12·2·4·3 + 2·2·9 + 2·10·3 = 384; checkpoint 1: 2·4·3 + (12·4·3 + 2·9) = 186;
// checkpoint 2 with k = ⌈√2⌉ = 2: 1·12 + 2·162 = 336; stored: 24 + 60 and 12 + 60.
TEST(TransformerMemory, FormulasByHand) {
  MemoryFormulas f = memory_formulas({2, 4, 2, 10, 3, 1});
  EXPECT_EQ(f.parameters, 464);
  EXPECT_EQ(f.forward, 96);
  EXPECT_EQ(f.graph, 384);
  EXPECT_EQ(f.block_graph, 162);
  EXPECT_EQ(f.checkpoint1, 186);
  EXPECT_EQ(f.segment, 2);
  EXPECT_EQ(f.checkpoint2, 336);
  EXPECT_EQ(f.stored1, 84);
  EXPECT_EQ(f.stored2, 72);
  // B sequences scale every activation term, not the parameters.
  const MemoryFormulas g = memory_formulas({2, 4, 2, 10, 3, 5});
  EXPECT_EQ(g.parameters, 464);
  EXPECT_EQ(g.graph, 5 * 384);
  EXPECT_EQ(g.checkpoint2, 5 * 336);
  // k = ⌈√L⌉: L = 9 -> 3, L = 10 -> 4.
  EXPECT_EQ(memory_formulas({9, 4, 2, 10, 3, 1}).segment, 3);
  EXPECT_EQ(memory_formulas({10, 4, 2, 10, 3, 1}).segment, 4);
}

GptDims small(int64_t T, int64_t d, int64_t H) {
  GptDims g;
  g.B = 2;
  g.T = T;
  g.d = d;
  g.H = H;
  g.L = 3;
  g.V = 50;
  g.dtype = tilegrad::DType::f32;
  return g;
}

// The table's rows are the engine's op calls: the same FLOPs and bytes, the same calls per op.
TEST(TransformerOps, TableEqualsTheEnginesOpCounter) {
  const GptDims g = small(16, 32, 2);
  const GptMeasurement m = measure_gpt(g, GptCheckpoint::none);
  double flops = 0, bytes = 0;
  std::map<std::string, int64_t> calls;
  for (const auto& [op, s] : m.forward_ops) {
    if (op == "to_device") continue;  // the token ids' copy to a GPU: not an op of the model
    flops += s.flops;
    bytes += s.bytes;
    calls[op] = s.calls;
  }
  const tilegrad::Cost c = gpt_forward_cost(g);
  EXPECT_DOUBLE_EQ(c.flops, flops);
  EXPECT_DOUBLE_EQ(c.bytes, bytes);
  std::map<std::string, int64_t> rows;
  for (const OpRow& r : gpt_embed_ops(g)) rows[r.op] += 1;
  for (const OpRow& r : gpt_layer_ops(g)) rows[r.op] += g.L;
  for (const OpRow& r : gpt_head_ops(g)) rows[r.op] += 1;
  EXPECT_EQ(rows, calls);
}

// Parameters: the formula counts 12d²L + 2dV; the engine GPT also has the position embeddings
// (T·d), per layer the biases (3d + d + 4d + d = 9d) and two layer norms (4d), and the final
// layer norm (2d).
TEST(TransformerMemory, ParametersBesideTheFormula) {
  const GptDims g = small(16, 32, 2);
  const GptMeasurement m = measure_gpt(g, GptCheckpoint::none);
  const MemoryFormulas f = memory_formulas({g.L, g.d, g.H, g.V, g.T, g.B});
  const int64_t extra = g.T * g.d + g.L * (9 * g.d + 4 * g.d) + 2 * g.d;
  EXPECT_EQ(m.parameter_count, f.parameters + extra);
  EXPECT_EQ(m.parameter_bytes, 4 * (f.parameters + extra));
  EXPECT_EQ(m.gradient_bytes, m.parameter_bytes);
}

// Graph memory. Per layer the engine keeps 16 dT where the lecture counts 12: the inputs and
// outputs of the two layer norms (4 dT) on top of q, k, v, the merged attention output, and the
// MLP's 4dT before and after the GELU; the H·T² probabilities are the same. The head keeps the
// final layer norm's input and output (2 dT) and the logits (V·T) — the fused cross-entropy never
// forms the softmax, where the lecture counts 2 V·T. Per layer norm a mean and a 1/std per row,
// the loss's logsumexp per row, and the loss itself (one element).
TEST(TransformerMemory, GraphBesideTheFormula) {
  const GptDims g = small(16, 32, 2);
  const GptMeasurement m = measure_gpt(g, GptCheckpoint::none);
  const MemoryFormulas f = memory_formulas({g.L, g.d, g.H, g.V, g.T, g.B});
  const int64_t B = g.B, dT = g.d * g.T, HT2 = g.H * g.T * g.T, VT = g.V * g.T, BT = B * g.T;
  const int64_t stats = (2 * g.L + 1) * 2 * BT + BT;
  const int64_t engine = B * (g.L * (16 * dT + HT2) + 2 * dT + VT) + stats;
  EXPECT_EQ(m.saved_bytes, 4 * engine);
  EXPECT_EQ(m.graph_bytes, 4 * (engine + 1));  // + the loss
  EXPECT_EQ(engine - f.graph, B * (4 * g.L * dT + 2 * dT - VT) + stats);
  // The H·T² term is exactly what the softmaxes save.
  int64_t softmax = 0;
  for (const auto& s : m.saved) {
    if (s.op == "softmax") softmax += s.bytes;
  }
  EXPECT_EQ(softmax, 4 * g.L * B * HT2);
}

// Checkpointing. Option 1 (every block) keeps the L block inputs; option 2 (segments of
// k = ⌈√3⌉ = 2 blocks) keeps ⌈3/2⌉ = 2 of them. Both also keep the head as above.
TEST(TransformerMemory, CheckpointedForwardKeepsTheBlockInputs) {
  const GptDims g = small(16, 32, 2);
  const int64_t B = g.B, dT = g.d * g.T, VT = g.V * g.T, BT = B * g.T;
  const int64_t head = B * (2 * dT + VT) + 2 * BT + BT + 1;
  const GptMeasurement one = measure_gpt(g, GptCheckpoint::every_block);
  EXPECT_EQ(one.graph_bytes, 4 * (B * g.L * dT + head));
  const GptMeasurement two = measure_gpt(g, GptCheckpoint::sqrt_segments);
  EXPECT_EQ(two.graph_bytes, 4 * (B * 2 * dT + head));
  const GptMeasurement none = measure_gpt(g, GptCheckpoint::none);
  EXPECT_DOUBLE_EQ(one.loss, none.loss);
  // The backward recomputes one block (option 1) or one segment (option 2) at a time, so the step
  // peaks order as none > option 2 > option 1 here; each stays above what is stored plus one
  // block's saved tensors.
  EXPECT_GT(none.step_peak, two.step_peak);
  EXPECT_GT(two.step_peak, one.step_peak);
  const int64_t block = B * (16 * dT + g.H * g.T * g.T) + 4 * BT;
  EXPECT_GE(one.step_peak, 4 * (B * g.L * dT + block));
}

// The forward without a graph frees as it goes; its peak is where the most tensors coexist. With
// the model's lifetimes (analyze_gpt.cpp), attention holds x, q, k, v and two H·T² matrices (the
// masked scores while the softmax writes P): 4dT + 2H·T²; the MLP holds x, x1, the layer norm's
// output, the first matmul's output and its biased copy: 1 + 1 + 1 + 4 + 4 = 11 dT. The lecture's
// 4dT + H·T² + V·T adds the largest tensors of the three stages instead.
TEST(TransformerMemory, ForwardPeakBesideTheFormula) {
  {
    const GptDims g = small(16, 32, 2);  // 2H·T² = 1024 < 7dT = 3584: the MLP dominates
    EXPECT_EQ(measure_gpt(g, GptCheckpoint::none).inference_peak, 4 * g.B * 11 * g.d * g.T);
  }
  {
    const GptDims g = small(64, 16, 2);  // 2H·T² = 16384 > 7dT = 7168: attention dominates
    const int64_t dT = g.d * g.T, HT2 = g.H * g.T * g.T;
    const GptMeasurement m = measure_gpt(g, GptCheckpoint::none);
    EXPECT_EQ(m.inference_peak, 4 * g.B * (4 * dT + 2 * HT2));
    const MemoryFormulas f = memory_formulas({g.L, g.d, g.H, g.V, g.T, g.B});
    EXPECT_EQ(m.inference_peak / 4 - f.forward, g.B * (HT2 - g.V * g.T));
  }
}

}  // namespace
