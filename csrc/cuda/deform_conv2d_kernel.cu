// Modulated deformable convolution (DCNv2) on CUDA: the sampling kernels behind deform_conv2d_launch.h.
//
// Torch-free (CUDA headers only) so CMakeLists.txt compile-checks it with nvcc alone. The GEMMs and the
// chunking over output pixels live in the ATen side, csrc/cuda/deform_conv2d.cpp, which mirrors the CPU
// kernel: per chunk of P pixels, im2col -> GEMM (forward) and GEMM -> col2coord / col2im (backward).
// Semantics: torchvision.ops.deform_conv2d; spec: vqcnir_ops/deform/reference.py. float32 throughout.
#include <cstdint>

#include <cuda_runtime.h>

#include "vqcnir/deform_conv2d_launch.h"

namespace vqcnir {
namespace {

constexpr int kThreads = 256;

struct Neighbours {
  int64_t index[4];  // flat index in the plane of (y0, x0), (y0, x0 + 1), (y0 + 1, x0), (y0 + 1, x0 + 1); -1 outside
  float weight[4];
  float ly, lx;
};

// The sample position of tap k of output pixel p, and its four neighbours.
__device__ __forceinline__ Neighbours locate(const DeformGeometry& g, const float* offset_b, int64_t gk, int64_t k,
                                             int64_t p) {
  const int64_t pixels = g.pixels();
  const int64_t ho = p / g.out_w, wo = p % g.out_w;
  const float y = float(ho * g.stride_h - g.pad_h + (k / g.kernel_w) * g.dilation_h) + offset_b[(2 * gk) * pixels + p];
  const float x =
      float(wo * g.stride_w - g.pad_w + (k % g.kernel_w) * g.dilation_w) + offset_b[(2 * gk + 1) * pixels + p];
  // As vqcnir_ops/deform/reference.py: far-away points (and +-inf) are clamped to just outside the image, where
  // every neighbour is outside; a NaN position has no neighbour and NaN weights and fractional parts, so its
  // sample is NaN and it scatters nothing (fmaxf/fminf would drop the NaN: it is handled first).
  const bool nan = isnan(y) || isnan(x);
  const float yc = nan ? -2.0f : fminf(fmaxf(y, -2.0f), float(g.height) + 1.0f);
  const float xc = nan ? -2.0f : fminf(fmaxf(x, -2.0f), float(g.width) + 1.0f);
  const float fy = floorf(yc), fx = floorf(xc);
  const float poison = nan ? __int_as_float(0x7fc00000) : 1.0f;  // quiet NaN
  Neighbours n;
  n.ly = (yc - fy) * poison;
  n.lx = (xc - fx) * poison;
  const int64_t y0 = int64_t(fy), x0 = int64_t(fx);
  const float wy[2] = {1.0f - n.ly, n.ly};
  const float wx[2] = {1.0f - n.lx, n.lx};
#pragma unroll
  for (int c = 0; c < 4; ++c) {
    const int64_t yy = y0 + c / 2, xx = x0 + c % 2;
    const bool inside = yy >= 0 && yy < g.height && xx >= 0 && xx < g.width;
    n.index[c] = inside ? yy * g.width + xx : -1;
    n.weight[c] = (inside ? wy[c / 2] * wx[c % 2] : 0.0f) * poison;
  }
  return n;
}

__device__ __forceinline__ float read(const float* plane, int64_t index) { return index >= 0 ? plane[index] : 0.0f; }

// One thread per (row = c * K + k, q).
__global__ void im2col_kernel(const float* input, const float* offset, const float* mask, DeformGeometry g, int64_t b,
                              int64_t p0, int64_t n_pixels, float* columns) {
  const int64_t taps = g.taps(), total = g.channels * taps * n_pixels;
  const int64_t hw = g.height * g.width, n_og = g.offset_groups;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t q = e % n_pixels, row = e / n_pixels, c = row / taps, k = row % taps;
    const int64_t gk = (c / g.channels_per_offset_group()) * taps + k;
    const Neighbours nb = locate(g, offset + b * 2 * n_og * taps * g.pixels(), gk, k, p0 + q);
    const float* plane = input + (b * g.channels + c) * hw;
    float v = 0.0f;
#pragma unroll
    for (int t = 0; t < 4; ++t) v += nb.weight[t] * read(plane, nb.index[t]);
    columns[e] = mask[(b * n_og * taps + gk) * g.pixels() + p0 + q] * v;
  }
}

// One thread per (og, k, q): fixed-order sums over the offset group's channels.
__global__ void col2coord_kernel(const float* grad_columns, const float* input, const float* offset,
                                 const float* mask, DeformGeometry g, int64_t b, int64_t p0, int64_t n_pixels,
                                 float* grad_offset, float* grad_mask) {
  const int64_t taps = g.taps(), n_og = g.offset_groups, total = n_og * taps * n_pixels;
  const int64_t hw = g.height * g.width, cpg = g.channels_per_offset_group(), pixels = g.pixels();
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t q = e % n_pixels, gk = e / n_pixels, og = gk / taps, k = gk % taps;
    const Neighbours nb = locate(g, offset + b * 2 * n_og * taps * pixels, gk, k, p0 + q);
    float gy = 0.0f, gx = 0.0f, gm = 0.0f;
    for (int64_t c = og * cpg; c < (og + 1) * cpg; ++c) {
      const float* plane = input + (b * g.channels + c) * hw;
      float v[4];
#pragma unroll
      for (int t = 0; t < 4; ++t) v[t] = read(plane, nb.index[t]);
      const float gc = grad_columns[(c * taps + k) * n_pixels + q];
      gm += gc * (nb.weight[0] * v[0] + nb.weight[1] * v[1] + nb.weight[2] * v[2] + nb.weight[3] * v[3]);
      gy += gc * ((1.0f - nb.lx) * (v[2] - v[0]) + nb.lx * (v[3] - v[1]));
      gx += gc * ((1.0f - nb.ly) * (v[1] - v[0]) + nb.ly * (v[3] - v[2]));
    }
    const int64_t at = (b * n_og * taps + gk) * pixels + p0 + q;
    const float m = mask[at];
    grad_offset[(b * n_og * taps + gk) * 2 * pixels + p0 + q] = m * gy;
    grad_offset[(b * n_og * taps + gk) * 2 * pixels + pixels + p0 + q] = m * gx;
    grad_mask[at] = gm;
  }
}

// Fast: one thread per (row, q), atomicAdd to the four neighbours.
__global__ void col2im_atomic_kernel(const float* grad_columns, const float* offset, const float* mask,
                                     DeformGeometry g, int64_t b, int64_t p0, int64_t n_pixels, float* grad_input) {
  const int64_t taps = g.taps(), total = g.channels * taps * n_pixels, n_og = g.offset_groups;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t q = e % n_pixels, row = e / n_pixels, c = row / taps, k = row % taps;
    const int64_t gk = (c / g.channels_per_offset_group()) * taps + k;
    const Neighbours nb = locate(g, offset + b * 2 * n_og * taps * g.pixels(), gk, k, p0 + q);
    const float v = grad_columns[e] * mask[(b * n_og * taps + gk) * g.pixels() + p0 + q];
    float* plane = grad_input + (b * g.channels + c) * g.height * g.width;
#pragma unroll
    for (int t = 0; t < 4; ++t) {
      if (nb.index[t] >= 0) atomicAdd(plane + nb.index[t], nb.weight[t] * v);
    }
  }
}

// Deterministic: one thread per channel walks (k, q) in order and adds to its own plane only.
__global__ void col2im_ordered_kernel(const float* grad_columns, const float* offset, const float* mask,
                                      DeformGeometry g, int64_t b, int64_t p0, int64_t n_pixels, float* grad_input) {
  const int64_t taps = g.taps(), n_og = g.offset_groups;
  for (int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; c < g.channels; c += int64_t(gridDim.x) * blockDim.x) {
    float* plane = grad_input + (b * g.channels + c) * g.height * g.width;
    for (int64_t k = 0; k < taps; ++k) {
      const int64_t gk = (c / g.channels_per_offset_group()) * taps + k;
      for (int64_t q = 0; q < n_pixels; ++q) {
        const Neighbours nb = locate(g, offset + b * 2 * n_og * taps * g.pixels(), gk, k, p0 + q);
        const float v = grad_columns[(c * taps + k) * n_pixels + q] * mask[(b * n_og * taps + gk) * g.pixels() + p0 + q];
        for (int t = 0; t < 4; ++t) {
          if (nb.index[t] >= 0) plane[nb.index[t]] += nb.weight[t] * v;
        }
      }
    }
  }
}

unsigned int blocks_for(int64_t total) {
  const int64_t blocks = (total + kThreads - 1) / kThreads;
  return static_cast<unsigned int>(blocks < 65535 ? (blocks > 0 ? blocks : 1) : 65535);  // grid-stride beyond
}

}  // namespace

cudaError_t launch_deform_im2col(const float* input, const float* offset, const float* mask, const DeformGeometry& g,
                                 int64_t b, int64_t p0, int64_t n_pixels, float* columns, cudaStream_t stream) {
  const int64_t total = g.channels * g.taps() * n_pixels;
  if (total == 0) return cudaSuccess;
  im2col_kernel<<<blocks_for(total), kThreads, 0, stream>>>(input, offset, mask, g, b, p0, n_pixels, columns);
  return cudaGetLastError();
}

cudaError_t launch_deform_col2coord(const float* grad_columns, const float* input, const float* offset,
                                    const float* mask, const DeformGeometry& g, int64_t b, int64_t p0,
                                    int64_t n_pixels, float* grad_offset, float* grad_mask, cudaStream_t stream) {
  const int64_t total = g.offset_groups * g.taps() * n_pixels;
  if (total == 0) return cudaSuccess;
  col2coord_kernel<<<blocks_for(total), kThreads, 0, stream>>>(grad_columns, input, offset, mask, g, b, p0, n_pixels,
                                                               grad_offset, grad_mask);
  return cudaGetLastError();
}

cudaError_t launch_deform_col2im(const float* grad_columns, const float* offset, const float* mask,
                                 const DeformGeometry& g, int64_t b, int64_t p0, int64_t n_pixels, bool deterministic,
                                 float* grad_input, cudaStream_t stream) {
  if (deterministic) {
    if (g.channels == 0) return cudaSuccess;
    col2im_ordered_kernel<<<blocks_for(g.channels), kThreads, 0, stream>>>(grad_columns, offset, mask, g, b, p0,
                                                                           n_pixels, grad_input);
  } else {
    const int64_t total = g.channels * g.taps() * n_pixels;
    if (total == 0) return cudaSuccess;
    col2im_atomic_kernel<<<blocks_for(total), kThreads, 0, stream>>>(grad_columns, offset, mask, g, b, p0, n_pixels,
                                                                     grad_input);
  }
  return cudaGetLastError();
}

}  // namespace vqcnir
