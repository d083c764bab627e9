#include "data/bpe_merges.h"

#include <cstddef>
#include <limits>

namespace tilegrad::data {

void BpeMerges::add(int32_t left, int32_t right, int32_t merged) {
  merges_[key(left, right)] = Merge{next_rank_++, merged};
}

void BpeMerges::apply(std::vector<int32_t>& word) const {
  while (word.size() >= 2) {
    // The lowest-ranked adjacent pair (min over get_pairs(word) in encoder.py).
    int32_t best_rank = std::numeric_limits<int32_t>::max();
    int32_t left = 0, right = 0, merged = 0;
    for (size_t i = 0; i + 1 < word.size(); ++i) {
      const auto it = merges_.find(key(word[i], word[i + 1]));
      if (it != merges_.end() && it->second.rank < best_rank) {
        best_rank = it->second.rank;
        left = word[i];
        right = word[i + 1];
        merged = it->second.merged;
      }
    }
    if (best_rank == std::numeric_limits<int32_t>::max()) break;
    // Join every occurrence, left to right, without overlaps.
    size_t out = 0;
    for (size_t i = 0; i < word.size();) {
      if (i + 1 < word.size() && word[i] == left && word[i + 1] == right) {
        word[out++] = merged;
        i += 2;
      } else {
        word[out++] = word[i++];
      }
    }
    word.resize(out);
  }
}

}  // namespace tilegrad::data
