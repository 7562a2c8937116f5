// The data one chunk of the CPU deformable convolution works on, shared by the loop bodies
// (deform_conv2d_cpu_loops.inc, compiled once per instruction set) and their driver (deform_conv2d_kernel.cpp).
//
// Layouts (one image b, output pixels p0 .. p0 + n - 1 of the chunk):
//   input       [H * W, C]           the image channels-last, so that one sample of an offset group reads
//                                    its four neighbours as four runs of contiguous channels;
//   columns     [G, n, K * Cin/G]    for conv group g, pixel q, tap k, channel ci of the group: the masked
//                                    bilinear sample at (g * n + q) * K * Cin/G + k * Cin/G + ci, so each
//                                    group's block is a plain row-major [n, K * Cin/G] matrix for the GEMM;
//   grad_input  [H * W, C]           channels-last, like input.
// A sampling plan is made for a block of at most kPlanBlock pixels of one (offset group, tap) at a time, in
// arrays the compiler can vectorise, and used at once while it is in L1.
#pragma once

#include <cstdint>

namespace vqcnir {
namespace deform_cpu {

constexpr int64_t kPlanBlock = 64;  // pixels per plan block
constexpr int64_t kScatterChannels = 16;  // channels per input-gradient task (a 64-byte line of float32)

template <typename scalar_t>
struct Chunk {
  int64_t channels, height, width, taps, kernel_w, offset_groups;
  int64_t channels_per_offset_group, channels_per_group, pixels;
  int64_t dilation_h, dilation_w;
  int64_t p0, n;
  const scalar_t* base_y;  // [n] row of tap (0, 0) of each pixel: ho * stride_h - pad_h
  const scalar_t* base_x;  // [n] wo * stride_w - pad_w
  const scalar_t* input;   // [H * W, C]
  const scalar_t* offset;  // [2 * offset_groups * K, pixels]: (dy, dx) per (offset group, tap)
  const scalar_t* mask;    // [offset_groups * K, pixels]
  const scalar_t* zeros;   // channels_per_offset_group zeros: read in place of an outside neighbour

  int64_t columns_per_pixel() const { return taps * channels_per_group; }  // K * Cin/G
};

// Channels [channel, channel + length) of the image, all in conv group `group`, starting at its channel
// `in_group`.
struct ChannelRun {
  int64_t channel, length, group, in_group;
};

// Sampling plan of up to kPlanBlock pixels of one (offset group, tap): the four neighbours (y0, x0),
// (y0, x0 + 1), (y0 + 1, x0), (y0 + 1, x0 + 1) as flat pixel indices (-1 outside the image), their bilinear
// weights (0 outside) and the fractional parts.
template <typename scalar_t>
struct PlanBlock {
  int32_t index[4][kPlanBlock];
  scalar_t weight[4][kPlanBlock];
  scalar_t ly[kPlanBlock], lx[kPlanBlock];
};

}  // namespace deform_cpu
}  // namespace vqcnir
