// The character tokenizer: the vocabulary of tinyshakespeare (65 characters, as Python's
// sorted(set(text)) lists them in gpt2_vectors.json), a round trip of the whole corpus, characters
// beyond ASCII, unknown characters, and tokenizer.json.
#include "data/char_tokenizer.h"

#include <nlohmann/json.hpp>

#include "data/data_testing.h"
#include "data/read_file.h"
#include "data/tokenizer_file.h"
#include "data/utf8.h"

namespace tgtest {
namespace {

nlohmann::json vectors() {
  return nlohmann::json::parse(data::read_file(test_data_dir() / "gpt2_vectors.json", "vectors"));
}

TEST(CharTokenizer, ShakespeareVocabularyIsPythonsSortedSetAndRoundTrips) {
  const std::string text = data::read_file(shakespeare_path(), "corpus");
  const data::CharTokenizer t = data::CharTokenizer::from_corpus(text);
  const std::string expected = vectors()["tinyshakespeare"]["char_vocabulary"];
  EXPECT_EQ(t.vocab_size(), 65);
  std::string vocab;
  for (const char32_t c : t.chars()) data::utf8_append(vocab, c);
  EXPECT_EQ(vocab, expected);

  const std::vector<int32_t> ids = t.encode(text);
  ASSERT_EQ(ids.size(), text.size());  // all ASCII: one token per byte
  // nanoGPT's shakespeare_char: '\n' is 0, ' ' is 1, 'A' is 13, 'a' is 39.
  EXPECT_EQ(t.encode("\n A a"), (std::vector<int32_t>{0, 1, 13, 1, 39}));
  EXPECT_EQ(t.decode(ids), text);
}

TEST(CharTokenizer, CharactersBeyondAsciiAreSortedByCodePoint) {
  const std::string corpus = "zébra 😀 中 é a\n";
  const data::CharTokenizer t = data::CharTokenizer::from_corpus(corpus);
  // Code points: '\n' 0x0A, ' ' 0x20, 'a', 'b', 'r', 'z', 'é' 0xE9, '中' 0x4E2D, '😀' 0x1F600.
  EXPECT_EQ(t.chars(),
            (std::vector<char32_t>{U'\n', U' ', U'a', U'b', U'r', U'z', 0xE9, 0x4E2D, 0x1F600}));
  EXPECT_EQ(t.encode("é中😀a"), (std::vector<int32_t>{6, 7, 8, 2}));
  EXPECT_EQ(t.decode(t.encode(corpus)), corpus);
}

TEST(CharTokenizer, UnknownCharacterIsAClearError) {
  const data::CharTokenizer t = data::CharTokenizer::from_corpus("abc");
  EXPECT_EQ(error_of([&] { t.encode("abxc"); }),
            "char tokenizer: character 'x' (U+0078) at byte 2 is not in the vocabulary of 3 "
            "characters");
  EXPECT_EQ(error_of([&] { t.encode("ab\xC3\xA9"); }),
            "char tokenizer: character '\xC3\xA9' (U+00E9) at byte 2 is not in the vocabulary of "
            "3 characters");
  // Control characters are named by code point only.
  EXPECT_EQ(error_of([&] { t.encode("a\tb"); }),
            "char tokenizer: character (U+0009) at byte 1 is not in the vocabulary of 3 "
            "characters");
  EXPECT_EQ(error_of([&] { t.encode("a\xFF"); }),
            "char tokenizer: text: invalid UTF-8 at byte 1 (0xFF)");
  const std::vector<int32_t> bad = {0, 3};
  EXPECT_EQ(error_of([&] { t.decode(bad); }),
            "char decode: id 3 at position 1 is outside the vocabulary of 3");
}

TEST(CharTokenizer, RejectsBadVocabularies) {
  EXPECT_NE(error_of([] { data::CharTokenizer::from_corpus(""); }).find("empty"),
            std::string::npos);
  EXPECT_NE(error_of([] { data::CharTokenizer::from_corpus("a\xC0\xAF"); }).find("byte 1"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              data::CharTokenizer(std::vector<char32_t>{U'b', U'a'});
            }).find("must be sorted"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              data::CharTokenizer(std::vector<char32_t>{U'a', U'a'});
            }).find("without duplicates"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              data::CharTokenizer(std::vector<char32_t>{0xD800});
            }).find("not a Unicode character"),
            std::string::npos);
}

TEST(CharTokenizer, SavesAndLoadsItsVocabulary) {
  ScratchDir dir;
  const std::string corpus = "To be, or not to be: \"that\" is the question.\n\té 中 😀 \\ \x7F";
  const data::CharTokenizer t = data::CharTokenizer::from_corpus(corpus);
  data::save_tokenizer(t, dir.path());
  // The file lists the characters in id order.
  const auto j = nlohmann::json::parse(read_raw(dir / "tokenizer.json"));
  EXPECT_EQ(j["tokenizer"], "char");
  EXPECT_EQ(j["vocab_size"], t.vocab_size());
  ASSERT_EQ(j["chars"].size(), t.chars().size());
  EXPECT_EQ(j["chars"][0], "\t");
  EXPECT_EQ(j["chars"].back(), "\xF0\x9F\x98\x80");

  const auto loaded = data::load_tokenizer(dir.path());
  ASSERT_EQ(loaded->name(), "char");
  EXPECT_EQ(dynamic_cast<const data::CharTokenizer&>(*loaded).chars(), t.chars());
  EXPECT_EQ(loaded->encode(corpus), t.encode(corpus));
}

TEST(CharTokenizer, LoadRejectsMalformedTokenizerFiles) {
  ScratchDir dir;
  const auto load_error = [&](const std::string& json) {
    write_raw(dir / "tokenizer.json", json);
    return error_of([&] { data::load_tokenizer(dir.path()); });
  };
  EXPECT_NE(load_error("{").find("not valid JSON"), std::string::npos);
  EXPECT_NE(load_error(R"({"tokenizer": "char", "vocab_size": 2})").find("\"chars\""),
            std::string::npos);
  EXPECT_NE(load_error(R"({"tokenizer": "char", "vocab_size": 2, "chars": ["a", "bc"]})")
                .find("not one character"),
            std::string::npos);
  EXPECT_NE(load_error(R"({"tokenizer": "char", "vocab_size": 3, "chars": ["a", "b"]})")
                .find("says vocab_size 3"),
            std::string::npos);
  EXPECT_NE(load_error(R"({"tokenizer": "char", "vocab_size": 2, "chars": ["b", "a"]})")
                .find("must be sorted"),
            std::string::npos);
  EXPECT_NE(load_error(R"({"tokenizer": "words", "vocab_size": 2})").find("unknown tokenizer"),
            std::string::npos);
  std::filesystem::remove(dir / "tokenizer.json");
  EXPECT_NE(error_of([&] { data::load_tokenizer(dir.path()); }).find("no such file"),
            std::string::npos);
}

TEST(ByteTokenizerFile, SavesAndLoads) {
  ScratchDir dir;
  data::save_tokenizer(*data::make_tokenizer("bytes", "", ""), dir.path());
  const auto t = data::load_tokenizer(dir.path());
  EXPECT_EQ(t->name(), "bytes");
  EXPECT_EQ(t->vocab_size(), 256);
  EXPECT_NE(error_of([] { data::make_tokenizer("words", "", ""); }).find("unknown tokenizer"),
            std::string::npos);
}

}  // namespace
}  // namespace tgtest
