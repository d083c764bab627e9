// Workspace: a temporary buffer for a kernel, taken from the device allocator and tracked as
// `workspace`, released when the object goes out of scope. Kernels use it instead of raw new/malloc
// so that their scratch memory shows in the tracker too.
#pragma once

#include <cstdint>

#include "memory/allocator.h"

namespace tilegrad {

class Workspace {
 public:
  explicit Workspace(int64_t bytes, Device device = Device::cpu())
      : allocator_(&allocator_for(device)), bytes_(static_cast<size_t>(bytes)) {
    data_ = allocator_->allocate(bytes_, Category::workspace);
  }
  ~Workspace() { allocator_->deallocate(data_, bytes_, Category::workspace); }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;

  template <class T>
  T* as() const {
    return static_cast<T*>(data_);
  }

 private:
  Allocator* allocator_;
  size_t bytes_;
  void* data_ = nullptr;
};

}  // namespace tilegrad
