// Byte-pair-encoding merges: the ranked list of token pairs that BPE joins, lowest rank first.
//
// apply() is the loop of OpenAI's encoder.py bpe(): while some adjacent pair of the word has a
// rank, take the pair with the lowest rank and join all its occurrences, scanning left to right
// (so "a a a" with the pair (a, a) becomes "aa a"). tilegrad runs it on token ids rather than on
// strings: the vocabulary maps strings to ids one to one, so the two are the same computation.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

namespace tilegrad::data {

class BpeMerges {
 public:
  // Adds the merge (left, right) -> merged with the next rank (0, 1, 2, ... in call order). A pair
  // given twice takes its later rank, as dict(zip(merges, range(n))) in encoder.py does (GPT-2's
  // list has no duplicates).
  void add(int32_t left, int32_t right, int32_t merged);
  int32_t size() const { return next_rank_; }

  // Merges `word` (a sequence of token ids) in place until no adjacent pair has a rank.
  void apply(std::vector<int32_t>& word) const;

 private:
  struct Merge {
    int32_t rank;
    int32_t merged;
  };
  static uint64_t key(int32_t left, int32_t right) {
    return (uint64_t{static_cast<uint32_t>(left)} << 32) | static_cast<uint32_t>(right);
  }

  std::unordered_map<uint64_t, Merge> merges_;
  int32_t next_rank_ = 0;
};

}  // namespace tilegrad::data
