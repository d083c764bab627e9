// Token dataset files in llm.c's format, so that its datasets work here and ours there.
//
//   header: 256 little-endian int32: [0] magic 20240520, [1] version 1, [2] token count N, rest 0
//   body:   N little-endian uint16 token ids
//
// (llm.c's version 2 stores uint32 ids for LLaMA 3's vocabulary; tilegrad reads version 1 only.)
// A TokenFile maps the file read-only and checks it when opened: header, exact size, and every id
// below the vocabulary size, so that a bad file fails at once with a message naming it rather
// than in the middle of training.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>

namespace tilegrad::data {

constexpr int32_t kTokenFileMagic = 20240520;
constexpr int32_t kTokenFileVersion = 1;
constexpr int64_t kTokenFileHeaderInts = 256;
constexpr int64_t kTokenFileHeaderBytes = kTokenFileHeaderInts * 4;

// Writes `ids` (each in [0, 65536)) to `path` atomically (io/atomic_file.h). An empty sequence is
// refused: the reader would reject the file.
void write_token_file(const std::filesystem::path& path, std::span<const int32_t> ids);

class TokenFile {
 public:
  // Maps `path` and validates it; ids must lie in [0, vocab_size). Throws tilegrad::Error naming
  // the file for a missing, empty, truncated or malformed file, or an id >= vocab_size.
  static TokenFile open(const std::filesystem::path& path, int64_t vocab_size);

  TokenFile(TokenFile&& other) noexcept;
  TokenFile& operator=(TokenFile&& other) noexcept;
  TokenFile(const TokenFile&) = delete;
  TokenFile& operator=(const TokenFile&) = delete;
  ~TokenFile();

  int64_t size() const { return count_; }
  std::span<const uint16_t> tokens() const { return {tokens_, static_cast<size_t>(count_)}; }
  const std::filesystem::path& path() const { return path_; }
  int64_t vocab_size() const { return vocab_size_; }

 private:
  TokenFile() = default;
  void release() noexcept;

  std::filesystem::path path_;
  void* map_ = nullptr;
  size_t map_bytes_ = 0;
  const uint16_t* tokens_ = nullptr;
  int64_t count_ = 0;
  int64_t vocab_size_ = 0;
};

}  // namespace tilegrad::data
