// Storage: a reference-counted block of device memory with a category and a version counter.
//
// Tensors are views (shape, strides, offset) over a storage; views share it. The version counter is
// bumped by every in-place write, so autograd can detect that a tensor saved for the backward was
// modified after it was saved (all views of one storage share the counter).
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/device.h"
#include "memory/category.h"

namespace tilegrad {

class Allocator;

class Storage {
 public:
  Storage(size_t nbytes, Device device, Category category);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }
  Category category() const { return category_; }
  // Re-labels the bytes (the tracker moves them from the old category to the new one).
  void retag(Category category);

  uint64_t version() const { return version_; }
  void bump_version() { ++version_; }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
  Category category_;
  Allocator* allocator_;
  uint64_t version_ = 0;
};

}  // namespace tilegrad
