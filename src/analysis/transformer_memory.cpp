// The lectures' transformer memory formulas (see transformer_memory.h).
#include "analysis/transformer_memory.h"

#include "core/error.h"

namespace tilegrad::analysis {

namespace {

// ⌈√n⌉ for n >= 1, in integers.
int64_t ceil_sqrt(int64_t n) {
  int64_t k = 1;
  while (k * k < n) ++k;
  return k;
}

}  // namespace

MemoryFormulas memory_formulas(const TransformerShape& s) {
  TG_CHECK(s.L >= 1 && s.d >= 1 && s.H >= 1 && s.V >= 1 && s.T >= 1 && s.B >= 1,
           "memory formulas: L, d, H, V, T and B must be >= 1, got L=", s.L, " d=", s.d, " H=", s.H,
           " V=", s.V, " T=", s.T, " B=", s.B);
  const int64_t L = s.L, d = s.d, H = s.H, V = s.V, T = s.T, B = s.B;
  MemoryFormulas f;
  f.parameters = 12 * d * d * L + 2 * d * V;
  f.forward = B * (4 * d * T + H * T * T + V * T);
  f.block_graph = B * (12 * d * T + H * T * T);
  f.head_graph = B * 2 * V * T;
  f.graph = L * f.block_graph + f.head_graph;
  f.checkpoint1 = B * L * d * T + f.block_graph;
  f.segment = ceil_sqrt(L);
  const int64_t kept = (L + f.segment - 1) / f.segment;
  f.checkpoint2 = B * kept * d * T + f.segment * f.block_graph;
  f.stored1 = B * L * d * T + f.head_graph;
  f.stored2 = B * kept * d * T + f.head_graph;
  return f;
}

}  // namespace tilegrad::analysis
