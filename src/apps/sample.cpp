// `tilegrad sample`: text from a trained GPT — the run directory's latest checkpoint (or a given
// checkpoint directory), the tokenizer `train` saved beside it, temperature and top-k sampling
// through the KV cache.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>

#include "apps/commands.h"
#include "core/error.h"
#include "data/tokenizer_file.h"
#include "io/checkpoint.h"
#include "models/sampling.h"
#include "train/trainer.h"

namespace tilegrad::apps {

namespace {

struct Options {
  std::string run, ckpt, prompt = "\n";
  int64_t tokens = 200, top_k = 40;
  double temperature = 0.8;
  uint64_t seed = 1;
  int samples = 1;
};

void run(const Options& o) {
  namespace fs = std::filesystem;
  fs::path dir = o.ckpt;
  if (dir.empty()) {
    const auto latest = io::latest_checkpoint(fs::path(o.run) / "checkpoints");
    TG_CHECK(latest.has_value(), "sample: no checkpoint under ",
             (fs::path(o.run) / "checkpoints").string());
    dir = *latest;
  }
  const io::CheckpointInfo info = io::read_checkpoint_info(dir);
  const models::GPTConfig config = train::model_from_json(info.state.config);
  // The tokenizer: beside the run's checkpoints (train writes it there).
  const fs::path run_dir = o.run.empty() ? dir.parent_path().parent_path() : fs::path(o.run);
  const auto tokenizer = data::load_tokenizer(run_dir);
  TG_CHECK(tokenizer->vocab_size() == config.V, "sample: the tokenizer in ", run_dir.string(),
           " has ", tokenizer->vocab_size(), " ids but the model was trained with ", config.V);
  Generator init(0);
  models::GPT model(config, init);
  io::load_model_weights(dir, model.named_parameters());
  models::SampleOptions so;
  so.max_new_tokens = o.tokens;
  so.temperature = o.temperature;
  so.top_k = o.top_k;
  const std::vector<int32_t> prompt = tokenizer->encode(o.prompt);
  for (int i = 0; i < o.samples; ++i) {
    Generator gen(o.seed + static_cast<uint64_t>(i));
    const auto ids = models::generate(model, prompt, so, gen);
    std::printf("%s\n%s\n", tokenizer->decode(ids).c_str(), i + 1 < o.samples ? "---" : "");
  }
}

}  // namespace

void register_sample(CLI::App& app) {
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("sample", "Generate text from a trained GPT");
  CLI::Option* run_dir = cmd->add_option("--run", o->run, "A `tilegrad train` output directory");
  CLI::Option* ckpt = cmd->add_option("--ckpt", o->ckpt, "A checkpoint directory");
  run_dir->excludes(ckpt);
  cmd->add_option("--prompt", o->prompt, "Text to continue");
  cmd->add_option("--tokens", o->tokens, "Tokens to generate")->capture_default_str();
  cmd->add_option("--temperature", o->temperature, "Softmax temperature (> 0)")
      ->capture_default_str();
  cmd->add_option("--top-k", o->top_k, "Sample among the k most likely (0: all)")
      ->capture_default_str();
  cmd->add_option("--seed", o->seed, "Seed")->capture_default_str();
  cmd->add_option("--samples", o->samples, "Number of samples")->capture_default_str();
  cmd->callback([o] {
    TG_CHECK(!o->run.empty() || !o->ckpt.empty(), "sample: give --run DIR or --ckpt DIR");
    run(*o);
  });
}

}  // namespace tilegrad::apps
