// The CPU phase kernels of the bi-directional channel attention (csrc/cpu/channel_attention_kernel.cpp),
// shared with the whole-op forward and backward (csrc/cpu/channel_attention_staged.cpp).
#pragma once

#include <ATen/ATen.h>

#include <optional>
#include <tuple>

namespace vqcnir {

// x @ y^T [B, heads, C, C] and, with norms, |x|^2 and |y|^2 [B, heads, C] (else undefined tensors), reduced
// over N in a fixed order; x and y [B, heads, C, N] of one floating dtype, any strides.
std::tuple<at::Tensor, at::Tensor, at::Tensor> channel_gram_cpu_impl(const at::Tensor& x, const at::Tensor& y,
                                                                     bool norms);

// w @ z + a * x -> contiguous [B, heads, C, N] in z's dtype; w [B, heads, C, C] (any strides) and a
// [B, heads, C] in the compute dtype, x like z; a = 1 when absent, x = 0 when absent.
at::Tensor channel_mix_cpu(const at::Tensor& w, const at::Tensor& z, const std::optional<at::Tensor>& x,
                           const std::optional<at::Tensor>& a);

}  // namespace vqcnir
