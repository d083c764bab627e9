// Shared by the data layer's tests: where the committed data lives, a scratch directory per test,
// and raw file writing (to build good and bad token files byte by byte, independently of the
// writer under test).
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "testing.h"

#ifndef TILEGRAD_DATA_DIR
#error "TILEGRAD_DATA_DIR must be defined by the build (the repository's data/ directory)"
#endif
#ifndef TILEGRAD_TEST_DATA_DIR
#error "TILEGRAD_TEST_DATA_DIR must be defined by the build (tests/data/)"
#endif

namespace tgtest {

// data/: tinyshakespeare.txt and gpt2/{encoder.json,vocab.bpe}.
inline std::filesystem::path data_dir() {
  return TILEGRAD_DATA_DIR;
}
inline std::filesystem::path gpt2_dir() {
  return data_dir() / "gpt2";
}
inline std::filesystem::path shakespeare_path() {
  return data_dir() / "tinyshakespeare.txt";
}
// tests/data/: gpt2_vectors.json (see make_gpt2_vectors.py).
inline std::filesystem::path test_data_dir() {
  return TILEGRAD_TEST_DATA_DIR;
}

// A fresh directory under the system's temporary directory, removed with its contents at the end.
class ScratchDir {
 public:
  ScratchDir();
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(std::string_view name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// Writes `bytes` to `path` as they are (not atomically: a test fixture).
void write_raw(const std::filesystem::path& path, std::string_view bytes);
std::string read_raw(const std::filesystem::path& path);

}  // namespace tgtest
