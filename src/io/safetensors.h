// safetensors files (https://github.com/huggingface/safetensors): the weight format Hugging Face
// and most tools read.
//
// Layout: an 8-byte little-endian unsigned header length N; N bytes of UTF-8 JSON,
//   {"__metadata__": {string: string}, "<name>": {"dtype": "F32", "shape": [..],
//    "data_offsets": [begin, end]}, ...}
// padded with spaces so the data starts 8-byte aligned; then the data section, where each tensor
// is its row-major little-endian bytes at [begin, end) relative to the section's start.
//
// The writer lays tensors out in the caller's order, stably sorted by decreasing element size, so
// every tensor starts at a multiple of its own element size (8-byte aligned section, sizes 8, 4,
// 2, 1): readers can map the file and use the bytes in place. For tensors already in that order its
// output is byte-identical to the reference writer's (tests/io/safetensors_test.cpp checks this).
//
// The reader trusts nothing: header length within bounds and the file, valid JSON object, no
// duplicate names, known dtypes, non-negative shapes whose byte count equals the offsets, and
// offsets that tile the data section exactly (no overlap, no hole, nothing past the end, nothing
// left over). Every error names the file and the tensor.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/shape.h"
#include "io/atomic_file.h"
#include "io/named_tensors.h"
#include "memory/category.h"

namespace tilegrad::io {

using Metadata = std::map<std::string, std::string>;

// The reference implementation's limit on the header length.
constexpr uint64_t kMaxSafetensorsHeader = 100'000'000;

// "F64", "F32", "BF16", "F16", "I32", "I64", "U8".
std::string_view safetensors_dtype(DType dt);
// The DType of a safetensors dtype string; nullopt for dtypes tilegrad has no type for.
std::optional<DType> dtype_from_safetensors(std::string_view s);

struct SafetensorsEntry {
  std::string name;
  DType dtype = DType::f32;
  Shape shape;
  uint64_t begin = 0;  // data_offsets, relative to the data section
  uint64_t end = 0;
};

struct SafetensorsHeader {
  std::vector<SafetensorsEntry> entries;  // in data order (by offset)
  Metadata metadata;
  uint64_t header_bytes = 0;  // N
  uint64_t file_bytes = 0;
  uint64_t data_start() const { return 8 + header_bytes; }
};

// Reads and validates everything but the tensor bytes.
SafetensorsHeader read_safetensors_header(const std::filesystem::path& path);

struct SafetensorsFile {
  NamedTensors tensors;  // in data order
  Metadata metadata;
  FileDigest digest;  // of the whole file
};

// Reads every tensor into a new cpu tensor tagged `category`.
SafetensorsFile read_safetensors(const std::filesystem::path& path,
                                 Category category = Category::other);

struct LoadIntoOptions {
  // Let a float tensor of the file fill a target of another float dtype (float32 weights into a
  // bfloat16 model); the conversion rounds to nearest even.
  bool allow_dtype_conversion = false;
};

// Fills existing tensors in place (no second copy of the weights): the file must hold exactly the
// targets' names, with their shapes (and dtypes, unless conversion is allowed). Nothing is written
// unless every name, shape and dtype matches; the error lists all mismatches. Returns the file's
// digest.
FileDigest load_safetensors_into(const std::filesystem::path& path, const NamedTensors& targets,
                                 const LoadIntoOptions& options = {});

// Throws (with the same message as load_safetensors_into) unless `targets` could be loaded from
// the file; reads the header only.
void check_loadable(const std::filesystem::path& path, const NamedTensors& targets,
                    const LoadIntoOptions& options = {});

// Writes `tensors` (cpu, any layout) atomically (io/atomic_file.h). Names must be non-empty,
// unique and not "__metadata__".
FileDigest write_safetensors(const std::filesystem::path& path, const NamedTensors& tensors,
                             const Metadata& metadata = {}, const AtomicWriteOptions& options = {});

}  // namespace tilegrad::io
