#include "io/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace tilegrad::io {

namespace {

std::string errno_text(int err) {
  return std::strerror(err);
}

// Names of temporaries: ".<name>.tmp-<pid>-<n>" (hidden, and never mistaken for the real file).
std::filesystem::path temp_name(const std::filesystem::path& target) {
  static std::atomic<uint64_t> counter{0};
  const std::string name = "." + target.filename().string() + ".tmp-" + std::to_string(::getpid()) +
                           "-" + std::to_string(counter++);
  return target.parent_path() / name;
}

}  // namespace

std::string hex64(uint64_t v) {
  static const char* kDigits = "0123456789abcdef";
  std::string s(16, '0');
  for (int i = 15; i >= 0; --i, v >>= 4) s[static_cast<size_t>(i)] = kDigits[v & 15];
  return s;
}

AtomicFile::AtomicFile(std::filesystem::path target, AtomicWriteOptions options)
    : target_(std::move(target)) {
  TG_CHECK(!target_.filename().empty(), "atomic write: '", target_.string(),
           "' does not name a file");
  for (int attempt = 0; attempt < 100 && fd_ < 0; ++attempt) {
    temp_ = temp_name(target_);
    fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd_ < 0 && errno != EEXIST) {
      const int err = errno;
      temp_.clear();
      throw Error(
          detail::cat("cannot write '", target_.string(),
                      "': creating a temporary file in its directory failed: ", errno_text(err)));
    }
  }
  TG_CHECK(fd_ >= 0, "cannot write '", target_.string(), "': no free temporary file name");
  data_fd_ = fd_;
  if (!options.redirect_writes_to.empty()) {
    data_fd_ = ::open(options.redirect_writes_to.c_str(), O_WRONLY | O_CLOEXEC);
    if (data_fd_ < 0) fail("opening " + options.redirect_writes_to, errno);
  }
}

AtomicFile::~AtomicFile() {
  if (!committed_) discard();
}

void AtomicFile::discard() noexcept {
  if (data_fd_ >= 0 && data_fd_ != fd_) ::close(data_fd_);
  if (fd_ >= 0) ::close(fd_);
  data_fd_ = fd_ = -1;
  if (!temp_.empty()) ::unlink(temp_.c_str());
  temp_.clear();
}

void AtomicFile::fail(const std::string& what, int err) {
  discard();
  throw Error(detail::cat("cannot write '", target_.string(), "': ", what, " failed: ",
                          errno_text(err), "; the previous file (if any) is unchanged"));
}

void AtomicFile::write(const void* data, size_t n) {
  TG_CHECK(fd_ >= 0 && !committed_, "atomic write of '", target_.string(),
           "': write after commit or failure");
  const auto* p = static_cast<const char*>(data);
  size_t done = 0;
  while (done < n) {
    const ssize_t w = ::write(data_fd_, p + done, n - done);
    if (w < 0) {
      if (errno == EINTR) continue;
      fail("write", errno);
    }
    if (w == 0) fail("write", EIO);  // a regular file never accepts 0 bytes of a non-empty write
    done += static_cast<size_t>(w);
  }
  hash_.update(data, n);
  digest_.bytes += n;
  digest_.fnv1a64 = hash_.h;
}

FileDigest AtomicFile::commit() {
  TG_CHECK(fd_ >= 0 && !committed_, "atomic write of '", target_.string(),
           "': commit after commit or failure");
  if (::fsync(data_fd_) != 0) fail("fsync", errno);
  if (data_fd_ != fd_) {
    ::close(data_fd_);
    data_fd_ = fd_;
  }
  const int fd = fd_;
  fd_ = data_fd_ = -1;
  if (::close(fd) != 0) {
    const int err = errno;
    fail("close", err);
  }
  if (::rename(temp_.c_str(), target_.c_str()) != 0) fail("rename over the target", errno);
  committed_ = true;
  temp_.clear();
  const std::filesystem::path dir =
      target_.parent_path().empty() ? std::filesystem::path(".") : target_.parent_path();
  fsync_directory(dir);
  return digest_;
}

FileDigest write_file_atomic(const std::filesystem::path& path, std::string_view contents,
                             const AtomicWriteOptions& options) {
  AtomicFile f(path, options);
  f.write(contents);
  return f.commit();
}

void fsync_directory(const std::filesystem::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    throw Error(
        detail::cat("cannot open directory '", dir.string(), "' to fsync it: ", errno_text(errno)));
  }
  // Some filesystems cannot fsync a directory (EINVAL): their renames are as durable as they get.
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0 && err != EINVAL) {
    throw Error(detail::cat("fsync of directory '", dir.string(), "' failed: ", errno_text(err)));
  }
}

std::string read_file(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(detail::cat("cannot open '", path.string(), "': ", errno_text(errno)));
  std::string out;
  char buf[65536];
  for (;;) {
    const ssize_t r = ::read(fd, buf, sizeof buf);
    if (r < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      throw Error(detail::cat("cannot read '", path.string(), "': ", errno_text(err)));
    }
    if (r == 0) break;
    out.append(buf, static_cast<size_t>(r));
  }
  ::close(fd);
  return out;
}

}  // namespace tilegrad::io
