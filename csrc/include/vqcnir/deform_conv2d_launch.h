// Torch-free interface of the modulated deformable convolution (DCNv2) kernels.
//
// DeformGeometry describes one call; the CPU kernel (csrc/cpu/deform_conv2d_kernel.cpp) and the CUDA
// side (csrc/cuda/deform_conv2d.cpp) fill it from the tensors with check_deform_conv2d_args
// (deform_conv2d_checks.h). The CUDA launchers below are implemented in csrc/cuda/deform_conv2d_kernel.cu,
// which includes only CUDA headers, so CMakeLists.txt compiles it with nvcc without torch.
//
// Semantics: torchvision.ops.deform_conv2d; the spec is vqcnir_ops/deform/reference.py. All tensors are
// contiguous float32 here (the ATen side converts float16/bfloat16 inputs and converts results back):
//   input  [B, C, H, W]             offset [B, 2 * OG * K, Ho, Wo]  ((dy, dx) per offset group and tap)
//   mask   [B, OG * K, Ho, Wo]      K = kh * kw taps, OG offset groups, C % OG == 0
//   columns [C * K, P]              sampled and masked inputs of P output pixels (row c * K + k)
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "vqcnir/deform_conv2d_geometry.h"

namespace vqcnir {

// columns[(c * K + k) * n_pixels + p] = mask * bilinear(input[b, c], y, x) for output pixels
// p0 .. p0 + n_pixels - 1 of image b (row-major over Ho x Wo).
cudaError_t launch_deform_im2col(const float* input, const float* offset, const float* mask, const DeformGeometry& g,
                                 int64_t b, int64_t p0, int64_t n_pixels, float* columns, cudaStream_t stream);

// From grad_columns [C * K, n_pixels] (the gradient of the columns above): grad_offset and grad_mask of
// those pixels (written, not accumulated; each element is one thread's fixed-order sum over channels).
cudaError_t launch_deform_col2coord(const float* grad_columns, const float* input, const float* offset,
                                    const float* mask, const DeformGeometry& g, int64_t b, int64_t p0,
                                    int64_t n_pixels, float* grad_offset, float* grad_mask, cudaStream_t stream);

// grad_input[b] += the input gradient of the columns of pixels p0 .. p0 + n_pixels - 1.
// deterministic = false: each sample scatters to its four neighbours with atomicAdd (fast; the float
// summation order, and so the last bits, vary from run to run).
// deterministic = true: one thread per channel walks the chunk's samples in a fixed order and adds to
// its own channel plane only: no atomics, bitwise reproducible, less parallel (for checks and debugging).
cudaError_t launch_deform_col2im(const float* grad_columns, const float* offset, const float* mask,
                                 const DeformGeometry& g, int64_t b, int64_t p0, int64_t n_pixels, bool deterministic,
                                 float* grad_input, cudaStream_t stream);

}  // namespace vqcnir
