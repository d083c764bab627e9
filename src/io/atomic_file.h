// Atomic file replacement: a reader of `path` sees either the old file or the complete new one,
// never a partial write, even if the process or the machine dies mid-save.
//
// The protocol (POSIX rename(2) replaces its target atomically):
//   1. create a temporary file in the target's directory (same filesystem, so the rename is
//      atomic), with O_EXCL so two writers never share one;
//   2. write everything, looping over partial writes and EINTR;
//   3. fsync the temporary: its bytes are on disk before any name points at them;
//   4. rename it over the target;
//   5. fsync the directory: the rename itself is on disk.
// Any failure before step 4 (ENOSPC, EIO, EFBIG, ...) removes the temporary and throws
// tilegrad::Error naming the path and the system's error text; the previous file is untouched.
//
// Every byte written also feeds a running FNV-1a 64 digest, so callers get the file's size and
// checksum without reading it back (checkpoint.json records them).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace tilegrad::io {

// FNV-1a, 64-bit (offset basis 14695981039346656037, prime 1099511628211), over bytes.
struct Fnv1a64 {
  uint64_t h = 14695981039346656037ull;
  void update(const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < n; ++i) {
      h ^= p[i];
      h *= 1099511628211ull;
    }
  }
};

struct FileDigest {
  uint64_t bytes = 0;
  uint64_t fnv1a64 = Fnv1a64{}.h;
};

// The digest as 16 lower-case hex digits.
std::string hex64(uint64_t v);

struct AtomicWriteOptions {
  // Testing seam: send the data writes to this file (e.g. "/dev/full", where every write fails
  // with ENOSPC) instead of the temporary, so the out-of-disk path runs on the kernel's own error.
  // The temporary is still created, and must still be cleaned up.
  std::string redirect_writes_to;
};

class AtomicFile {
 public:
  explicit AtomicFile(std::filesystem::path target, AtomicWriteOptions options = {});
  // Removes the temporary unless commit() succeeded.
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t n);
  void write(std::string_view s) { write(s.data(), s.size()); }
  // fsync, rename over the target, fsync the directory. Returns the size and digest written.
  FileDigest commit();

  const std::filesystem::path& target() const { return target_; }
  const std::filesystem::path& temp_path() const { return temp_; }
  const FileDigest& digest() const { return digest_; }

 private:
  [[noreturn]] void fail(const std::string& what, int err);
  void discard() noexcept;

  std::filesystem::path target_;
  std::filesystem::path temp_;
  int fd_ = -1;       // the temporary
  int data_fd_ = -1;  // where data goes: fd_, or the redirect target
  bool committed_ = false;
  Fnv1a64 hash_;
  FileDigest digest_;
};

// The whole of `contents`, atomically.
FileDigest write_file_atomic(const std::filesystem::path& path, std::string_view contents,
                             const AtomicWriteOptions& options = {});

// fsyncs a directory (after creating, renaming or removing entries in it).
void fsync_directory(const std::filesystem::path& dir);

// Reads a whole (small) file; throws Error naming the path and errno text.
std::string read_file(const std::filesystem::path& path);

}  // namespace tilegrad::io
