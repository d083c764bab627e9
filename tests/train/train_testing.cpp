// Helpers of the training tests (train_testing.h).
#include "train/train_testing.h"

#include <fstream>

#include "data/prepare.h"

namespace tgtest {

namespace fs = std::filesystem;

fs::path char_dataset(const std::string& dir_name, const std::string& line) {
  const fs::path dir = fs::temp_directory_path() / dir_name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream text(dir / "input.txt");
  for (int i = 0; i < 200; ++i) text << line << i % 7 << ".\n";
  text.close();
  data::PrepareConfig p;
  p.tokenizer = "char";
  p.input = dir / "input.txt";
  p.out_dir = dir / "data";
  data::prepare_dataset(p);
  return dir;
}

train::TrainConfig tiny_run(const fs::path& dir, const std::string& out) {
  train::TrainConfig c;
  c.model = models::gpt_preset("tiny");
  c.model.T = 16;
  c.model.dropout = 0.1;
  c.data_dir = dir / "data";
  c.out_dir = dir / out;
  c.batch = 4;
  c.eval_iters = 2;
  return c;
}

}  // namespace tgtest
