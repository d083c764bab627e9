// `tilegrad analyze`: FLOPs, bytes, arithmetic intensity, roofline and memory analysis. The
// subcommands live in analyze_attention.cpp (attention) and analyze_transformer.cpp (mlp,
// transformer); this file only groups them.
#include <CLI/CLI.hpp>

#include "apps/analyze_common.h"
#include "apps/commands.h"

namespace tilegrad::apps {

void register_analyze(CLI::App& app) {
  CLI::App* analyze = app.add_subcommand(
      "analyze", "FLOPs, bytes, roofline, MFU, the attention IO model and memory formulas");
  analyze->require_subcommand(1);
  add_analyze_attention(*analyze);
  add_analyze_mlp(*analyze);
  add_analyze_transformer(*analyze);
}

}  // namespace tilegrad::apps
