// Embedding: rows of a [num, C] table picked by integer ids.
#pragma once

#include "core/rng.h"
#include "nn/module.h"

namespace tilegrad::nn {

class Embedding : public Module {
 public:
  Embedding(int64_t num, int64_t C, Generator& gen, double init_std = 0.02,
            DType dtype = DType::f32);
  Tensor forward(const Tensor& ids) const;  // ids [...] -> [..., C]
  const Tensor& weight() const { return weight_; }

 private:
  Tensor weight_;
};

}  // namespace tilegrad::nn
