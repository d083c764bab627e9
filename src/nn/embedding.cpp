#include "nn/embedding.h"

#include "ops/embedding.h"
#include "ops/factory.h"

namespace tilegrad::nn {

Embedding::Embedding(int64_t num, int64_t C, Generator& gen, double init_std, DType dtype) {
  weight_ = register_parameter("weight", randn({num, C}, gen, 0.0, init_std, {dtype}));
}

Tensor Embedding::forward(const Tensor& ids) const {
  return embedding(weight_, ids);
}

}  // namespace tilegrad::nn
