#include <cstdlib>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "memory/allocator.h"

namespace tilegrad {

namespace {

constexpr size_t kAlign = 64;
constexpr size_t kLarge = size_t{1} << 20;  // from here sizes round to pages instead of 64 bytes
constexpr size_t kPage = 4096;

class CpuAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes, Category c) override {
    if (bytes == 0) return nullptr;
    const size_t rounded = round(bytes);
    void* p = take_cached(rounded);
    if (!p) {
      p = std::aligned_alloc(kAlign, rounded);
      if (!p) {  // give the cache back to the system and try once more
        empty_cache();
        p = std::aligned_alloc(kAlign, rounded);
      }
      if (!p) {
        throw Error(detail::cat("cpu allocator: out of memory allocating ", bytes, " bytes (",
                                tracker_ref().live_total(), " bytes live)"));
      }
      std::lock_guard lock(mu_);
      held_ += rounded;
    }
    tracker_ref().on_alloc(c, static_cast<int64_t>(bytes));
    publish_reserved();
    return p;
  }

  void deallocate(void* p, size_t bytes, Category c) override {
    if (!p) return;
    tracker_ref().on_free(c, static_cast<int64_t>(bytes));
    {
      std::lock_guard lock(mu_);
      cache_[round(bytes)].push_back(p);
      cached_ += round(bytes);
    }
    publish_reserved();
  }

  void empty_cache() override {
    std::unordered_map<size_t, std::vector<void*>> blocks;
    {
      std::lock_guard lock(mu_);
      blocks.swap(cache_);
      held_ -= cached_;
      cached_ = 0;
    }
    for (auto& [size, list] : blocks) {
      for (void* p : list) std::free(p);
    }
    publish_reserved();
  }

  Device device() const override { return Device::cpu(); }

 private:
  void* take_cached(size_t rounded) {
    std::lock_guard lock(mu_);
    auto it = cache_.find(rounded);
    if (it == cache_.end() || it->second.empty()) return nullptr;
    void* p = it->second.back();
    it->second.pop_back();
    cached_ -= rounded;
    return p;
  }
  static size_t round(size_t bytes) {
    const size_t unit = bytes >= kLarge ? kPage : kAlign;
    return (bytes + unit - 1) / unit * unit;
  }
  void publish_reserved() {
    size_t held;
    {
      std::lock_guard lock(mu_);
      held = held_;
    }
    tracker_ref().set_reserved(static_cast<int64_t>(held));
  }

  std::mutex mu_;
  // Rounded size -> free blocks of that size. Vectors rather than a multimap: returning a block to
  // the cache must not itself allocate (a tree node per free showed in profiles of small-op
  // graphs).
  std::unordered_map<size_t, std::vector<void*>> cache_;
  size_t cached_ = 0;  // bytes in cache_
  size_t held_ = 0;    // bytes obtained from the system and not returned
};

Allocator* g_allocators[kNumDeviceTypes] = {};

}  // namespace

Allocator& allocator_for(Device device) {
  // The CPU allocator is created on first use and never destroyed: tensors may outlive main().
  static Allocator* cpu = [] {
    auto* a = new CpuAllocator();
    g_allocators[static_cast<int>(DeviceType::cpu)] = a;
    return a;
  }();
  (void)cpu;
  Allocator* a = g_allocators[static_cast<int>(device.type)];
  TG_CHECK(a != nullptr, "no allocator for device ", device.str(),
           ": this build of tilegrad has no backend for it");
  return *a;
}

Allocator* register_allocator(DeviceType type, Allocator* allocator) {
  Allocator* previous = g_allocators[static_cast<int>(type)];
  g_allocators[static_cast<int>(type)] = allocator;
  return previous;
}

}  // namespace tilegrad
