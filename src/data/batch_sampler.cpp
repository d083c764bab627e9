#include "data/batch_sampler.h"

#include "core/error.h"

namespace tilegrad::data {

namespace {
__extension__ typedef unsigned __int128 u128;  // GCC and Clang; -Wpedantic needs __extension__
}  // namespace

BatchSampler::BatchSampler(std::shared_ptr<const TokenFile> data, int64_t batch_size,
                           int64_t block_size, Generator generator)
    : data_(std::move(data)),
      batch_size_(batch_size),
      block_size_(block_size),
      generator_(generator) {
  TG_ASSERT(data_ != nullptr, "BatchSampler without data");
  TG_CHECK(batch_size_ >= 1, "batches: batch size must be >= 1, got ", batch_size_);
  TG_CHECK(block_size_ >= 1, "batches: block size must be >= 1, got ", block_size_);
  TG_CHECK(data_->size() >= block_size_ + 1, "token file ", data_->path().string(), ": ",
           data_->size(), " tokens, too short for one window of block_size + 1 = ", block_size_ + 1,
           " tokens");
}

uint64_t BatchSampler::draws_per_batch(int64_t batch_size) {
  return (2 * static_cast<uint64_t>(batch_size) + 3) / 4 * 4;
}

std::vector<int64_t> BatchSampler::offsets_at(uint64_t first_draw) const {
  // Starts are uniform over [0, N - T - 1]: a 64-bit draw scaled by the count of starts
  // (multiply-high), whose bias, below count / 2^64, is far beneath anything measurable.
  const uint64_t starts = static_cast<uint64_t>(data_->size() - block_size_);
  std::vector<int64_t> offsets(static_cast<size_t>(batch_size_));
  for (int64_t b = 0; b < batch_size_; ++b) {
    const uint64_t d = first_draw + 2 * static_cast<uint64_t>(b);
    const uint64_t r =
        (uint64_t{philox_draw(generator_.seed(), d)} << 32) | philox_draw(generator_.seed(), d + 1);
    offsets[static_cast<size_t>(b)] = static_cast<int64_t>((static_cast<u128>(r) * starts) >> 64);
  }
  return offsets;
}

std::vector<int64_t> BatchSampler::peek_offsets() const {
  return offsets_at(generator_.offset());
}

Batch BatchSampler::next() {
  const std::vector<int64_t> offsets = offsets_at(generator_.offset());
  generator_.reserve(2 * static_cast<uint64_t>(batch_size_));
  const int64_t B = batch_size_, T = block_size_;
  // Written from the host, so on the host whatever the default device; the trainer moves them.
  const TensorOptions host{DType::i64, Device::cpu()};
  Batch batch{empty({B, T}, host), empty({B, T}, host)};
  int64_t* x = batch.x.data_ptr<int64_t>();  // (B, T)
  int64_t* y = batch.y.data_ptr<int64_t>();  // (B, T)
  const uint16_t* tokens = data_->tokens().data();
  for (int64_t b = 0; b < B; ++b) {
    const uint16_t* window = tokens + offsets[static_cast<size_t>(b)];  // T + 1 tokens
    for (int64_t t = 0; t < T; ++t) {
      x[b * T + t] = window[t];
      y[b * T + t] = window[t + 1];
    }
  }
  return batch;
}

}  // namespace tilegrad::data
