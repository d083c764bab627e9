// Training checkpoints: one directory per checkpoint, every file written atomically, a commit
// record written last, and the directory itself renamed into place.
//
//   <dir>/model.safetensors      the weights under their model names (GPT-2's Hugging Face names),
//                                in the model's dtypes; metadata {"format": "pt"}; any
//                                safetensors reader opens it
//   <dir>/optimizer.safetensors  optimizer tensors ("exp_avg/<param>", "master/<param>", ...)
//   <dir>/state.json             step, RNG (seed, offset), data position, config name, hash and
//                                contents, optimizer scalars (step counts, lr, loss scale), extra
//   <dir>/checkpoint.json        the commit record: format, version, step, and the size and FNV-1a
//                                64 digest of each of the three files above
//
// Note [Checkpoint atomicity]: save_checkpoint writes everything into "<dir>.partial" (each file
// via temp + fsync + rename, checkpoint.json last), fsyncs it, then renames the directory to
// <dir> and fsyncs the parent. A crash or an error (out of disk) at any point before that rename
// leaves only a ".partial" directory, which is never taken for a checkpoint and is removed by the
// next save to the same place; every other checkpoint directory is untouched throughout. A
// directory without checkpoint.json, or whose files differ from what checkpoint.json records, is
// refused on load with an error that says so. Runs keep one directory per saved step under a
// root (step_checkpoint_dir), so saving step 200 never writes into step 100's directory.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "io/named_tensors.h"

namespace tilegrad::io {

struct TrainingState {
  int64_t step = 0;         // optimizer steps completed
  uint64_t rng_seed = 0;    // the run's Philox generator (core/rng.h): seed ...
  uint64_t rng_offset = 0;  // ... and next draw
  nlohmann::json data = nlohmann::json::object();  // the data loader's position (opaque here)
  std::string config_name;                         // e.g. "shakespeare-char"
  // What must be equal for a resume to make sense (the model's config); its hash is checked on
  // load (LoadOptions::expected_config) and it lets `sample` rebuild the model from the directory.
  nlohmann::json config = nlohmann::json::object();
  nlohmann::json extra = nlohmann::json::object();  // anything else the trainer wants back
};

struct Checkpoint {
  NamedTensors model;      // -> model.safetensors
  NamedTensors optimizer;  // -> optimizer.safetensors (Optimizer::state_tensors())
  nlohmann::json optimizer_scalars = nlohmann::json::object();  // Optimizer::state_scalars()
  TrainingState state;
};

struct SaveOptions {
  AtomicWriteOptions write;  // passed to every file write (tests inject failures through it)
};

// Writes the checkpoint directory `dir` (Note [Checkpoint atomicity]). If `dir` already holds a
// checkpoint it is replaced only once the new one is complete.
void save_checkpoint(const std::filesystem::path& dir, const Checkpoint& ckpt,
                     const SaveOptions& options = {});

struct CheckpointInfo {
  TrainingState state;
  nlohmann::json optimizer_scalars;  // for Optimizer::load_state_scalars
  std::string config_hash;
};

// The FNV-1a 64 digest (hex) of the config's canonical JSON (keys sorted, compact).
std::string config_hash(const nlohmann::json& config);

// Verifies checkpoint.json and state.json and returns the state; reads no tensors.
CheckpointInfo read_checkpoint_info(const std::filesystem::path& dir);

struct LoadOptions {
  // When set: the checkpoint's config hash must equal config_hash(*expected_config), else an
  // error names both configs.
  std::optional<nlohmann::json> expected_config = std::nullopt;
  std::string expected_config_name = {};  // for that message
  // Model weights only: let float weights fill a model of another float dtype.
  bool allow_dtype_conversion = false;
};

// Verifies the directory and fills `model` and `optimizer` in place (names and shapes must match
// exactly; the error lists the differences). A checksum mismatch is detected after the bytes were
// read, so the targets then hold the damaged values: the error says so, and the run must not go on.
CheckpointInfo load_checkpoint(const std::filesystem::path& dir, const NamedTensors& model,
                               const NamedTensors& optimizer, const LoadOptions& options = {});
// The model weights only (sampling, fine-tuning with a fresh optimizer).
CheckpointInfo load_model_weights(const std::filesystem::path& dir, const NamedTensors& model,
                                  const LoadOptions& options = {});

// A run's checkpoints: <root>/step-00000200, ...
std::filesystem::path step_checkpoint_dir(const std::filesystem::path& root, int64_t step);
// The complete checkpoint (one with a readable checkpoint.json) with the highest step under
// `root`, or nullopt. Partial directories are ignored.
std::optional<std::filesystem::path> latest_checkpoint(const std::filesystem::path& root);
// Removes all but the `keep_last` highest-step complete checkpoints under root, and any leftover
// ".partial" directories. Returns the directories removed.
std::vector<std::filesystem::path> prune_checkpoints(const std::filesystem::path& root,
                                                     int64_t keep_last);

}  // namespace tilegrad::io
