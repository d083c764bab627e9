// GPT-2 BPE against ids from outside tilegrad: tests/data/gpt2_vectors.json holds the ids of
// OpenAI's reference encoder (encoder.py's logic on the `regex` package) and tiktoken, which agree
// on every string (make_gpt2_vectors.py says how they were made). Also: the whole of
// tinyshakespeare (token count, a hash of every id, both ends) and every BMP character in context,
// round trips, the byte map, the special token, invalid UTF-8, and malformed vocabulary files.
#include "data/gpt2_tokenizer.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <memory>
#include <thread>

#include "data/data_testing.h"
#include "data/gpt2_bytes.h"
#include "data/gpt2_pretokenizer.h"
#include "data/read_file.h"
#include "data/tokenizer_file.h"
#include "data/utf8.h"

namespace tgtest {
namespace {

const data::Gpt2Tokenizer& gpt2() {
  static const std::unique_ptr<data::Gpt2Tokenizer> t = data::Gpt2Tokenizer::load(gpt2_dir());
  return *t;
}

const nlohmann::json& vectors() {
  static const nlohmann::json j =
      nlohmann::json::parse(data::read_file(test_data_dir() / "gpt2_vectors.json", "vectors"));
  return j;
}

std::vector<int32_t> ids_of(const nlohmann::json& j) {
  return j.get<std::vector<int32_t>>();
}

// FNV-1a, 64-bit, over the ids as little-endian uint16 (as make_gpt2_vectors.py computes it).
uint64_t fnv1a64_u16le(const std::vector<int32_t>& ids) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (const int32_t id : ids) {
    for (const int byte : {id & 0xFF, (id >> 8) & 0xFF}) {
      h ^= static_cast<uint64_t>(byte);
      h *= 0x100000001B3ull;
    }
  }
  return h;
}

TEST(Gpt2Tokenizer, LoadsTheGpt2Vocabulary) {
  EXPECT_EQ(gpt2().vocab_size(), 50257);
  EXPECT_EQ(gpt2().merges(), 50000);
  EXPECT_EQ(gpt2().token(data::Gpt2Tokenizer::kEndOfText), "<|endoftext|>");
  EXPECT_EQ(gpt2().token(0), "!");
  EXPECT_EQ(gpt2().token(220), " ");     // "Ġ" in encoder.json
  EXPECT_EQ(gpt2().token(198), "\n");    // "Ċ"
  EXPECT_EQ(gpt2().token(262), " the");  // "Ġthe"
}

TEST(Gpt2Tokenizer, ByteMapMatchesGpt2Conventions) {
  const auto& map = data::gpt2_byte_to_unicode();
  EXPECT_EQ(map[' '], 0x120u);   // 'Ġ'
  EXPECT_EQ(map['\n'], 0x10Au);  // 'Ċ'
  EXPECT_EQ(map[0], 0x100u);
  EXPECT_EQ(map['!'], static_cast<char32_t>('!'));
  EXPECT_EQ(map[0xAD], 0x143u);  // the soft hyphen is the last of the 68 remapped bytes
  for (int b = 0; b < 256; ++b) {
    EXPECT_EQ(data::gpt2_unicode_to_byte(map[static_cast<size_t>(b)]),
              std::optional<unsigned char>(static_cast<unsigned char>(b)));
  }
  EXPECT_FALSE(data::gpt2_unicode_to_byte(0x144).has_value());
  EXPECT_FALSE(data::gpt2_unicode_to_byte(' ').has_value());
}

TEST(Gpt2Tokenizer, MatchesReferenceIdsOnEdgeCasesRandomStringsAndShakespeare) {
  const auto& cases = vectors()["cases"];
  ASSERT_GT(cases.size(), 300u);
  int checked = 0;
  for (const auto& c : cases) {
    const std::string text = c["text"];
    const std::vector<int32_t> expected = ids_of(c["ids"]);
    EXPECT_EQ(gpt2().encode(text), expected) << "text: " << testing::PrintToString(text);
    EXPECT_EQ(gpt2().decode(expected), text) << "text: " << testing::PrintToString(text);
    ++checked;
  }
  EXPECT_EQ(checked, static_cast<int>(cases.size()));
}

TEST(Gpt2Tokenizer, SpecialTokenIsTextForEncodeAndAnIdForEncodeWithSpecial) {
  // For plain encode, as for the reference encoder, "<|endoftext|>" is seven ordinary tokens.
  EXPECT_EQ(gpt2().encode("<|endoftext|>"),
            (std::vector<int32_t>{27, 91, 437, 1659, 5239, 91, 29}));
  for (const auto& c : vectors()["special"]) {
    const std::string text = c["text"];
    EXPECT_EQ(gpt2().encode_with_special(text), ids_of(c["ids"]))
        << "text: " << testing::PrintToString(text);
  }
  EXPECT_EQ(gpt2().encode_with_special("<|endoftext|>"), std::vector<int32_t>{50256});
  EXPECT_EQ(gpt2().decode(std::vector<int32_t>{50256}), "<|endoftext|>");
  EXPECT_TRUE(gpt2().encode_with_special("").empty());
}

TEST(Gpt2Tokenizer, WholeTinyShakespeareMatchesTheReference) {
  const std::string text = data::read_file(shakespeare_path(), "corpus");
  const auto& ref = vectors()["tinyshakespeare"];
  const std::vector<int32_t> ids = gpt2().encode(text);
  ASSERT_EQ(static_cast<int64_t>(ids.size()), ref["tokens"].get<int64_t>());
  EXPECT_EQ(static_cast<int64_t>(ids.size()), 338025);  // as ../shared/data/README.md states
  const std::vector<int32_t> first(ids.begin(), ids.begin() + 16), last(ids.end() - 16, ids.end());
  EXPECT_EQ(first, ids_of(ref["first"]));
  EXPECT_EQ(last, ids_of(ref["last"]));
  char hash[17];
  std::snprintf(hash, sizeof hash, "%016llx", static_cast<unsigned long long>(fnv1a64_u16le(ids)));
  EXPECT_EQ(std::string(hash), ref["fnv1a64_u16le"].get<std::string>());
  EXPECT_EQ(gpt2().decode(ids), text);
}

TEST(Gpt2Tokenizer, EveryBmpCharacterInContextMatchesTheReference) {
  // make_gpt2_vectors.py's unicode_bmp_text(): every BMP code point but the surrogates in several
  // contexts, one line each. The Unicode categories of PCRE2's tables decide every piece here.
  std::string text;
  for (char32_t c = 0; c < 0x10000; ++c) {
    if (c >= 0xD800 && c <= 0xDFFF) continue;
    std::string ch;
    data::utf8_append(ch, c);
    text += ch + "a " + ch + ch + "1 x" + ch + " " + ch + "\xC2\xA0" + ch + "  " + ch + "\n";
  }
  const auto& ref = vectors()["unicode_bmp"];
  const std::vector<int32_t> ids = gpt2().encode(text);
  EXPECT_EQ(static_cast<int64_t>(ids.size()), ref["tokens"].get<int64_t>());
  char hash[17];
  std::snprintf(hash, sizeof hash, "%016llx", static_cast<unsigned long long>(fnv1a64_u16le(ids)));
  EXPECT_EQ(std::string(hash), ref["fnv1a64_u16le"].get<std::string>());
  EXPECT_EQ(gpt2().decode(ids), text);
}

TEST(Gpt2Tokenizer, RoundTripsArbitraryUnicodeText) {
  // Random strings over a pool of every character class, including characters the vectors do not
  // cover; decode(encode(s)) must give s back byte for byte.
  const std::vector<std::string> pool = {"a",
                                         "Z",
                                         "7",
                                         " ",
                                         "  ",
                                         "\n",
                                         "\r\n",
                                         "\t",
                                         "'s",
                                         "'",
                                         "!",
                                         "-",
                                         "\xC3\xA9",
                                         "\xE4\xB8\xAD",
                                         "\xF0\x9F\x98\x80",
                                         "\xCC\x81",
                                         "\xC2\xA0",
                                         "\xE2\x80\x83",
                                         "\xE2\x80\xA8",
                                         "\x01",
                                         "\x7F"};
  SplitMix64 rng{42};
  for (int i = 0; i < 500; ++i) {
    std::string s;
    const int64_t n = rng.in(0, 60);
    for (int64_t k = 0; k < n; ++k) s += pool[static_cast<size_t>(rng.in(0, 20))];
    EXPECT_EQ(gpt2().decode(gpt2().encode(s)), s) << testing::PrintToString(s);
  }
}

TEST(Gpt2Tokenizer, PiecesTileTheText) {
  const data::Gpt2Pretokenizer pre;
  const std::string text = "I'll   go\n\n  to 42 places!! \xC3\xA9t\xC3\xA9  ";
  const std::vector<std::string_view> pieces = pre.split(text);
  // As the reference regex cuts it (Python: regex.findall(pat, text)).
  const std::vector<std::string_view> expected = {
      "I", "'ll", "  ", " go", "\n\n ", " to", " 42", " places", "!!", " \xC3\xA9t\xC3\xA9", "  "};
  EXPECT_EQ(pieces, expected);
}

TEST(Gpt2Tokenizer, LongRunsSplitInLinearTime) {
  // A megabyte of spaces, letters and punctuation each: one piece per run, as findall gives.
  const std::string spaces(1 << 20, ' '), letters(1 << 20, 'a'), dots(1 << 20, '.');
  const data::Gpt2Pretokenizer pre;
  EXPECT_EQ(pre.split(spaces + "x").size(), 2u);  // n-1 spaces, then " x"
  EXPECT_EQ(pre.split(letters).size(), 1u);
  EXPECT_EQ(pre.split(dots + "\n").size(), 2u);
}

TEST(Gpt2Tokenizer, InvalidUtf8IsAnErrorNamingTheOffset) {
  // The reference encoder takes a Python str, which cannot hold invalid UTF-8 (reading the file
  // strictly fails); tilegrad refuses such text the same way instead of guessing.
  EXPECT_EQ(error_of([] { gpt2().encode("hello \xFF world"); }),
            "gpt2 tokenizer: text: invalid UTF-8 at byte 6 (0xFF)");
  EXPECT_EQ(error_of([] { gpt2().encode("surrogate \xED\xA0\x80"); }),
            "gpt2 tokenizer: text: invalid UTF-8 at byte 10 (0xED)");
  const std::vector<int32_t> bad = {50257};
  EXPECT_EQ(error_of([&] { gpt2().decode(bad); }),
            "gpt2 decode: id 50257 at position 0 is outside the vocabulary of 50257");
}

TEST(Gpt2Tokenizer, ConcurrentEncodesAgree) {
  const std::string text = data::read_file(shakespeare_path(), "corpus").substr(0, 50000);
  const data::Gpt2Tokenizer& t = gpt2();
  const std::vector<int32_t> expected = t.encode(text);
  std::vector<std::vector<int32_t>> got(4);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < got.size(); ++i) {
    threads.emplace_back([&, i] { got[i] = t.encode(text.substr(i * 1000)); });
  }
  for (auto& th : threads) th.join();
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(t.decode(got[i]), text.substr(i * 1000));
  }
  EXPECT_EQ(got[0], expected);
}

TEST(Gpt2Tokenizer, MalformedVocabularyFilesAreClearErrors) {
  ScratchDir dir;
  const std::string merges = read_raw(gpt2_dir() / "vocab.bpe");
  const std::string encoder = read_raw(gpt2_dir() / "encoder.json");
  const auto load_error = [&](const std::string& enc, const std::string& bpe) {
    write_raw(dir / "encoder.json", enc);
    write_raw(dir / "vocab.bpe", bpe);
    return error_of([&] { data::Gpt2Tokenizer::load(dir.path()); });
  };
  EXPECT_EQ(load_error(encoder, merges), "");  // the copies themselves load
  EXPECT_NE(load_error("{\"a\": ", merges).find("not valid JSON"), std::string::npos);
  EXPECT_NE(load_error("[1, 2]", merges).find("expected a JSON object"), std::string::npos);
  EXPECT_NE(load_error(R"({"a": 0, "b": 5})", merges).find("outside 0..1"), std::string::npos);
  EXPECT_NE(load_error(R"({"a": 0, " ": 1})", merges).find("outside GPT-2's byte map"),
            std::string::npos);
  EXPECT_NE(load_error(R"({"a": 0, "b": 1})", merges).find("byte 0 has no token"),
            std::string::npos);
  EXPECT_NE(load_error(encoder, "#version: 0.2\nĠ t\nnot-a-pair\n").find("line 3"),
            std::string::npos);
  EXPECT_NE(load_error(encoder, "#version: 0.2\nĠ t\nzzqx zzqy\n").find("line 3"),
            std::string::npos);
  EXPECT_NE(load_error(encoder, "#version: 0.2\n").find("no merges"), std::string::npos);
  std::filesystem::remove(dir / "vocab.bpe");
  EXPECT_NE(error_of([&] { data::Gpt2Tokenizer::load(dir.path()); }).find("no such file"),
            std::string::npos);
}

TEST(Gpt2Tokenizer, SavedWithItsVocabularyFiles) {
  ScratchDir dir;
  data::save_tokenizer(gpt2(), dir.path());
  EXPECT_EQ(read_raw(dir / "encoder.json"), read_raw(gpt2_dir() / "encoder.json"));
  EXPECT_EQ(read_raw(dir / "vocab.bpe"), read_raw(gpt2_dir() / "vocab.bpe"));
  const auto t = data::load_tokenizer(dir.path());
  EXPECT_EQ(t->name(), "gpt2");
  EXPECT_EQ(t->encode("Hello world"), (std::vector<int32_t>{15496, 995}));
}

}  // namespace
}  // namespace tgtest
