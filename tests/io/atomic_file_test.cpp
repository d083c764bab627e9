// Atomic file writes: contents and digest, replacement, and failures — out of space (the kernel's
// ENOSPC from /dev/full, the kernel's EFBIG from RLIMIT_FSIZE), a failed rename, an abandoned
// write, a missing directory — each leaving the previous file byte-identical and no temporary
// behind.
#include <sys/stat.h>

#include "io/atomic_file.h"
#include "io/io_testing.h"
#include "testing.h"

namespace tgtest {
namespace {

using io::AtomicFile;
using io::write_file_atomic;

// FNV-1a 64 written out from its definition, independently of io::Fnv1a64.
uint64_t fnv1a64(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

TEST(IoAtomicFile, WritesContentsAndDigest) {
  TempDir dir("atomic");
  const std::string text = "hello, checkpoint\n";
  const io::FileDigest d = write_file_atomic(dir / "a.txt", text);
  EXPECT_EQ(slurp(dir / "a.txt"), text);
  EXPECT_EQ(d.bytes, text.size());
  EXPECT_EQ(d.fnv1a64, fnv1a64(text));
  // Published FNV-1a 64 test values: "" and "a".
  EXPECT_EQ(fnv1a64(""), 0xcbf29ce484222325ull);
  EXPECT_EQ(fnv1a64("a"), 0xaf63dc4c8601ec8cull);
  EXPECT_EQ(write_file_atomic(dir / "b", "a").fnv1a64, 0xaf63dc4c8601ec8cull);
  EXPECT_EQ(io::hex64(0xaf63dc4c8601ec8cull), "af63dc4c8601ec8c");
  EXPECT_EQ(dir.entries(), (std::vector<std::string>{"a.txt", "b"}));
}

TEST(IoAtomicFile, ReplacesAndLeavesNoTemporary) {
  TempDir dir("atomic");
  spit(dir / "f", "old contents that are longer than the new ones");
  AtomicFile f(dir / "f");
  f.write("new ");
  // Until commit, readers see the old file; the data sits in a temporary beside it.
  EXPECT_EQ(slurp(dir / "f"), "old contents that are longer than the new ones");
  EXPECT_EQ(f.temp_path().parent_path(), dir.path());
  EXPECT_TRUE(std::filesystem::exists(f.temp_path()));
  f.write(std::string(100000, 'x'));  // larger than one write() may take at once
  const io::FileDigest d = f.commit();
  EXPECT_EQ(d.bytes, 100004u);
  EXPECT_EQ(slurp(dir / "f"), "new " + std::string(100000, 'x'));
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"f"});
}

TEST(IoAtomicFile, OutOfSpaceKeepsThePreviousFile) {
  // /dev/full fails every write with ENOSPC, as a full disk does.
  if (!std::filesystem::exists("/dev/full")) GTEST_SKIP() << "no /dev/full on this system";
  TempDir dir("atomic");
  const std::string previous = "step 100 checkpoint bytes";
  spit(dir / "model.safetensors", previous);
  const std::string msg = error_of([&] {
    write_file_atomic(dir / "model.safetensors", std::string(4096, 'n'),
                      {.redirect_writes_to = "/dev/full"});
  });
  EXPECT_NE(msg.find((dir / "model.safetensors").string()), std::string::npos) << msg;
  EXPECT_NE(msg.find("No space left on device"), std::string::npos) << msg;
  EXPECT_NE(msg.find("previous file"), std::string::npos) << msg;
  EXPECT_EQ(slurp(dir / "model.safetensors"), previous);
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"model.safetensors"});
}

TEST(IoAtomicFile, FileSizeLimitKeepsThePreviousFile) {
  // A real write to the real temporary fails part-way (EFBIG from the kernel): the temporary
  // already holds bytes when the error comes, and must still go.
  TempDir dir("atomic");
  const std::string previous(1000, 'p');
  spit(dir / "state.json", previous);
  std::string msg;
  {
    FileSizeLimit limit(3000);
    msg = error_of([&] { write_file_atomic(dir / "state.json", std::string(5000, 'n')); });
  }
  EXPECT_NE(msg.find("state.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find("File too large"), std::string::npos) << msg;
  EXPECT_EQ(slurp(dir / "state.json"), previous);
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"state.json"});
}

TEST(IoAtomicFile, FailedRenameKeepsTargetAndRemovesTemporary) {
  TempDir dir("atomic");
  // rename(2) cannot replace a non-empty directory with a file.
  std::filesystem::create_directories(dir / "target" / "inner");
  const std::string msg = error_of([&] { write_file_atomic(dir / "target", "data"); });
  EXPECT_NE(msg.find("rename"), std::string::npos) << msg;
  EXPECT_TRUE(std::filesystem::is_directory(dir / "target" / "inner"));
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"target"});
}

TEST(IoAtomicFile, AbandonedWriteRemovesTemporary) {
  TempDir dir("atomic");
  spit(dir / "f", "previous");
  {
    AtomicFile f(dir / "f");
    f.write("half of the new");
    // Destroyed without commit(), as when the producer throws.
  }
  EXPECT_EQ(slurp(dir / "f"), "previous");
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"f"});
}

TEST(IoAtomicFile, MissingDirectoryAndReadErrorsNameThePath) {
  TempDir dir("atomic");
  const std::string msg = error_of([&] { write_file_atomic(dir / "nope" / "f", "x"); });
  EXPECT_NE(msg.find((dir / "nope" / "f").string()), std::string::npos) << msg;
  EXPECT_NE(msg.find("No such file or directory"), std::string::npos) << msg;
  const std::string rmsg = error_of([&] { io::read_file(dir / "absent.json"); });
  EXPECT_NE(rmsg.find("absent.json"), std::string::npos) << rmsg;
  EXPECT_NE(rmsg.find("No such file or directory"), std::string::npos) << rmsg;
}

TEST(IoAtomicFile, NewFileGetsOrdinaryPermissions) {
  TempDir dir("atomic");
  write_file_atomic(dir / "f", "x");
  struct stat st {};
  ASSERT_EQ(::stat((dir / "f").c_str(), &st), 0);
  EXPECT_TRUE(st.st_mode & S_IRUSR);
  EXPECT_TRUE(st.st_mode & S_IWUSR);
}

}  // namespace
}  // namespace tgtest
