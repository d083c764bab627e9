// The `tilegrad` command-line program: a CLI11 app whose subcommands register themselves (see
// commands.h). main owns the only exit path: usage errors and tilegrad::Error become a message on
// stderr and exit status 2.
#include <CLI/CLI.hpp>

#include <exception>
#include <iostream>

#include "apps/commands.h"
#include "core/error.h"

#ifndef TILEGRAD_VERSION
#error "TILEGRAD_VERSION must be defined by the build (the project version)"
#endif

int main(int argc, char** argv) {
  CLI::App app{"tilegrad: a transformer training engine that accounts for every byte it allocates",
               "tilegrad"};
  app.set_version_flag("--version", std::string("tilegrad ") + TILEGRAD_VERSION);
  app.require_subcommand(1);

  tilegrad::apps::register_memtrace(app);
  tilegrad::apps::register_plan(app);
  tilegrad::apps::register_analyze(app);
  tilegrad::apps::register_prepare(app);
  tilegrad::apps::register_train(app);
  tilegrad::apps::register_sample(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version arrive here too, with status 0; every real usage error exits with 2.
    const int status = app.exit(e);
    return status == 0 ? 0 : 2;
  } catch (const tilegrad::Error& e) {
    std::cerr << "tilegrad: error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    // An InternalError or a failed allocation: a bug or an exhausted machine, not a usage error.
    std::cerr << "tilegrad: internal error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
