#include "data/read_file.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "core/error.h"

namespace tilegrad::data {

std::string read_file(const std::filesystem::path& path, std::string_view what) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  TG_CHECK(std::filesystem::exists(status), what, " ", path.string(), ": no such file");
  TG_CHECK(!std::filesystem::is_directory(status), what, " ", path.string(),
           ": is a directory, not a file");
  struct Closer {
    void operator()(std::FILE* f) const { std::fclose(f); }
  };
  std::unique_ptr<std::FILE, Closer> f(std::fopen(path.c_str(), "rb"));
  TG_CHECK(f != nullptr, what, " ", path.string(), ": cannot open: ", std::strerror(errno));
  std::string data;
  char buf[1 << 16];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, f.get())) > 0) data.append(buf, n);
  TG_CHECK(!std::ferror(f.get()), what, " ", path.string(), ": read error: ", std::strerror(errno));
  return data;
}

}  // namespace tilegrad::data
