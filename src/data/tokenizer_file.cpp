#include "data/tokenizer_file.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/byte_tokenizer.h"
#include "data/char_tokenizer.h"
#include "data/gpt2_tokenizer.h"
#include "data/read_file.h"
#include "data/utf8.h"
#include "io/atomic_file.h"

namespace tilegrad::data {

std::unique_ptr<Tokenizer> make_tokenizer(std::string_view kind, std::string_view corpus,
                                          const std::filesystem::path& gpt2_dir) {
  if (kind == "bytes") return std::make_unique<ByteTokenizer>();
  if (kind == "char") return std::make_unique<CharTokenizer>(CharTokenizer::from_corpus(corpus));
  if (kind == "gpt2") return Gpt2Tokenizer::load(gpt2_dir);
  throw Error(detail::cat("unknown tokenizer '", kind, "' (expected bytes, char or gpt2)"));
}

void save_tokenizer(const Tokenizer& tokenizer, const std::filesystem::path& dir) {
  nlohmann::ordered_json j;
  j["tokenizer"] = tokenizer.name();
  j["vocab_size"] = tokenizer.vocab_size();
  if (const auto* c = dynamic_cast<const CharTokenizer*>(&tokenizer)) {
    nlohmann::ordered_json chars = nlohmann::ordered_json::array();
    for (const char32_t cp : c->chars()) {
      std::string s;
      utf8_append(s, cp);
      chars.push_back(s);
    }
    j["chars"] = chars;
  } else if (const auto* g = dynamic_cast<const Gpt2Tokenizer*>(&tokenizer)) {
    j["encoder"] = "encoder.json";
    j["merges"] = "vocab.bpe";
    io::write_file_atomic(dir / "encoder.json", read_file(g->encoder_path(), "gpt2 encoder"));
    io::write_file_atomic(dir / "vocab.bpe", read_file(g->merges_path(), "gpt2 merges"));
  } else {
    TG_ASSERT(dynamic_cast<const ByteTokenizer*>(&tokenizer) != nullptr,
              "save_tokenizer: unknown tokenizer ", tokenizer.name());
  }
  io::write_file_atomic(dir / "tokenizer.json", j.dump(1) + "\n");
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& dir) {
  const std::filesystem::path path = dir / "tokenizer.json";
  const std::string name = "tokenizer file " + path.string();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(path, "tokenizer file"));
  } catch (const nlohmann::json::exception& e) {
    throw Error(detail::cat(name, ": not valid JSON: ", e.what()));
  }
  TG_CHECK(j.is_object() && j.contains("tokenizer") && j["tokenizer"].is_string(), name,
           ": expected an object with a \"tokenizer\" name");
  TG_CHECK(j.contains("vocab_size") && j["vocab_size"].is_number_integer(), name,
           ": expected an integer \"vocab_size\"");
  const std::string kind = j["tokenizer"].get<std::string>();
  const int64_t vocab = j["vocab_size"].get<int64_t>();
  std::unique_ptr<Tokenizer> t;
  if (kind == "bytes") {
    t = std::make_unique<ByteTokenizer>();
  } else if (kind == "char") {
    TG_CHECK(j.contains("chars") && j["chars"].is_array(), name,
             ": a char tokenizer needs its \"chars\" array");
    std::vector<char32_t> chars;
    for (const auto& c : j["chars"]) {
      TG_CHECK(c.is_string(), name, ": \"chars\" entry ", chars.size(), " is not a string");
      const std::vector<char32_t> cps = utf8_decode(c.get<std::string>(), name);
      TG_CHECK(cps.size() == 1, name, ": \"chars\" entry ", chars.size(), " is not one character");
      chars.push_back(cps[0]);
    }
    try {
      t = std::make_unique<CharTokenizer>(std::move(chars));
    } catch (const Error& e) {
      throw Error(detail::cat(name, ": ", e.what()));
    }
  } else if (kind == "gpt2") {
    const auto file = [&](const char* key, const char* fallback) {
      return dir / (j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : fallback);
    };
    t = Gpt2Tokenizer::load(file("encoder", "encoder.json"), file("merges", "vocab.bpe"));
  } else {
    throw Error(
        detail::cat(name, ": unknown tokenizer '", kind, "' (expected bytes, char or gpt2)"));
  }
  TG_CHECK(t->vocab_size() == vocab, name, ": says vocab_size ", vocab, " but the ", kind,
           " tokenizer it describes has ", t->vocab_size());
  return t;
}

}  // namespace tilegrad::data
