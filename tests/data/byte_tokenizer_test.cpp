// The byte tokenizer: one id per byte, any bytes round-trip (invalid UTF-8 included, and all of
// tinyshakespeare), bad ids fail.
#include "data/byte_tokenizer.h"

#include "data/data_testing.h"
#include "data/read_file.h"

namespace tgtest {
namespace {

TEST(ByteTokenizer, IdsAreTheBytes) {
  const data::ByteTokenizer t;
  EXPECT_EQ(t.vocab_size(), 256);
  EXPECT_EQ(t.name(), "bytes");
  EXPECT_EQ(t.encode("Az\n\xC3\xA9"), (std::vector<int32_t>{65, 122, 10, 0xC3, 0xA9}));
  EXPECT_TRUE(t.encode("").empty());
}

TEST(ByteTokenizer, EveryByteRoundTripsIncludingInvalidUtf8) {
  const data::ByteTokenizer t;
  std::string all;
  for (int rep = 0; rep < 3; ++rep) {
    for (int b = 255; b >= 0; --b) all.push_back(static_cast<char>(b));
  }
  const std::vector<int32_t> ids = t.encode(all);
  ASSERT_EQ(ids.size(), all.size());
  EXPECT_EQ(ids[0], 255);
  EXPECT_EQ(ids[255], 0);
  EXPECT_EQ(t.decode(ids), all);
}

TEST(ByteTokenizer, TinyShakespeareRoundTrips) {
  const data::ByteTokenizer t;
  const std::string text = data::read_file(shakespeare_path(), "corpus");
  const std::vector<int32_t> ids = t.encode(text);
  EXPECT_EQ(ids.size(), 1115394u);
  EXPECT_EQ(t.decode(ids), text);
}

TEST(ByteTokenizer, DecodeRejectsIdsOutsideTheVocabulary) {
  const data::ByteTokenizer t;
  const std::vector<int32_t> ids = {1, 2, 256};
  EXPECT_EQ(error_of([&] { t.decode(ids); }),
            "bytes decode: id 256 at position 2 is outside the vocabulary of 256");
  const std::vector<int32_t> negative = {-1};
  EXPECT_NE(error_of([&] { t.decode(negative); }), "");
}

}  // namespace
}  // namespace tgtest
