// GPU time per CudaBackend entry (backend/profile.h). While started, each entry opens a Range:
// CUDA events recorded on the current stream before and after its launches, tagged with the
// calling op and memory category. Nothing is synchronised until stop(), which waits for the
// stream, reads every pair's elapsed time and sums them by (category, op, entry). When stopped,
// a Range costs one branch.
#pragma once

#include <cuda_runtime.h>

#include <string>
#include <vector>

#include "backend/profile.h"

namespace tilegrad::cuda {

class EntryProfiler {
 public:
  EntryProfiler() = default;
  ~EntryProfiler();
  EntryProfiler(const EntryProfiler&) = delete;
  EntryProfiler& operator=(const EntryProfiler&) = delete;

  void start();
  std::vector<ProfileRow> stop();
  bool active() const { return active_; }

  class Range {
   public:
    // entry names the backend entry; detail, when given, is appended ("binary:add").
    Range(EntryProfiler& p, const char* entry, const char* detail = nullptr);
    ~Range();
    Range(const Range&) = delete;
    Range& operator=(const Range&) = delete;

   private:
    EntryProfiler* p_ = nullptr;  // null when the profiler is stopped
    size_t mark_ = 0;
  };

 private:
  struct Mark {
    std::string category, op, entry;
    cudaEvent_t begin = nullptr, end = nullptr;
  };
  cudaEvent_t event();

  bool active_ = false;
  std::vector<Mark> marks_;
  std::vector<cudaEvent_t> pool_;  // created once, reused by every profile
  size_t used_ = 0;
};

}  // namespace tilegrad::cuda
