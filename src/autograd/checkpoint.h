// Activation checkpointing: run a segment of the forward without keeping what it saves, and
// recompute that in the backward.
//
// Note [Checkpoint]: checkpoint(fn, inputs, generators) calls fn(inputs) normally — its ops record
// their nodes and edges, so the graph through the segment is the ordinary one, inputs used inside
// and outside the segment included — but under saved-tensor hooks (Note [Saved-tensor hooks]) whose
// pack keeps only a slot number: the i-th tensor the segment saves becomes slot i, and the
// intermediates fn allocated are freed when fn returns (what stays is what the caller holds: the
// inputs, which the segment keeps, and the outputs). It also snapshots the (seed, offset) of each
// given Generator: tilegrad has no global RNG, so the caller names the generators fn draws from
// (for dropout).
//
// In the backward, the first node of the segment that unpacks a slot re-runs fn once, on detached
// aliases of the saved inputs (requires_grad as the originals had it, so every op saves the same
// tensors), with grad mode on, the generators set to their snapshot (dropout draws the same masks;
// afterwards they are put back where they were), and hooks whose pack stores each recomputed saved
// tensor under its slot. The re-run's own graph and outputs are discarded; the node gets its slot's
// tensor, and the segment drops it there (PyTorch's non-reentrant semantics), so recomputed memory
// is freed as the segment's backward proceeds: the peak is one segment's saved tensors on top of
// the checkpoints. A slot whose node released its saved tensors unused is dropped then too.
// With retain_graph the same holds: a second backward finds its slots empty and re-runs fn again
// (each backward pays one recomputation per segment; nothing recomputed outlives its use).
//
// Checks: fn must record the same graph when re-run (same number of saved tensors with the same
// shapes and dtypes) and draw the same number of random numbers from the given generators; the
// inputs must not be modified in place between the forward and the recomputation (nor by fn);
// checkpoint inside a checkpointed fn (nesting) is refused. Backward twice without retain_graph
// fails as for any graph (the segment's nodes were released). fn (a copy is kept) and the
// generators passed must stay valid until the segment's backward has run. A generator that fn draws
// from but that is not passed is not rewound: the re-run then draws other numbers and the gradients
// are wrong (nothing can detect that).
//
// Under a SelectivePolicyScope, tensors saved by ops the policy keeps are saved as usual and only
// the others are dropped; see Note [Selective recomputation] in autograd/selective.h.
#pragma once

#include <functional>
#include <vector>

#include "core/rng.h"
#include "core/tensor.h"

namespace tilegrad {

using CheckpointFn = std::function<std::vector<Tensor>(const std::vector<Tensor>&)>;

// Returns fn(inputs), with the segment's saved tensors recomputed in the backward. `generators`
// are those fn draws random numbers from.
std::vector<Tensor> checkpoint(const CheckpointFn& fn, const std::vector<Tensor>& inputs,
                               const std::vector<Generator*>& generators = {});
// The same for a function of one output.
Tensor checkpoint(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                  const std::vector<Tensor>& inputs,
                  const std::vector<Generator*>& generators = {});

}  // namespace tilegrad
