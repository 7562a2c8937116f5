// The library's compute dtype (vqcnir_ops/_dtypes.py, the one dtype policy): a call whose activations are
// float64 is computed in float64, every other (float32, float16, bfloat16) in float32.
#pragma once

#include <c10/core/ScalarType.h>

namespace vqcnir {

inline c10::ScalarType compute_dtype(c10::ScalarType activations) {
  return activations == c10::ScalarType::Double ? c10::ScalarType::Double : c10::ScalarType::Float;
}

}  // namespace vqcnir
