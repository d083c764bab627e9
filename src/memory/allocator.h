// Allocators: where storage bytes come from. One allocator per device type; each reports every
// allocation and free, with its category, to the device's MemoryTracker.
//
// The CPU allocator caches freed blocks in exact-size free lists, the way CUDA caching allocators
// do: a training step allocates the same sizes every iteration, and handing back a warm block
// avoids both malloc's slow aligned path for small blocks and the page faults of a fresh mmap for
// large ones. Cached bytes are `reserved`, never `live`; the cache is returned to the system by
// empty_cache() and automatically when an allocation would otherwise fail.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/device.h"
#include "memory/category.h"
#include "memory/tracker.h"

namespace tilegrad {

class Allocator {
 public:
  virtual ~Allocator() = default;
  // Returns memory for `bytes` (aligned to 64 bytes; nullptr for 0 bytes) and records it as `c`.
  virtual void* allocate(size_t bytes, Category c) = 0;
  virtual void deallocate(void* p, size_t bytes, Category c) = 0;
  // Returns cached blocks to the system.
  virtual void empty_cache() {}
  virtual Device device() const = 0;
  MemoryTracker& tracker_ref() const { return tracker(device()); }
};

// The allocator for a device; throws Error if that device type has no backend in this build.
Allocator& allocator_for(Device device);
// Installs the allocator for a device type (the CUDA backend calls this when it initialises) and
// returns the one it replaces (nullptr if none), so that a test can put it back.
Allocator* register_allocator(DeviceType type, Allocator* allocator);

}  // namespace tilegrad
