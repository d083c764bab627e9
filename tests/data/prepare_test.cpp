// prepare: tinyshakespeare split as nanoGPT splits it (its published counts: 1,003,854 / 111,540
// characters for shakespeare_char, 301,966 / 36,059 GPT-2 tokens for shakespeare), the files it
// writes read back and decode to the input, and bad inputs fail with a message.
#include "data/prepare.h"

#include "data/data_testing.h"
#include "data/read_file.h"
#include "data/token_file.h"
#include "data/tokenizer_file.h"

namespace tgtest {
namespace {

data::PrepareConfig config(std::string tokenizer, std::filesystem::path input,
                           std::filesystem::path out_dir, double val_fraction = 0.1,
                           std::filesystem::path gpt2 = gpt2_dir()) {
  data::PrepareConfig c;
  c.tokenizer = std::move(tokenizer);
  c.input = std::move(input);
  c.out_dir = std::move(out_dir);
  c.val_fraction = val_fraction;
  c.gpt2_dir = std::move(gpt2);
  return c;
}

std::string decode_file(const data::Tokenizer& t, const std::filesystem::path& path) {
  const data::TokenFile f = data::TokenFile::open(path, t.vocab_size());
  const std::vector<int32_t> ids(f.tokens().begin(), f.tokens().end());
  return t.decode(ids);
}

TEST(Prepare, ShakespeareCharMatchesNanoGptSplit) {
  ScratchDir dir;
  const data::PrepareResult r =
      data::prepare_dataset(config("char", shakespeare_path(), dir / "ds"));
  EXPECT_EQ(r.tokenizer, "char");
  EXPECT_EQ(r.vocab_size, 65);
  EXPECT_EQ(r.train_tokens, 1003854);
  EXPECT_EQ(r.val_tokens, 111540);
  const auto t = data::load_tokenizer(dir / "ds");
  EXPECT_EQ(t->vocab_size(), 65);
  const std::string text = data::read_file(shakespeare_path(), "corpus");
  EXPECT_EQ(decode_file(*t, dir / "ds" / "train.bin") + decode_file(*t, dir / "ds" / "val.bin"),
            text);
}

TEST(Prepare, ShakespeareGpt2MatchesNanoGptSplit) {
  ScratchDir dir;
  const data::PrepareResult r =
      data::prepare_dataset(config("gpt2", shakespeare_path(), dir.path()));
  EXPECT_EQ(r.vocab_size, 50257);
  EXPECT_EQ(r.train_tokens, 301966);
  EXPECT_EQ(r.val_tokens, 36059);
  const auto t = data::load_tokenizer(dir.path());  // from the copies in the dataset directory
  EXPECT_EQ(t->name(), "gpt2");
  EXPECT_EQ(decode_file(*t, dir / "train.bin") + decode_file(*t, dir / "val.bin"),
            data::read_file(shakespeare_path(), "corpus"));
}

TEST(Prepare, BytesAcceptAnyInputAndSplitByBytes) {
  ScratchDir dir;
  std::string text;
  for (int i = 0; i < 1000; ++i) text.push_back(static_cast<char>(i * 37 % 256));
  write_raw(dir / "in.bin", text);
  const data::PrepareResult r =
      data::prepare_dataset(config("bytes", dir / "in.bin", dir / "ds", 0.25));
  EXPECT_EQ(r.train_tokens, 750);
  EXPECT_EQ(r.val_tokens, 250);
  const auto t = data::load_tokenizer(dir / "ds");
  EXPECT_EQ(decode_file(*t, dir / "ds" / "train.bin") + decode_file(*t, dir / "ds" / "val.bin"),
            text);
}

TEST(Prepare, CharSplitCountsCharactersNotBytes) {
  ScratchDir dir;
  write_raw(dir / "in.txt",
            "\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9"
            "ab");
  const data::PrepareResult r = data::prepare_dataset(config("char", dir / "in.txt", dir.path()));
  EXPECT_EQ(r.train_tokens, 9);  // int(10 * 0.9)
  EXPECT_EQ(r.val_tokens, 1);
}

TEST(Prepare, BadInputsAreClearErrors) {
  ScratchDir dir;
  const auto prepare_error = [&](const std::string& tokenizer, const std::filesystem::path& input,
                                 double val_fraction = 0.1,
                                 const std::filesystem::path& gpt2 = gpt2_dir()) {
    const data::PrepareConfig c = config(tokenizer, input, dir / "out", val_fraction, gpt2);
    return error_of([&] { data::prepare_dataset(c); });
  };
  EXPECT_EQ(prepare_error("char", dir / "missing.txt"),
            "prepare: input text " + (dir / "missing.txt").string() + ": no such file");
  write_raw(dir / "empty.txt", "");
  EXPECT_EQ(prepare_error("char", dir / "empty.txt"),
            "prepare: input text " + (dir / "empty.txt").string() + " is empty");
  write_raw(dir / "bad.txt", "caf\xC3");
  EXPECT_EQ(
      prepare_error("gpt2", dir / "bad.txt"),
      "prepare: input text " + (dir / "bad.txt").string() + ": invalid UTF-8 at byte 3 (0xC3)");
  write_raw(dir / "short.txt", "a");  // int(1 * 0.9) = 0 characters to train on
  EXPECT_NE(prepare_error("char", dir / "short.txt").find("leaves the training split"),
            std::string::npos);
  EXPECT_NE(prepare_error("char", dir / "short.txt", 0.0)
                .find("--val-fraction must lie strictly between 0 and 1"),
            std::string::npos);
  EXPECT_NE(prepare_error("char", dir / "short.txt", 1.0).find("--val-fraction"),
            std::string::npos);
  EXPECT_NE(prepare_error("gpt2", shakespeare_path(), 0.1, dir / "no-gpt2")
                .find("encoder.json: no such file"),
            std::string::npos);
  // Nothing was written by any of the failures.
  EXPECT_FALSE(std::filesystem::exists(dir / "out" / "train.bin"));
}

}  // namespace
}  // namespace tgtest
