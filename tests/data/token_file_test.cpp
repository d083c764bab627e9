// Token files in llm.c's format: the writer's bytes at their documented offsets, a hand-built file
// read back, and a clear error for each bad file (missing, empty, wrong magic, other version,
// truncated header or body, trailing bytes, no tokens, ids >= the vocabulary). A failed write
// leaves the previous file intact.
#include "data/token_file.h"

#include <cstring>

#include "data/data_testing.h"

namespace tgtest {
namespace {

// A token file built byte by byte: 256 little-endian int32 of header, then uint16 tokens.
std::string raw_token_file(int32_t magic, int32_t version, int32_t count,
                           const std::vector<uint16_t>& tokens) {
  std::string bytes(1024, '\0');
  const int32_t head[3] = {magic, version, count};
  for (int i = 0; i < 3; ++i) {
    for (int b = 0; b < 4; ++b) {
      bytes[static_cast<size_t>(4 * i + b)] =
          static_cast<char>((static_cast<uint32_t>(head[i]) >> (8 * b)) & 0xFF);
    }
  }
  for (const uint16_t t : tokens) {
    bytes.push_back(static_cast<char>(t & 0xFF));
    bytes.push_back(static_cast<char>(t >> 8));
  }
  return bytes;
}

std::string open_error(const std::filesystem::path& path, int64_t vocab) {
  return error_of([&] { data::TokenFile::open(path, vocab); });
}

TEST(TokenFile, WriterProducesLlmcLayout) {
  ScratchDir dir;
  const std::vector<int32_t> ids = {0, 1, 50256, 65535, 258};
  data::write_token_file(dir / "t.bin", ids);
  EXPECT_EQ(read_raw(dir / "t.bin"), raw_token_file(20240520, 1, 5, {0, 1, 50256, 65535, 258}));
}

TEST(TokenFile, ReadsAHandBuiltFile) {
  ScratchDir dir;
  write_raw(dir / "t.bin", raw_token_file(20240520, 1, 4, {7, 0, 300, 50256}));
  const data::TokenFile f = data::TokenFile::open(dir / "t.bin", 50257);
  ASSERT_EQ(f.size(), 4);
  EXPECT_EQ(std::vector<uint16_t>(f.tokens().begin(), f.tokens().end()),
            (std::vector<uint16_t>{7, 0, 300, 50256}));
  EXPECT_EQ(f.vocab_size(), 50257);
}

TEST(TokenFile, RoundTripsAMillionTokensAndMovesOwnership) {
  ScratchDir dir;
  std::vector<int32_t> ids(1 << 20);
  SplitMix64 rng{7};
  for (int32_t& id : ids) id = static_cast<int32_t>(rng.in(0, 65535));
  data::write_token_file(dir / "big.bin", ids);
  data::TokenFile f = data::TokenFile::open(dir / "big.bin", 65536);
  data::TokenFile g = std::move(f);
  ASSERT_EQ(g.size(), static_cast<int64_t>(ids.size()));
  for (size_t i = 0; i < ids.size(); ++i) ASSERT_EQ(g.tokens()[i], ids[i]) << i;
}

TEST(TokenFile, MissingFile) {
  ScratchDir dir;
  EXPECT_EQ(open_error(dir / "nope.bin", 256), "token file " + (dir / "nope.bin").string() +
                                                   ": cannot open: No such file or directory");
}

TEST(TokenFile, EmptyFile) {
  ScratchDir dir;
  write_raw(dir / "t.bin", "");
  EXPECT_EQ(open_error(dir / "t.bin", 256),
            "token file " + (dir / "t.bin").string() + ": the file is empty");
}

TEST(TokenFile, WrongMagic) {
  ScratchDir dir;
  write_raw(dir / "t.bin", raw_token_file(20240521, 1, 1, {1}));
  EXPECT_NE(open_error(dir / "t.bin", 256)
                .find("not a token file (magic number 20240521, expected 20240520)"),
            std::string::npos);
  // A text file is not a token file either.
  write_raw(dir / "t.bin", std::string(2000, 'x'));
  EXPECT_NE(open_error(dir / "t.bin", 256).find("not a token file"), std::string::npos);
}

TEST(TokenFile, OtherVersion) {
  ScratchDir dir;
  write_raw(dir / "t.bin", raw_token_file(20240520, 2, 1, {1, 0}));
  EXPECT_NE(open_error(dir / "t.bin", 256).find("unsupported version 2"), std::string::npos);
}

TEST(TokenFile, TruncatedHeader) {
  ScratchDir dir;
  write_raw(dir / "t.bin", raw_token_file(20240520, 1, 1, {1}).substr(0, 1000));
  EXPECT_NE(open_error(dir / "t.bin", 256)
                .find("truncated: 1000 bytes, shorter than the 1024-byte header"),
            std::string::npos);
}

TEST(TokenFile, TruncatedBody) {
  ScratchDir dir;
  const std::string full = raw_token_file(20240520, 1, 10, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10});
  write_raw(dir / "t.bin", full.substr(0, full.size() - 3));  // 8.5 tokens left
  EXPECT_NE(open_error(dir / "t.bin", 256)
                .find("truncated: the header says 10 tokens but the file holds 8"),
            std::string::npos);
}

TEST(TokenFile, TrailingBytes) {
  ScratchDir dir;
  write_raw(dir / "t.bin", raw_token_file(20240520, 1, 2, {1, 2, 3}));
  EXPECT_NE(open_error(dir / "t.bin", 256).find("2 bytes after the 2 tokens"), std::string::npos);
}

TEST(TokenFile, NoTokens) {
  ScratchDir dir;
  write_raw(dir / "t.bin", raw_token_file(20240520, 1, 0, {}));
  EXPECT_NE(open_error(dir / "t.bin", 256).find("holds 0 tokens"), std::string::npos);
  write_raw(dir / "t.bin", raw_token_file(20240520, 1, -5, {}));
  EXPECT_NE(open_error(dir / "t.bin", 256).find("holds -5 tokens"), std::string::npos);
  EXPECT_NE(error_of([&] { data::write_token_file(dir / "w.bin", {}); }).find("empty dataset"),
            std::string::npos);
}

TEST(TokenFile, IdsOutsideTheVocabulary) {
  ScratchDir dir;
  write_raw(dir / "t.bin", raw_token_file(20240520, 1, 4, {0, 64, 65, 3}));
  EXPECT_NO_THROW(data::TokenFile::open(dir / "t.bin", 66));
  EXPECT_EQ(open_error(dir / "t.bin", 65),
            "token file " + (dir / "t.bin").string() +
                ": token 65 at position 2 is outside the vocabulary of 65");
  const std::vector<int32_t> too_big = {1, 65536};
  EXPECT_NE(error_of([&] {
              data::write_token_file(dir / "w.bin", too_big);
            }).find("id 65536 at position 1 does not fit 16 bits"),
            std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir / "w.bin"));
}

TEST(TokenFile, DirectoryIsNotATokenFile) {
  ScratchDir dir;
  EXPECT_NE(open_error(dir.path(), 256).find("not a regular file"), std::string::npos);
}

TEST(TokenFile, FailedWriteKeepsThePreviousFile) {
  ScratchDir dir;
  const std::vector<int32_t> good = {1, 2, 3}, bad = {4, 70000, 6};
  data::write_token_file(dir / "t.bin", good);
  const std::string before = read_raw(dir / "t.bin");
  EXPECT_NE(error_of([&] { data::write_token_file(dir / "t.bin", bad); }), "");
  EXPECT_EQ(read_raw(dir / "t.bin"), before);
  int entries = 0;  // and no temporary file is left behind
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.path())) ++entries;
  EXPECT_EQ(entries, 1);
}

TEST(TokenFile, WriteIntoAMissingDirectoryIsAClearError) {
  ScratchDir dir;
  const std::vector<int32_t> ids = {1};
  const std::string e = error_of([&] { data::write_token_file(dir / "no" / "t.bin", ids); });
  EXPECT_NE(e.find((dir / "no" / "t.bin").string()), std::string::npos) << e;
  EXPECT_NE(e.find("No such file or directory"), std::string::npos) << e;
}

}  // namespace
}  // namespace tgtest
