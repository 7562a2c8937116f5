// The CPU phase kernels of the bi-directional channel attention (csrc/cpu/channel_attention_kernel.cpp),
// shared with the whole-op forward and backward (csrc/cpu/channel_attention_staged.cpp).
#pragma once

#include <ATen/ATen.h>

#include <optional>
#include <tuple>

namespace vqcnir {

// t [..., rows, N] as a BLAS operand: unit stride along N and rows at least N apart, else a contiguous copy.
// An expanded tensor (e.g. the gradient of out.sum(): every stride 0) has neither: the phase kernels would take
// their per-slice ATen path for it (about 1 ms more at 256ch@32x32 forward + backward), and a row stride below N
// cannot be handed to the BLAS at all. One copy here is cheaper than either.
inline at::Tensor blas_rows(const at::Tensor& t) {
  const int64_t n = t.size(-1);
  const bool unit = n <= 1 || t.stride(-1) == 1;
  const bool apart = t.size(-2) <= 1 || t.stride(-2) >= n;
  return unit && apart ? t : t.contiguous();
}

// x @ y^T [B, heads, C, C] and, with norms, |x|^2 and |y|^2 [B, heads, C] (else undefined tensors), reduced
// over N in a fixed order; x and y [B, heads, C, N] of one floating dtype, any strides.
std::tuple<at::Tensor, at::Tensor, at::Tensor> channel_gram_cpu_impl(const at::Tensor& x, const at::Tensor& y,
                                                                     bool norms);

// w @ z + a * x -> contiguous [B, heads, C, N] in z's dtype; w [B, heads, C, C] (any strides) and a
// [B, heads, C] in the compute dtype, x like z; a = 1 when absent, x = 0 when absent.
at::Tensor channel_mix_cpu(const at::Tensor& w, const at::Tensor& z, const std::optional<at::Tensor>& x,
                           const std::optional<at::Tensor>& a);

}  // namespace vqcnir
