#include "data/tokenizer.h"

#include "core/error.h"

namespace tilegrad::data {

void check_ids(std::span<const int32_t> ids, int32_t vocab, std::string_view tokenizer) {
  for (size_t i = 0; i < ids.size(); ++i) {
    TG_CHECK(ids[i] >= 0 && ids[i] < vocab, tokenizer, " decode: id ", ids[i], " at position ", i,
             " is outside the vocabulary of ", vocab);
  }
}

}  // namespace tilegrad::data
