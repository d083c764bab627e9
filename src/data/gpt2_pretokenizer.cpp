#define PCRE2_CODE_UNIT_WIDTH 8
#include "data/gpt2_pretokenizer.h"

#include <pcre2.h>

#include "core/error.h"
#include "data/utf8.h"

namespace tilegrad::data {

namespace {

constexpr char kPattern[] =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  pcre2_get_error_message(code, buf, sizeof buf);
  return reinterpret_cast<const char*>(buf);
}

struct MatchDataDeleter {
  void operator()(pcre2_match_data* m) const { pcre2_match_data_free(m); }
};

}  // namespace

struct Gpt2Pretokenizer::Impl {
  pcre2_code* code = nullptr;
  ~Impl() { pcre2_code_free(code); }
};

Gpt2Pretokenizer::Gpt2Pretokenizer() : impl_(std::make_unique<Impl>()) {
  int err = 0;
  PCRE2_SIZE err_offset = 0;
  impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(kPattern), PCRE2_ZERO_TERMINATED,
                              PCRE2_UTF | PCRE2_UCP, &err, &err_offset, nullptr);
  TG_ASSERT(impl_->code != nullptr, "pcre2_compile of the GPT-2 pattern failed at ", err_offset,
            ": ", pcre2_message(err));
  // The JIT makes matching several times faster; without it (a PCRE2 built without JIT support)
  // pcre2_match interprets the same pattern with the same results.
  pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE);
}

Gpt2Pretokenizer::~Gpt2Pretokenizer() = default;

void Gpt2Pretokenizer::for_each_piece(std::string_view text,
                                      const std::function<void(std::string_view)>& f) const {
  // Validated once here, so that each match can skip PCRE2's own check of the whole subject
  // (which would make splitting quadratic in the text's length).
  check_utf8(text, "gpt2 tokenizer: text");
  std::unique_ptr<pcre2_match_data, MatchDataDeleter> match(
      pcre2_match_data_create_from_pattern(impl_->code, nullptr));
  TG_ASSERT(match != nullptr, "pcre2_match_data_create_from_pattern failed");
  const auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;
  while (pos < text.size()) {
    const int rc = pcre2_match(impl_->code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK,
                               match.get(), nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    TG_CHECK(rc > 0, "gpt2 tokenizer: matching the pre-tokenisation pattern at byte ", pos,
             " failed: ", pcre2_message(rc));
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match.get());
    const size_t begin = ovector[0], end = ovector[1];
    TG_ASSERT(end > begin, "empty pre-tokenisation match at byte ", begin);
    f(text.substr(begin, end - begin));
    pos = end;
  }
}

std::vector<std::string_view> Gpt2Pretokenizer::split(std::string_view text) const {
  std::vector<std::string_view> pieces;
  for_each_piece(text, [&](std::string_view p) { pieces.push_back(p); });
  return pieces;
}

}  // namespace tilegrad::data
