// Checks of the raw deform_conv2d kernels' arguments (CPU and CUDA), returning the call's geometry.
//
// The Python functional (vqcnir_ops/deform/functional.py) validates user input first with friendlier
// messages; these guard direct calls of torch.ops.vqcnir_C.deform_conv2d* against out-of-bounds reads.
#pragma once

#include <ATen/ATen.h>

#include "vqcnir/checks.h"
#include "vqcnir/deform_conv2d_geometry.h"

namespace vqcnir {

inline DeformGeometry check_deform_conv2d_args(const at::Tensor& input, const at::Tensor& offset,
                                               const at::Tensor& mask, const at::Tensor& weight,
                                               const at::Tensor& bias, int64_t stride_h, int64_t stride_w,
                                               int64_t pad_h, int64_t pad_w, int64_t dilation_h,
                                               int64_t dilation_w) {
  check_dim(input, "input", 4);
  check_dim(offset, "offset", 4);
  check_dim(mask, "mask", 4);
  check_dim(weight, "weight", 4);
  check_dim(bias, "bias", 1);
  for (const auto* t : {&offset, &mask, &weight, &bias}) check_same_device(input, "input", *t, "offset/mask/weight/bias");
  VQCNIR_CHECK_ARG(stride_h >= 1 && stride_w >= 1 && dilation_h >= 1 && dilation_w >= 1 && pad_h >= 0 && pad_w >= 0,
                   "stride", "and dilation must be >= 1 and padding >= 0");
  DeformGeometry g{};
  g.batch = input.size(0);
  g.channels = input.size(1);
  g.height = input.size(2);
  g.width = input.size(3);
  g.out_channels = weight.size(0);
  g.kernel_h = weight.size(2);
  g.kernel_w = weight.size(3);
  g.stride_h = stride_h;
  g.stride_w = stride_w;
  g.pad_h = pad_h;
  g.pad_w = pad_w;
  g.dilation_h = dilation_h;
  g.dilation_w = dilation_w;
  g.out_h = (g.height + 2 * pad_h - dilation_h * (g.kernel_h - 1) - 1) / stride_h + 1;
  g.out_w = (g.width + 2 * pad_w - dilation_w * (g.kernel_w - 1) - 1) / stride_w + 1;
  VQCNIR_CHECK_ARG(weight.size(1) >= 1 && g.channels % weight.size(1) == 0, "weight",
                   "must have Cin / groups channels dividing the input's ", g.channels, ", got shape ", weight.sizes());
  g.groups = g.channels / weight.size(1);
  VQCNIR_CHECK_ARG(g.out_channels % g.groups == 0, "weight", "must have Cout divisible by groups = ", g.groups);
  const int64_t taps = g.taps();
  VQCNIR_CHECK_ARG(taps >= 1 && offset.size(1) % (2 * taps) == 0 && offset.size(1) > 0, "offset",
                   "must have 2 * offset_groups * kh * kw channels, got ", offset.size(1));
  g.offset_groups = offset.size(1) / (2 * taps);
  VQCNIR_CHECK_ARG(g.channels % g.offset_groups == 0, "offset", "has ", g.offset_groups,
                   " offset groups, which do not divide Cin = ", g.channels);
  VQCNIR_CHECK_ARG(g.out_h >= 1 && g.out_w >= 1, "input", "is too small for the kernel: output would be ", g.out_h,
                   " x ", g.out_w);
  VQCNIR_CHECK_ARG(offset.size(0) == g.batch && offset.size(2) == g.out_h && offset.size(3) == g.out_w, "offset",
                   "must have shape [", g.batch, ", ", offset.size(1), ", ", g.out_h, ", ", g.out_w, "], got ",
                   offset.sizes());
  VQCNIR_CHECK_ARG(mask.size(0) == g.batch && mask.size(1) == g.offset_groups * taps && mask.size(2) == g.out_h &&
                       mask.size(3) == g.out_w,
                   "mask", "must have shape [", g.batch, ", ", g.offset_groups * taps, ", ", g.out_h, ", ", g.out_w,
                   "], got ", mask.sizes());
  VQCNIR_CHECK_ARG(bias.size(0) == g.out_channels, "bias", "must have ", g.out_channels, " entries, got ",
                   bias.size(0));
  return g;
}

}  // namespace vqcnir
