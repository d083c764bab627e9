#include "io/checkpoint.h"

#include <algorithm>
#include <cstdio>
#include <system_error>

#include "core/error.h"
#include "io/safetensors.h"

namespace tilegrad::io {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kFormat = "tilegrad-checkpoint";
constexpr int kVersion = 1;
constexpr const char* kModelFile = "model.safetensors";
constexpr const char* kOptimizerFile = "optimizer.safetensors";
constexpr const char* kStateFile = "state.json";
constexpr const char* kManifestFile = "checkpoint.json";
constexpr const char* kStepPrefix = "step-";

fs::path sibling(const fs::path& dir, const char* suffix) {
  return dir.parent_path() / (dir.filename().string() + suffix);
}

// `dir` without a trailing separator, so that filename() names the directory itself.
fs::path normalized(const fs::path& dir) {
  fs::path d = dir.lexically_normal();
  if (d.filename().empty()) d = d.parent_path();
  return d;
}

json digest_json(const FileDigest& d) {
  return {{"bytes", d.bytes}, {"fnv1a64", hex64(d.fnv1a64)}};
}

json state_json(const Checkpoint& c) {
  const TrainingState& s = c.state;
  return {{"step", s.step},
          {"rng", {{"seed", s.rng_seed}, {"offset", s.rng_offset}}},
          {"data", s.data},
          {"config_name", s.config_name},
          {"config_hash", config_hash(s.config)},
          {"config", s.config},
          {"optimizer", c.optimizer_scalars},
          {"extra", s.extra}};
}

std::string where(const fs::path& dir) {
  return "checkpoint '" + dir.string() + "'";
}

json parse_json_file(const std::string& text, const fs::path& path) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    throw Error(detail::cat("'", path.string(), "' is not valid JSON: ", e.what()));
  }
}

// checkpoint.json, validated: the files it lists, with their recorded digests.
json read_manifest(const fs::path& dir) {
  std::error_code ec;
  TG_CHECK(fs::is_directory(dir, ec), where(dir), " does not exist or is not a directory");
  const fs::path mpath = dir / kManifestFile;
  TG_CHECK(fs::exists(mpath, ec), where(dir), " is incomplete: ", kManifestFile,
           " is missing (it is written last, so a save was interrupted or this is not a "
           "checkpoint directory)");
  const json m = parse_json_file(read_file(mpath), mpath);
  TG_CHECK(m.is_object() && m.value("format", "") == kFormat, "'", mpath.string(),
           "' is not a tilegrad checkpoint record (format '", m.value("format", ""), "')");
  TG_CHECK(m.value("version", 0) == kVersion, "'", mpath.string(), "' has version ",
           m.value("version", 0), "; this tilegrad reads version ", kVersion);
  TG_CHECK(m.contains("files") && m.at("files").is_object(), "'", mpath.string(),
           "' lists no files");
  for (const char* f : {kModelFile, kOptimizerFile, kStateFile}) {
    TG_CHECK(m.at("files").contains(f), "'", mpath.string(), "' does not list ", f);
  }
  return m;
}

// Checks that `name` exists with the recorded size (cheap, before any bytes are read).
void check_size(const fs::path& dir, const json& manifest, const char* name) {
  const fs::path p = dir / name;
  std::error_code ec;
  const uint64_t expected = manifest.at("files").at(name).at("bytes").get<uint64_t>();
  TG_CHECK(fs::exists(p, ec), where(dir), " is incomplete: ", name, " is missing");
  const uint64_t actual = fs::file_size(p, ec);
  TG_CHECK(!ec, "cannot stat '", p.string(), "': ", ec.message());
  TG_CHECK(actual == expected, where(dir), ": ", name, " is ", actual, " bytes but ", kManifestFile,
           " records ", expected,
           " (the file was changed or truncated after the checkpoint was written)");
}

void check_digest(const fs::path& dir, const json& manifest, const char* name, uint64_t digest,
                  const char* consequence) {
  const std::string expected = manifest.at("files").at(name).at("fnv1a64").get<std::string>();
  TG_CHECK(hex64(digest) == expected, where(dir), ": ", name, " has FNV-1a 64 digest ",
           hex64(digest), " but ", kManifestFile, " records ", expected,
           " (the file is damaged or from another checkpoint)", consequence);
}

void check_config(const fs::path& dir, const CheckpointInfo& info, const LoadOptions& options) {
  if (!options.expected_config) return;
  const std::string want = config_hash(*options.expected_config);
  TG_CHECK(info.config_hash == want, where(dir), " was written for config '",
           info.state.config_name, "' (hash ", info.config_hash, "), but this run's config is '",
           options.expected_config_name, "' (hash ", want,
           "); saved config: ", info.state.config.dump(),
           ", this run: ", options.expected_config->dump());
}

// The step of a directory named "step-<digits>", or -1.
int64_t step_of(const fs::path& p) {
  const std::string name = p.filename().string();
  const std::string prefix = kStepPrefix;
  if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) return -1;
  int64_t step = 0;
  for (size_t i = prefix.size(); i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9' || step > (INT64_MAX - 9) / 10) return -1;
    step = step * 10 + (name[i] - '0');
  }
  return step;
}

// Complete checkpoints under root, by increasing step.
std::vector<std::pair<int64_t, fs::path>> complete_checkpoints(const fs::path& root) {
  std::vector<std::pair<int64_t, fs::path>> out;
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return out;
  for (const fs::directory_entry& e : fs::directory_iterator(root, ec)) {
    const int64_t step = step_of(e.path());
    if (step < 0 || !e.is_directory(ec)) continue;
    try {
      read_manifest(e.path());
    } catch (const Error&) {
      continue;  // incomplete or foreign: not a checkpoint to resume from
    }
    out.emplace_back(step, e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

std::string config_hash(const json& config) {
  Fnv1a64 h;
  const std::string canonical = config.dump();  // nlohmann::json keeps keys sorted
  h.update(canonical.data(), canonical.size());
  return hex64(h.h);
}

void save_checkpoint(const fs::path& dir_in, const Checkpoint& ckpt, const SaveOptions& options) {
  const fs::path dir = normalized(dir_in);
  TG_CHECK(!dir.filename().empty(), "save_checkpoint: '", dir_in.string(),
           "' does not name a directory");
  const fs::path staging = sibling(dir, ".partial");
  std::error_code ec;
  fs::remove_all(staging, ec);  // a leftover of an interrupted save
  TG_CHECK(!ec, "save_checkpoint: cannot remove the leftover '", staging.string(),
           "': ", ec.message());
  fs::create_directories(staging, ec);
  TG_CHECK(!ec, "save_checkpoint: cannot create '", staging.string(), "': ", ec.message());
  try {
    json files = json::object();
    files[kModelFile] = digest_json(
        write_safetensors(staging / kModelFile, ckpt.model, {{"format", "pt"}}, options.write));
    files[kOptimizerFile] =
        digest_json(write_safetensors(staging / kOptimizerFile, ckpt.optimizer,
                                      {{"format", "tilegrad-optimizer"}}, options.write));
    files[kStateFile] = digest_json(
        write_file_atomic(staging / kStateFile, state_json(ckpt).dump(2) + "\n", options.write));
    const json manifest = {
        {"format", kFormat}, {"version", kVersion}, {"step", ckpt.state.step}, {"files", files}};
    write_file_atomic(staging / kManifestFile, manifest.dump(2) + "\n", options.write);
    fsync_directory(staging);
  } catch (...) {
    fs::remove_all(staging, ec);
    throw;
  }
  // Commit: the complete directory takes the name. An older checkpoint under the same name is
  // moved aside first (rename cannot replace a non-empty directory) and removed afterwards.
  const fs::path parent = dir.parent_path().empty() ? fs::path(".") : dir.parent_path();
  const fs::path old = sibling(dir, ".old");
  const bool replacing = fs::exists(dir, ec);
  if (replacing) {
    fs::remove_all(old, ec);
    fs::rename(dir, old, ec);
    if (ec) {
      const std::string msg = ec.message();
      fs::remove_all(staging, ec);
      throw Error(detail::cat("save_checkpoint: cannot move the previous '", dir.string(),
                              "' aside: ", msg));
    }
  }
  fs::rename(staging, dir, ec);
  if (ec) {
    const std::string msg = ec.message();
    if (replacing) fs::rename(old, dir, ec);  // put the previous one back
    throw Error(detail::cat("save_checkpoint: cannot rename '", staging.string(), "' to '",
                            dir.string(), "': ", msg));
  }
  fsync_directory(parent);
  if (replacing) fs::remove_all(old, ec);
}

CheckpointInfo read_checkpoint_info(const fs::path& dir) {
  const json manifest = read_manifest(dir);
  check_size(dir, manifest, kStateFile);
  const std::string text = read_file(dir / kStateFile);
  Fnv1a64 h;
  h.update(text.data(), text.size());
  check_digest(dir, manifest, kStateFile, h.h, "");
  const json s = parse_json_file(text, dir / kStateFile);
  CheckpointInfo info;
  try {
    info.state.step = s.at("step").get<int64_t>();
    info.state.rng_seed = s.at("rng").at("seed").get<uint64_t>();
    info.state.rng_offset = s.at("rng").at("offset").get<uint64_t>();
    info.state.data = s.at("data");
    info.state.config_name = s.at("config_name").get<std::string>();
    info.state.config = s.at("config");
    info.state.extra = s.value("extra", json::object());
    info.config_hash = s.at("config_hash").get<std::string>();
    info.optimizer_scalars = s.at("optimizer");
  } catch (const json::exception& e) {
    throw Error(detail::cat(where(dir), ": ", kStateFile,
                            " lacks a field or has a wrong type: ", e.what()));
  }
  TG_CHECK(manifest.value("step", int64_t{-1}) == info.state.step, where(dir), ": ", kManifestFile,
           " and ", kStateFile, " disagree about the step");
  return info;
}

CheckpointInfo load_model_weights(const fs::path& dir, const NamedTensors& model,
                                  const LoadOptions& options) {
  const json manifest = read_manifest(dir);
  CheckpointInfo info = read_checkpoint_info(dir);
  check_config(dir, info, options);
  check_size(dir, manifest, kModelFile);
  const FileDigest d = load_safetensors_into(
      dir / kModelFile, model, {.allow_dtype_conversion = options.allow_dtype_conversion});
  check_digest(dir, manifest, kModelFile, d.fnv1a64, "; the model now holds damaged weights");
  return info;
}

CheckpointInfo load_checkpoint(const fs::path& dir, const NamedTensors& model,
                               const NamedTensors& optimizer, const LoadOptions& options) {
  const json manifest = read_manifest(dir);
  check_size(dir, manifest, kModelFile);
  check_size(dir, manifest, kOptimizerFile);
  // Config and both headers first: a checkpoint of another model or optimizer fails before any
  // weight or state is overwritten.
  check_config(dir, read_checkpoint_info(dir), options);
  check_loadable(dir / kModelFile, model,
                 {.allow_dtype_conversion = options.allow_dtype_conversion});
  check_loadable(dir / kOptimizerFile, optimizer);
  CheckpointInfo info = load_model_weights(dir, model, options);
  const FileDigest d = load_safetensors_into(dir / kOptimizerFile, optimizer);
  check_digest(dir, manifest, kOptimizerFile, d.fnv1a64, "; the optimizer now holds damaged state");
  return info;
}

fs::path step_checkpoint_dir(const fs::path& root, int64_t step) {
  TG_CHECK(step >= 0, "step_checkpoint_dir: step ", step, " is negative");
  char name[32];
  std::snprintf(name, sizeof name, "%s%08lld", kStepPrefix, static_cast<long long>(step));
  return root / name;
}

std::optional<fs::path> latest_checkpoint(const fs::path& root) {
  const auto all = complete_checkpoints(root);
  if (all.empty()) return std::nullopt;
  return all.back().second;
}

std::vector<fs::path> prune_checkpoints(const fs::path& root, int64_t keep_last) {
  TG_CHECK(keep_last >= 1, "prune_checkpoints: keep_last ", keep_last, " must be >= 1");
  std::vector<fs::path> removed;
  const auto all = complete_checkpoints(root);
  std::vector<fs::path> doomed;
  for (size_t i = 0; i + static_cast<size_t>(keep_last) < all.size(); ++i) {
    doomed.push_back(all[i].second);
  }
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(root, ec)) {
    const std::string name = e.path().filename().string();
    const std::string suffix = ".partial";
    if (name.size() > suffix.size() && name.ends_with(suffix) &&
        step_of(e.path().parent_path() / name.substr(0, name.size() - suffix.size())) >= 0) {
      doomed.push_back(e.path());
    }
  }
  for (const fs::path& p : doomed) {
    fs::remove_all(p, ec);
    TG_CHECK(!ec, "prune_checkpoints: cannot remove '", p.string(), "': ", ec.message());
    removed.push_back(p);
  }
  return removed;
}

}  // namespace tilegrad::io
