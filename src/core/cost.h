// The cost of one op call: floating-point operations and the minimal bytes it must read and write
// (each input and output touched once). Ops report it; autograd nodes record it; the analysis,
// IO model and rematerialization planners read it.
#pragma once

namespace tilegrad {

struct Cost {
  double flops = 0;
  double bytes = 0;
  Cost& operator+=(const Cost& o) {
    flops += o.flops;
    bytes += o.bytes;
    return *this;
  }
  // FLOPs per byte.
  double intensity() const { return bytes > 0 ? flops / bytes : 0; }
};

}  // namespace tilegrad
