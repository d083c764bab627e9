// Reading a whole file into memory, with the errors a user can act on: a missing file, a
// directory, an unreadable file (each message names the file and what it was meant to be).
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace tilegrad::data {

// The bytes of `path`. `what` says what the file is for ("input text", "encoder.json"), for the
// error messages.
std::string read_file(const std::filesystem::path& path, std::string_view what);

}  // namespace tilegrad::data
