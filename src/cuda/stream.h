// The current CUDA stream of a thread: where tilegrad's GPU work is queued and what the caching
// allocator keys its pools by (see cuda/caching_allocator.h on stream-ordered reuse).
//
// The default is the legacy default stream (nullptr), which orders itself against every other
// blocking stream; a StreamScope switches the thread to another stream for its lifetime:
//
//   cudaStream_t side;  // created by the caller
//   { tilegrad::cuda::StreamScope scope(side); /* allocations and launches go to `side` */ }
#pragma once

#include <cuda_runtime.h>

namespace tilegrad::cuda {

cudaStream_t current_stream();

class StreamScope {
 public:
  explicit StreamScope(cudaStream_t stream);
  ~StreamScope();
  StreamScope(const StreamScope&) = delete;
  StreamScope& operator=(const StreamScope&) = delete;

 private:
  cudaStream_t prev_;
};

}  // namespace tilegrad::cuda
