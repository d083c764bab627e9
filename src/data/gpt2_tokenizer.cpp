#include "data/gpt2_tokenizer.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/gpt2_bytes.h"
#include "data/read_file.h"

namespace tilegrad::data {

namespace {

// The one special token of GPT-2's vocabulary.
constexpr char kEndOfTextText[] = "<|endoftext|>";

}  // namespace

std::unique_ptr<Gpt2Tokenizer> Gpt2Tokenizer::load(const std::filesystem::path& dir) {
  return load(dir / "encoder.json", dir / "vocab.bpe");
}

std::unique_ptr<Gpt2Tokenizer> Gpt2Tokenizer::load(const std::filesystem::path& encoder_json,
                                                   const std::filesystem::path& vocab_bpe) {
  std::unique_ptr<Gpt2Tokenizer> t(new Gpt2Tokenizer());
  t->encoder_path_ = encoder_json;
  t->merges_path_ = vocab_bpe;
  const std::string enc_name = "gpt2 encoder " + encoder_json.string();
  const std::string bpe_name = "gpt2 merges " + vocab_bpe.string();

  // encoder.json: {"token spelled in the byte map's characters": id, ...}, ids 0..V-1.
  nlohmann::json encoder;
  try {
    encoder = nlohmann::json::parse(read_file(encoder_json, "gpt2 encoder"));
  } catch (const nlohmann::json::exception& e) {
    throw Error(detail::cat(enc_name, ": not valid JSON: ", e.what()));
  }
  TG_CHECK(encoder.is_object() && !encoder.empty(), enc_name,
           ": expected a JSON object of tokens to ids");
  TG_CHECK(encoder.size() <= 65536, enc_name, ": ", encoder.size(),
           " tokens do not fit 16-bit token ids");
  t->tokens_.assign(encoder.size(), std::string());
  std::vector<bool> seen(encoder.size(), false);
  for (const auto& [spelling, value] : encoder.items()) {
    TG_CHECK(value.is_number_integer(), enc_name, ": the id of token \"", spelling,
             "\" is not an integer");
    const int64_t id = value.get<int64_t>();
    TG_CHECK(id >= 0 && id < static_cast<int64_t>(encoder.size()), enc_name, ": token \"", spelling,
             "\" has id ", id, ", outside 0..", encoder.size() - 1);
    TG_CHECK(!seen[static_cast<size_t>(id)], enc_name, ": id ", id, " is given twice");
    seen[static_cast<size_t>(id)] = true;
    auto bytes = gpt2_decode_token_spelling(spelling);
    TG_CHECK(bytes.has_value(), enc_name, ": token \"", spelling,
             "\" has a character outside GPT-2's byte map");
    TG_CHECK(t->ids_.emplace(*bytes, static_cast<int32_t>(id)).second, enc_name, ": token \"",
             spelling, "\" is given twice");
    t->tokens_[static_cast<size_t>(id)] = std::move(*bytes);
  }
  for (int b = 0; b < 256; ++b) {
    const auto it = t->ids_.find(std::string(1, static_cast<char>(b)));
    TG_CHECK(it != t->ids_.end(), enc_name, ": byte ", b, " has no token");
    t->byte_ids_[static_cast<size_t>(b)] = it->second;
  }
  if (const auto it = t->ids_.find(kEndOfTextText); it != t->ids_.end()) {
    t->special_.emplace_back(kEndOfTextText, it->second);
  }

  // vocab.bpe: a "#version" line, then one merge per line: two tokens separated by one space.
  const std::string bpe = read_file(vocab_bpe, "gpt2 merges");
  size_t line_no = 0;
  for (size_t pos = 0; pos < bpe.size();) {
    size_t end = bpe.find('\n', pos);
    if (end == std::string::npos) end = bpe.size();
    const std::string_view line(bpe.data() + pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (line.empty() || (line_no == 1 && line.starts_with("#version"))) continue;
    const size_t space = line.find(' ');
    TG_CHECK(space != std::string_view::npos && space > 0 && space + 1 < line.size() &&
                 line.find(' ', space + 1) == std::string_view::npos,
             bpe_name, ": line ", line_no, " is not two tokens separated by a space: \"", line,
             "\"");
    const auto left = gpt2_decode_token_spelling(line.substr(0, space));
    const auto right = gpt2_decode_token_spelling(line.substr(space + 1));
    TG_CHECK(left && right, bpe_name, ": line ", line_no,
             " has a character outside GPT-2's byte map (or is not UTF-8)");
    const auto l = t->ids_.find(*left), r = t->ids_.find(*right), m = t->ids_.find(*left + *right);
    TG_CHECK(l != t->ids_.end() && r != t->ids_.end() && m != t->ids_.end(), bpe_name, ": line ",
             line_no, " (\"", line, "\") merges tokens that are not all in ",
             encoder_json.string());
    t->merges_.add(l->second, r->second, m->second);
  }
  TG_CHECK(t->merges_.size() > 0, bpe_name, ": no merges");
  return t;
}

void Gpt2Tokenizer::encode_piece(std::string_view piece, std::vector<int32_t>& out) const {
  if (piece.size() == 1) {
    out.push_back(byte_ids_[static_cast<unsigned char>(piece[0])]);
    return;
  }
  const std::string key(piece);
  {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (const auto it = cache_.find(key); it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> word(piece.size());
  for (size_t i = 0; i < piece.size(); ++i)
    word[i] = byte_ids_[static_cast<unsigned char>(piece[i])];
  merges_.apply(word);
  out.insert(out.end(), word.begin(), word.end());
  std::lock_guard<std::mutex> lock(cache_mutex_);
  if (cache_.size() >= kCacheLimit) cache_.clear();
  cache_.emplace(key, std::move(word));
}

std::vector<int32_t> Gpt2Tokenizer::encode(std::string_view text) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3);
  pretokenizer_.for_each_piece(text, [&](std::string_view piece) { encode_piece(piece, ids); });
  return ids;
}

std::vector<int32_t> Gpt2Tokenizer::encode_with_special(std::string_view text) const {
  std::vector<int32_t> ids;
  size_t pos = 0;
  while (pos <= text.size()) {
    // The earliest special token at or after pos (the longest one where several start there).
    size_t at = std::string_view::npos;
    const std::pair<std::string, int32_t>* found = nullptr;
    for (const auto& s : special_) {
      const size_t k = text.find(s.first, pos);
      if (k < at ||
          (k == at && k != std::string_view::npos && s.first.size() > found->first.size())) {
        at = k;
        found = &s;
      }
    }
    const std::vector<int32_t> part =
        encode(text.substr(pos, at == std::string_view::npos ? std::string_view::npos : at - pos));
    ids.insert(ids.end(), part.begin(), part.end());
    if (found == nullptr) break;
    ids.push_back(found->second);
    pos = at + found->first.size();
  }
  return ids;
}

std::string Gpt2Tokenizer::decode(std::span<const int32_t> ids) const {
  check_ids(ids, vocab_size(), "gpt2");
  std::string out;
  for (const int32_t id : ids) out += tokens_[static_cast<size_t>(id)];
  return out;
}

const std::string& Gpt2Tokenizer::token(int32_t id) const {
  TG_CHECK(id >= 0 && id < vocab_size(), "gpt2 tokenizer: id ", id,
           " is outside the vocabulary of ", vocab_size());
  return tokens_[static_cast<size_t>(id)];
}

}  // namespace tilegrad::data
