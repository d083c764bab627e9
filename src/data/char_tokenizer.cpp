#include "data/char_tokenizer.h"

#include <algorithm>

#include "core/error.h"
#include "data/utf8.h"

namespace tilegrad::data {

CharTokenizer::CharTokenizer(std::vector<char32_t> chars) : chars_(std::move(chars)) {
  TG_CHECK(!chars_.empty(), "char tokenizer: the vocabulary is empty");
  TG_CHECK(chars_.size() <= 65536, "char tokenizer: ", chars_.size(),
           " characters do not fit 16-bit token ids (at most 65536)");
  for (size_t i = 0; i < chars_.size(); ++i) {
    const char32_t c = chars_[i];
    TG_CHECK(c <= 0x10FFFF && (c < 0xD800 || c > 0xDFFF), "char tokenizer: vocabulary entry ", i,
             " (", code_point_name(c), ") is not a Unicode character");
    TG_CHECK(i == 0 || chars_[i - 1] < c,
             "char tokenizer: the vocabulary must be sorted and without duplicates, but entry ", i,
             " (", code_point_name(c), ") follows ", code_point_name(chars_[i - 1]));
  }
  ascii_.fill(-1);
  for (size_t i = 0; i < chars_.size() && chars_[i] < 128; ++i) {
    ascii_[chars_[i]] = static_cast<int32_t>(i);
  }
}

CharTokenizer CharTokenizer::from_corpus(std::string_view corpus) {
  check_utf8(corpus, "char tokenizer: corpus");
  std::array<bool, 128> seen_ascii{};
  std::vector<char32_t> other;
  for (size_t i = 0; i < corpus.size();) {
    const char32_t cp = utf8_next(corpus, i);
    if (cp < 128) {
      seen_ascii[cp] = true;
    } else {
      other.push_back(cp);
    }
  }
  std::sort(other.begin(), other.end());
  other.erase(std::unique(other.begin(), other.end()), other.end());
  std::vector<char32_t> chars;
  for (char32_t c = 0; c < 128; ++c) {
    if (seen_ascii[c]) chars.push_back(c);
  }
  chars.insert(chars.end(), other.begin(), other.end());
  TG_CHECK(!chars.empty(), "char tokenizer: the corpus is empty");
  return CharTokenizer(std::move(chars));
}

int32_t CharTokenizer::id_of(char32_t cp) const {
  if (cp < 128) return ascii_[cp];
  const auto it = std::lower_bound(chars_.begin(), chars_.end(), cp);
  return it != chars_.end() && *it == cp ? static_cast<int32_t>(it - chars_.begin()) : -1;
}

std::vector<int32_t> CharTokenizer::encode(std::string_view text) const {
  check_utf8(text, "char tokenizer: text");
  std::vector<int32_t> ids;
  ids.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const size_t at = i;
    const char32_t cp = utf8_next(text, i);
    const int32_t id = id_of(cp);
    if (id < 0) {
      std::string shown;
      if (cp >= 0x20 && cp != 0x7F) utf8_append(shown, cp);
      throw Error(detail::cat("char tokenizer: character ", shown.empty() ? "" : "'", shown,
                              shown.empty() ? "" : "' ", "(", code_point_name(cp), ") at byte ", at,
                              " is not in the vocabulary of ", chars_.size(), " characters"));
    }
    ids.push_back(id);
  }
  return ids;
}

std::string CharTokenizer::decode(std::span<const int32_t> ids) const {
  check_ids(ids, vocab_size(), "char");
  std::string out;
  out.reserve(ids.size());
  for (const int32_t id : ids) utf8_append(out, chars_[static_cast<size_t>(id)]);
  return out;
}

}  // namespace tilegrad::data
