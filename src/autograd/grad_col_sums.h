// Column sums that travel with a gradient.
//
// A linear layer's bias gradient is its output gradient summed over every dimension but the last:
// a pass over [rows, N] of its own, or an epilogue that slows its weight-gradient GEMM (cuBLASLt's
// BGRADA cost GPT-2's projections 12–23 µs a call on an H100). In a transformer the output
// gradient of each projection is made by a layer norm's backward — the residual stream's gradient,
// the layer norm's input gradient added to the residual path's — and that kernel holds every value
// it writes, so it can sum the columns as it goes without reading them again (about 4 µs a call).
//
// The op that makes a gradient attaches its sums to it (attach_col_sums); the op that would sum it
// takes them (take_col_sums) in place of its own pass. Which producer asks: a node's backward whose
// input edge leads to a node that says it takes them (Node::takes_output_col_sums). The sums are a
// property of the tensor's values, valid for whichever node receives the tensor: they are kept
// with the storage version they were made at, and an in-place change of the tensor (the engine's
// add into a buffer it owns) makes them stale, so that take_col_sums no longer returns them.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace tilegrad {

// Attaches `sums`, [N] with grad's dtype and device, the sums of grad's values (contiguous, last
// dimension N) over every dimension but the last, rounded once to the dtype.
void attach_col_sums(const Tensor& grad, Tensor sums);

// The column sums attached to `grad` if they still hold (its values unchanged since) and are [N]
// in grad's dtype and device; they are moved out of grad. Otherwise an undefined tensor.
Tensor take_col_sums(const Tensor& grad, int64_t N);

}  // namespace tilegrad
