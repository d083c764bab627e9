// Training batches: random contiguous windows of a token file, as nanoGPT's get_batch.
//
// Each row of a batch is a window of T + 1 consecutive tokens starting at a random offset in
// [0, N - T - 1]; x is its first T tokens and y its last T (the next token at each position):
//   x [B, T] int64,  y [B, T] int64
// int64, the index dtype embedding() and cross_entropy() take. The offsets come from the Philox
// stream of the sampler's Generator (core/rng.h): batch k of seed s uses draws
// [k * draws_per_batch(B), (k + 1) * draws_per_batch(B)), so the sampler's whole state is its
// generator's (seed, offset). Storing that offset and constructing a sampler with
// Generator(seed, offset) resumes the sequence of batches bit-exactly.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/rng.h"
#include "core/tensor.h"
#include "data/token_file.h"

namespace tilegrad::data {

struct Batch {
  Tensor x;  // [B, T] int64: inputs
  Tensor y;  // [B, T] int64: targets, x shifted left by one token
};

class BatchSampler {
 public:
  // Throws tilegrad::Error when batch_size or block_size is < 1, or when the file has fewer than
  // block_size + 1 tokens (not one window).
  BatchSampler(std::shared_ptr<const TokenFile> data, int64_t batch_size, int64_t block_size,
               Generator generator);

  // The next batch; advances the generator by draws_per_batch().
  Batch next();
  // The window starts of the next batch, without advancing.
  std::vector<int64_t> peek_offsets() const;

  // The sampler's state: (seed, offset) of its generator, for checkpoints.
  const Generator& generator() const { return generator_; }
  // Number of Philox draws one batch uses (two 32-bit draws per row, rounded to a Philox block).
  static uint64_t draws_per_batch(int64_t batch_size);

  int64_t batch_size() const { return batch_size_; }
  int64_t block_size() const { return block_size_; }
  const TokenFile& data() const { return *data_; }

 private:
  std::vector<int64_t> offsets_at(uint64_t first_draw) const;

  std::shared_ptr<const TokenFile> data_;
  int64_t batch_size_, block_size_;
  Generator generator_;
};

}  // namespace tilegrad::data
