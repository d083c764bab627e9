#include "cuda/stream.h"

namespace tilegrad::cuda {

namespace {
thread_local cudaStream_t t_stream = nullptr;
}  // namespace

cudaStream_t current_stream() {
  return t_stream;
}

StreamScope::StreamScope(cudaStream_t stream) : prev_(t_stream) {
  t_stream = stream;
}

StreamScope::~StreamScope() {
  t_stream = prev_;
}

}  // namespace tilegrad::cuda
