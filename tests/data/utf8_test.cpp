// Strict UTF-8: the encodings of known characters, every scalar value round-trips, and each kind of
// ill-formed sequence is found at its byte offset.
#include "data/utf8.h"

#include <string>

#include "data/data_testing.h"

namespace tgtest {
namespace {

using data::find_invalid_utf8;

TEST(Utf8, KnownEncodings) {
  // From the Unicode code charts: U+0041, U+00E9, U+20AC, U+1F600.
  const std::pair<char32_t, std::string> known[] = {{U'A', "A"},
                                                    {0xE9, "\xC3\xA9"},
                                                    {0x20AC, "\xE2\x82\xAC"},
                                                    {0x1F600, "\xF0\x9F\x98\x80"},
                                                    {0x7FF, "\xDF\xBF"},
                                                    {0x800, "\xE0\xA0\x80"},
                                                    {0xFFFF, "\xEF\xBF\xBF"},
                                                    {0x10000, "\xF0\x90\x80\x80"},
                                                    {0x10FFFF, "\xF4\x8F\xBF\xBF"}};
  for (const auto& [cp, bytes] : known) {
    std::string out;
    data::utf8_append(out, cp);
    EXPECT_EQ(out, bytes) << data::code_point_name(cp);
    EXPECT_EQ(data::utf8_decode(bytes, "test"), std::vector<char32_t>{cp});
  }
}

TEST(Utf8, EveryScalarValueRoundTrips) {
  std::string all;
  std::vector<char32_t> cps;
  for (char32_t cp = 0; cp <= 0x10FFFF; ++cp) {
    if (cp >= 0xD800 && cp <= 0xDFFF) continue;
    data::utf8_append(all, cp);
    cps.push_back(cp);
  }
  EXPECT_FALSE(find_invalid_utf8(all).has_value());
  EXPECT_EQ(data::utf8_decode(all, "test"), cps);
}

TEST(Utf8, FindsEachKindOfIllFormedSequenceAtItsOffset) {
  const std::pair<std::string, size_t> bad[] = {
      {"ab\x80", 2},                  // stray continuation byte
      {"\xC0\xAF", 0},                // overlong '/'
      {"x\xC1\xBF", 1},               // overlong
      {"\xE0\x80\xAF", 0},            // overlong three-byte form
      {"\xF0\x80\x80\xAF", 0},        // overlong four-byte form
      {"ok \xED\xA0\x80", 3},         // surrogate U+D800
      {"\xED\xBF\xBF", 0},            // surrogate U+DFFF
      {"\xF4\x90\x80\x80", 0},        // U+110000
      {"\xF5\x80\x80\x80", 0},        // no such lead byte
      {"\xFF", 0},                    // no such lead byte
      {"abc\xE2\x82", 3},             // truncated at the end
      {"\xE2\x82x", 0},               // truncated before ASCII
      {"\xC3", 0},                    // lone lead byte
      {"12345678\xC3\xA9\xC3", 10}};  // after an ASCII word and a valid character
  for (const auto& [bytes, offset] : bad) {
    const auto found = find_invalid_utf8(bytes);
    ASSERT_TRUE(found.has_value()) << testing::PrintToString(bytes);
    EXPECT_EQ(*found, offset) << testing::PrintToString(bytes);
  }
  EXPECT_EQ(error_of([] { data::check_utf8("abc\xFF", "input"); }),
            "input: invalid UTF-8 at byte 3 (0xFF)");
}

TEST(Utf8, AcceptsTheEmptyStringAndLongAsciiRuns) {
  EXPECT_FALSE(find_invalid_utf8("").has_value());
  const std::string ascii(1000, 'a');
  EXPECT_FALSE(find_invalid_utf8(ascii).has_value());
  EXPECT_EQ(find_invalid_utf8(ascii + "\x80"), std::optional<size_t>(1000));
  EXPECT_EQ(find_invalid_utf8(std::string(13, 'a') + "\x80" + ascii), std::optional<size_t>(13));
}

}  // namespace
}  // namespace tgtest
