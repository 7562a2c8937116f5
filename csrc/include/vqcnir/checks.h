// Argument checks shared by the CPU and CUDA kernels of every op.
//
// The Python functionals validate user input with friendly messages first; these checks guard the raw
// kernels (torch.ops.vqcnir_C.*) against being called directly with inputs they cannot handle, so a bad
// call fails with a named argument instead of reading out of bounds.
#pragma once

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#define VQCNIR_CHECK_ARG(cond, name, ...) TORCH_CHECK_VALUE(cond, "vqcnir: argument '", name, "' ", __VA_ARGS__)

namespace vqcnir {

inline void check_dim(const at::Tensor& t, const char* name, int64_t dim) {
  VQCNIR_CHECK_ARG(t.dim() == dim, name, "must have ", dim, " dimensions, got shape ", t.sizes());
}

inline void check_float32_contiguous(const at::Tensor& t, const char* name) {
  VQCNIR_CHECK_ARG(t.scalar_type() == at::kFloat, name, "must be float32, got ", t.scalar_type());
  VQCNIR_CHECK_ARG(t.is_contiguous(), name, "must be contiguous");
}

inline void check_same_device(const at::Tensor& a, const char* name_a, const at::Tensor& b, const char* name_b) {
  VQCNIR_CHECK_ARG(a.device() == b.device(), name_b, "must be on the same device as '", name_a, "' (", a.device(),
                   "), got ", b.device());
}

}  // namespace vqcnir
