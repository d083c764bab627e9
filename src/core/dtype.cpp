#include "core/dtype.h"

namespace tilegrad {

size_t dtype_size(DType dt) {
  switch (dt) {
    case DType::f64:
    case DType::i64:
      return 8;
    case DType::f32:
    case DType::i32:
      return 4;
    case DType::bf16:
    case DType::f16:
      return 2;
    case DType::u8:
      return 1;
  }
  TG_ASSERT(false, "bad dtype");
}

std::string_view dtype_name(DType dt) {
  switch (dt) {
    case DType::f64:
      return "float64";
    case DType::f32:
      return "float32";
    case DType::bf16:
      return "bfloat16";
    case DType::f16:
      return "float16";
    case DType::i32:
      return "int32";
    case DType::i64:
      return "int64";
    case DType::u8:
      return "uint8";
  }
  TG_ASSERT(false, "bad dtype");
}

DType parse_dtype(std::string_view s) {
  if (s == "f64" || s == "float64") return DType::f64;
  if (s == "f32" || s == "float32") return DType::f32;
  if (s == "bf16" || s == "bfloat16") return DType::bf16;
  if (s == "f16" || s == "float16") return DType::f16;
  if (s == "i32" || s == "int32") return DType::i32;
  if (s == "i64" || s == "int64") return DType::i64;
  if (s == "u8" || s == "uint8") return DType::u8;
  throw Error(
      detail::cat("unknown dtype '", s, "' (expected f64, f32, bf16, f16, i32, i64 or u8)"));
}

}  // namespace tilegrad
