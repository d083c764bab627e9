#include "core/storage.h"

#include "memory/allocator.h"

namespace tilegrad {

Storage::Storage(size_t nbytes, Device device, Category category)
    : nbytes_(nbytes), device_(device), category_(category), allocator_(&allocator_for(device)) {
  data_ = allocator_->allocate(nbytes, category);
}

Storage::~Storage() {
  allocator_->deallocate(data_, nbytes_, category_);
}

void Storage::retag(Category category) {
  if (category == category_) return;
  if (data_) allocator_->tracker_ref().on_retag(category_, category, static_cast<int64_t>(nbytes_));
  category_ = category;
}

}  // namespace tilegrad
