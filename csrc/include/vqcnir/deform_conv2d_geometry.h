// Geometry of one modulated deformable convolution call, shared by the CPU and CUDA kernels.
// No torch, no CUDA headers: included by the CPU kernel, the CUDA launchers and the ATen-side checks.
#pragma once

#include <cstdint>

#ifdef __CUDACC__
#define VQCNIR_HOST_DEVICE __host__ __device__
#else
#define VQCNIR_HOST_DEVICE
#endif

namespace vqcnir {

struct DeformGeometry {
  int64_t batch, channels, height, width;
  int64_t out_channels, groups, offset_groups;
  int64_t kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w;
  int64_t out_h, out_w;

  VQCNIR_HOST_DEVICE int64_t taps() const { return kernel_h * kernel_w; }
  VQCNIR_HOST_DEVICE int64_t pixels() const { return out_h * out_w; }
  VQCNIR_HOST_DEVICE int64_t channels_per_offset_group() const { return channels / offset_groups; }
};

}  // namespace vqcnir
