// An SVG picture of a training run's loss curve: training loss per step and validation loss at the
// steps it was measured, self-contained like the memory plot. The plotted values travel with the
// picture (data-steps, data-loss, data-val on the paths) so that a reader can check it.
#pragma once

#include <string>
#include <vector>

#include "train/trainer.h"

namespace tilegrad::apps {

std::string loss_svg(const std::vector<train::StepMetrics>& steps, const std::string& title);

}  // namespace tilegrad::apps
