#include "data/token_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "io/atomic_file.h"

namespace tilegrad::data {

// The format is little-endian; reading and writing host integers directly relies on that.
static_assert(std::endian::native == std::endian::little,
              "token files are little-endian; a big-endian host would need byte swaps");

void write_token_file(const std::filesystem::path& path, std::span<const int32_t> ids) {
  TG_CHECK(!ids.empty(), "token file ", path.string(), ": refusing to write an empty dataset");
  TG_CHECK(ids.size() <= static_cast<size_t>(std::numeric_limits<int32_t>::max()), "token file ",
           path.string(), ": ", ids.size(), " tokens exceed the format's int32 count");
  std::array<int32_t, kTokenFileHeaderInts> header{};
  header[0] = kTokenFileMagic;
  header[1] = kTokenFileVersion;
  header[2] = static_cast<int32_t>(ids.size());
  std::vector<uint16_t> body(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    TG_CHECK(ids[i] >= 0 && ids[i] <= 65535, "token file ", path.string(), ": id ", ids[i],
             " at position ", i, " does not fit 16 bits");
    body[i] = static_cast<uint16_t>(ids[i]);
  }
  io::AtomicFile f(path);
  f.write(header.data(), sizeof header);
  f.write(body.data(), body.size() * sizeof(uint16_t));
  f.commit();
}

TokenFile TokenFile::open(const std::filesystem::path& path, int64_t vocab_size) {
  TG_CHECK(vocab_size >= 1 && vocab_size <= 65536, "token file ", path.string(),
           ": vocabulary size ", vocab_size, " is outside 1..65536");
  const std::string name = "token file " + path.string();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  TG_CHECK(fd >= 0, name, ": cannot open: ", std::strerror(errno));
  struct stat st {};
  const int rc = ::fstat(fd, &st);
  const int saved = errno;
  if (rc != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    TG_CHECK(rc == 0, name, ": cannot stat: ", std::strerror(saved));
    throw Error(name + ": not a regular file");
  }
  const int64_t bytes = st.st_size;
  if (bytes < kTokenFileHeaderBytes) {
    ::close(fd);
    TG_CHECK(bytes > 0, name, ": the file is empty");
    throw Error(detail::cat(name, ": truncated: ", bytes, " bytes, shorter than the ",
                            kTokenFileHeaderBytes, "-byte header"));
  }
  void* map = ::mmap(nullptr, static_cast<size_t>(bytes), PROT_READ, MAP_PRIVATE, fd, 0);
  const int map_errno = errno;
  ::close(fd);  // the mapping keeps the file open
  TG_CHECK(map != MAP_FAILED, name, ": cannot map: ", std::strerror(map_errno));

  TokenFile t;
  t.path_ = path;
  t.map_ = map;
  t.map_bytes_ = static_cast<size_t>(bytes);
  t.vocab_size_ = vocab_size;
  // From here on `t` owns the mapping: a throw unmaps it.
  int32_t header[3];
  std::memcpy(header, map, sizeof header);
  TG_CHECK(header[0] == kTokenFileMagic, name, ": not a token file (magic number ", header[0],
           ", expected ", kTokenFileMagic, ")");
  TG_CHECK(header[1] == kTokenFileVersion, name, ": unsupported version ", header[1],
           " (tilegrad reads version ", kTokenFileVersion, ", uint16 tokens)");
  const int64_t count = header[2];
  TG_CHECK(count > 0, name, ": the header says it holds ", count, " tokens (no data)");
  const int64_t body = bytes - kTokenFileHeaderBytes;
  TG_CHECK(body >= 2 * count, name, ": truncated: the header says ", count,
           " tokens but the file holds ", body / 2);
  TG_CHECK(body == 2 * count, name, ": ", body - 2 * count, " bytes after the ", count,
           " tokens its header announces");
  t.tokens_ =
      reinterpret_cast<const uint16_t*>(static_cast<const char*>(map) + kTokenFileHeaderBytes);
  t.count_ = count;
  for (int64_t i = 0; i < count; ++i) {
    TG_CHECK(t.tokens_[i] < vocab_size, name, ": token ", t.tokens_[i], " at position ", i,
             " is outside the vocabulary of ", vocab_size);
  }
  return t;
}

TokenFile::TokenFile(TokenFile&& other) noexcept {
  *this = std::move(other);
}

TokenFile& TokenFile::operator=(TokenFile&& other) noexcept {
  if (this != &other) {
    release();
    path_ = std::move(other.path_);
    map_ = std::exchange(other.map_, nullptr);
    map_bytes_ = std::exchange(other.map_bytes_, 0);
    tokens_ = std::exchange(other.tokens_, nullptr);
    count_ = std::exchange(other.count_, 0);
    vocab_size_ = std::exchange(other.vocab_size_, 0);
  }
  return *this;
}

TokenFile::~TokenFile() {
  release();
}

void TokenFile::release() noexcept {
  if (map_ != nullptr) ::munmap(map_, map_bytes_);
  map_ = nullptr;
  tokens_ = nullptr;
  count_ = 0;
}

}  // namespace tilegrad::data
