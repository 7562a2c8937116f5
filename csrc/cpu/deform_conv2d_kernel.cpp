// Modulated deformable convolution (DCNv2) on CPU, forward and backward, deterministic.
//
// Semantics: torchvision.ops.deform_conv2d; spec: vqcnir_ops/deform/reference.py.
//
// No full im2col buffer: each image is processed in chunks of P output pixels, with P chosen so the
// chunk's column matrix [C * K, P] stays near kColumnBudget elements (a few MB) whatever the image size.
// Per chunk:
//   1. a sampling plan: for every (offset group, tap, pixel) the four neighbours' flat indices (-1 when
//      outside the image), their bilinear weights and the fractional parts (ly, lx) -- shared by every
//      channel of the offset group;
//   2. forward: columns = mask * bilinear samples (parallel over rows c * K + k), then one GEMM per group
//      (weight_g [Cout/G, Cin/G * K] x columns_g) into the output;
//   3. backward: the same columns give grad_weight += grad_out_g x columns_g^T; grad_columns =
//      weight_g^T x grad_out_g; grad_offset and grad_mask reduce grad_columns over the channels of each
//      offset group (parallel over (group, tap, pixel): each output element is one task's fixed-order sum);
//      grad_input scatters each sample's gradient to its four neighbours, parallel over channels (each task
//      owns whole channel planes, so there are no races and the summation order is fixed).
// Chunks run one after the other; the parallelism is inside each step (at::parallel_for, and ATen's
// GEMM). Results do not depend on the thread count except through the GEMM's own blocking.
// Everything is computed in float32 (float64 for float64 inputs); float16/bfloat16 are converted on entry.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>
#include <vector>

#include "vqcnir/deform_conv2d_checks.h"
#include "vqcnir/dtypes.h"
#include "vqcnir/parallel.h"
#include "vqcnir/deform_conv2d_gemm.h"

namespace vqcnir {
namespace {

constexpr int64_t kColumnBudget = int64_t(1) << 21;  // elements of one chunk's column matrix (8 MB in float32)

template <typename scalar_t>
struct Sample {
  int64_t index[4];  // (y0, x0), (y0, x0 + 1), (y0 + 1, x0), (y0 + 1, x0 + 1); -1 outside the image
  scalar_t weight[4];
  scalar_t ly, lx;
};

int64_t chunk_pixels(const DeformGeometry& g) {
  const int64_t rows = std::max<int64_t>(1, g.channels * g.taps());
  return std::max<int64_t>(1, std::min(g.pixels(), kColumnBudget / rows));
}

// floor(v) for a finite v of moderate size (truncation, then one step down for negative non-integers).
template <typename scalar_t>
inline int64_t floor_clamped(scalar_t v) {
  const int64_t t = int64_t(v);
  return t - (scalar_t(t) > v ? 1 : 0);
}

// The four neighbours of a sample at (y, x), following vqcnir_ops/deform/reference.py: far-away points (and
// +-inf) are clamped to just outside the image, where every neighbour is outside (weight 0, never read); a NaN
// position has no neighbour and NaN weights and fractional parts, so the sample (weight * 0) is NaN and it
// scatters nothing into the input gradient.
template <typename scalar_t>
void locate(const DeformGeometry& g, scalar_t y, scalar_t x, Sample<scalar_t>& s) {
  const bool nan = std::isnan(y) || std::isnan(x);
  y = nan ? scalar_t(-2) : std::min(std::max(y, scalar_t(-2)), scalar_t(g.height + 1));
  x = nan ? scalar_t(-2) : std::min(std::max(x, scalar_t(-2)), scalar_t(g.width + 1));
  // floor by conversion (y and x are clamped to [-2, size + 1] here): std::floor is a libm call on x86-64
  // builds without SSE4.1, and this runs once per (offset group, tap, pixel).
  const int64_t y0 = floor_clamped(y), x0 = floor_clamped(x);
  const scalar_t fy = scalar_t(y0), fx = scalar_t(x0);
  const scalar_t poison = nan ? std::numeric_limits<scalar_t>::quiet_NaN() : scalar_t(1);
  s.ly = (y - fy) * poison;
  s.lx = (x - fx) * poison;
  const scalar_t wy[2] = {1 - s.ly, s.ly}, wx[2] = {1 - s.lx, s.lx};
  for (int c = 0; c < 4; ++c) {
    const int64_t yy = y0 + c / 2, xx = x0 + c % 2;
    const bool inside = yy >= 0 && yy < g.height && xx >= 0 && xx < g.width;
    s.index[c] = inside ? yy * g.width + xx : -1;
    s.weight[c] = (inside ? wy[c / 2] * wx[c % 2] : scalar_t(0)) * poison;
  }
}

// Plan of pixels p0 .. p0 + n - 1 of image b: entry ((og * K + k) * n + p).
template <typename scalar_t>
void build_plan(const DeformGeometry& g, const scalar_t* offset_b, int64_t p0, int64_t n,
                std::vector<Sample<scalar_t>>& plan) {
  const int64_t taps = g.taps(), pixels = g.pixels();
  plan.resize(g.offset_groups * taps * n);
  vqcnir::parallel_for(0, g.offset_groups * taps, 1, [&](int64_t begin, int64_t end) {
    for (int64_t gk = begin; gk < end; ++gk) {
      const int64_t k = gk % taps;
      const int64_t i = k / g.kernel_w, j = k % g.kernel_w;
      const scalar_t* dy = offset_b + (2 * gk) * pixels;
      const scalar_t* dx = dy + pixels;
      int64_t ho = p0 / g.out_w, wo = p0 % g.out_w;  // stepped along, no division per pixel
      for (int64_t q = 0; q < n; ++q) {
        const int64_t p = p0 + q;
        const scalar_t y = scalar_t(ho * g.stride_h - g.pad_h + i * g.dilation_h) + dy[p];
        const scalar_t x = scalar_t(wo * g.stride_w - g.pad_w + j * g.dilation_w) + dx[p];
        Sample<scalar_t>& s = plan[gk * n + q];
        locate(g, y, x, s);
        if (++wo == g.out_w) {
          wo = 0;
          ++ho;
        }
      }
    }
  });
}

// columns[(c * K + k) * n + q] = mask * bilinear sample of channel c.
template <typename scalar_t>
void fill_columns(const DeformGeometry& g, const scalar_t* input_b, const scalar_t* mask_b, int64_t p0, int64_t n,
                  const std::vector<Sample<scalar_t>>& plan, scalar_t* columns) {
  const int64_t taps = g.taps(), hw = g.height * g.width, cpg = g.channels_per_offset_group();
  vqcnir::parallel_for(0, g.channels * taps, 16, [&](int64_t begin, int64_t end) {
    const scalar_t zero = 0;  // read instead of an outside neighbour: a select of the address, not a branch
    for (int64_t row = begin; row < end; ++row) {
      const int64_t c = row / taps, k = row % taps, gk = (c / cpg) * taps + k;
      const scalar_t* plane = input_b + c * hw;
      const scalar_t* m = mask_b + gk * g.pixels() + p0;
      const Sample<scalar_t>* s = plan.data() + gk * n;
      scalar_t* out = columns + row * n;
      for (int64_t q = 0; q < n; ++q) {
        const Sample<scalar_t>& sq = s[q];
        // weight * value, the value 0 outside the image: a NaN weight (NaN position) makes the sample NaN.
        scalar_t v = 0;
        for (int t = 0; t < 4; ++t) v += sq.weight[t] * *(sq.index[t] >= 0 ? plane + sq.index[t] : &zero);
        out[q] = m[q] * v;
      }
    }
  });
}

at::Tensor deform_conv2d_cpu(const at::Tensor& input, const at::Tensor& offset, const at::Tensor& mask,
                             const at::Tensor& weight, const at::Tensor& bias, int64_t stride_h, int64_t stride_w,
                             int64_t pad_h, int64_t pad_w, int64_t dilation_h, int64_t dilation_w) {
  const DeformGeometry g = check_deform_conv2d_args(input, offset, mask, weight, bias, stride_h, stride_w, pad_h,
                                                    pad_w, dilation_h, dilation_w);
  const auto acc = compute_dtype(input.scalar_type());
  const at::Tensor in_c = input.to(acc).contiguous(), off_c = offset.to(acc).contiguous();
  const at::Tensor mask_c = mask.to(acc).contiguous();
  const int64_t cin_g = g.channels / g.groups, cout_g = g.out_channels / g.groups, taps = g.taps();
  const at::Tensor w = weight.to(acc).contiguous().view({g.groups, cout_g, cin_g * taps});
  at::Tensor out = at::empty({g.batch, g.out_channels, g.pixels()}, input.options().dtype(acc));
  const int64_t chunk = chunk_pixels(g);
  AT_DISPATCH_FLOATING_TYPES(acc, "deform_conv2d_cpu", [&] {
    std::vector<Sample<scalar_t>> plan;
    at::Tensor columns = at::empty({g.channels * taps * chunk}, out.options());
    for (int64_t b = 0; b < g.batch; ++b) {
      for (int64_t p0 = 0; p0 < g.pixels(); p0 += chunk) {
        const int64_t n = std::min(chunk, g.pixels() - p0);
        build_plan<scalar_t>(g, off_c[b].const_data_ptr<scalar_t>(), p0, n, plan);
        fill_columns<scalar_t>(g, in_c[b].const_data_ptr<scalar_t>(), mask_c[b].const_data_ptr<scalar_t>(), p0, n,
                               plan, columns.mutable_data_ptr<scalar_t>());
        chunk_forward_gemm(out[b], w, chunk_columns(columns, g.groups, cin_g * taps, n), p0, n);
      }
    }
  });
  out.add_(bias.to(acc).view({1, g.out_channels, 1}));
  return out.view({g.batch, g.out_channels, g.out_h, g.out_w}).to(input.scalar_type());
}

// grad_offset / grad_mask of the chunk from grad_columns (mask not applied), parallel over (group, tap, pixel).
template <typename scalar_t>
void columns_to_coords(const DeformGeometry& g, const scalar_t* grad_cols, const scalar_t* input_b,
                       const scalar_t* mask_b, int64_t p0, int64_t n, const std::vector<Sample<scalar_t>>& plan,
                       scalar_t* grad_offset_b, scalar_t* grad_mask_b) {
  const int64_t taps = g.taps(), hw = g.height * g.width, cpg = g.channels_per_offset_group(), pixels = g.pixels();
  vqcnir::parallel_for(0, g.offset_groups * taps * n, 256, [&](int64_t begin, int64_t end) {
    for (int64_t e = begin; e < end; ++e) {
      const int64_t gk = e / n, q = e % n, og = gk / taps, k = gk % taps;
      const Sample<scalar_t>& s = plan[e];
      scalar_t gy = 0, gx = 0, gm = 0;
      for (int64_t c = og * cpg; c < (og + 1) * cpg; ++c) {
        const scalar_t* plane = input_b + c * hw;
        scalar_t v[4];
        for (int t = 0; t < 4; ++t) v[t] = s.index[t] >= 0 ? plane[s.index[t]] : scalar_t(0);
        const scalar_t gc = grad_cols[(c * taps + k) * n + q];
        gm += gc * (s.weight[0] * v[0] + s.weight[1] * v[1] + s.weight[2] * v[2] + s.weight[3] * v[3]);
        gy += gc * ((1 - s.lx) * (v[2] - v[0]) + s.lx * (v[3] - v[1]));
        gx += gc * ((1 - s.ly) * (v[1] - v[0]) + s.ly * (v[3] - v[2]));
      }
      const scalar_t m = mask_b[gk * pixels + p0 + q];
      grad_offset_b[(2 * gk) * pixels + p0 + q] = m * gy;
      grad_offset_b[(2 * gk + 1) * pixels + p0 + q] = m * gx;
      grad_mask_b[gk * pixels + p0 + q] = gm;
    }
  });
}

// Work items of the scatter: (offset group, block of kChannelBlock channels of that group). A sample's plan
// entry (56 bytes) is read once per block instead of once per channel.
constexpr int64_t kChannelBlock = 8;

int64_t channel_blocks(const DeformGeometry& g) {
  return (g.channels_per_offset_group() + kChannelBlock - 1) / kChannelBlock;
}

// grad_input[b] += scatter of mask * grad_columns, parallel over (offset group, channel block): no two tasks
// share a plane, and each plane receives its updates in (tap, pixel, neighbour) order whatever the threads.
template <typename scalar_t>
void columns_to_input(const DeformGeometry& g, const scalar_t* grad_cols, const scalar_t* mask_b, int64_t p0,
                      int64_t n, const std::vector<Sample<scalar_t>>& plan, scalar_t* grad_input_b) {
  const int64_t taps = g.taps(), hw = g.height * g.width, cpg = g.channels_per_offset_group();
  const int64_t blocks = channel_blocks(g);
  vqcnir::parallel_for(0, g.offset_groups * blocks, 1, [&](int64_t begin, int64_t end) {
    scalar_t sink = 0;
    for (int64_t item = begin; item < end; ++item) {
      const int64_t og = item / blocks, c0 = og * cpg + (item % blocks) * kChannelBlock;
      const int64_t c1 = std::min(c0 + kChannelBlock, (og + 1) * cpg);
      for (int64_t k = 0; k < taps; ++k) {
        const int64_t gk = og * taps + k;
        const Sample<scalar_t>* s = plan.data() + gk * n;
        const scalar_t* m = mask_b + gk * g.pixels() + p0;
        for (int64_t q = 0; q < n; ++q) {
          const Sample<scalar_t> sq = s[q];
          for (int64_t c = c0; c < c1; ++c) {
            scalar_t* plane = grad_input_b + c * hw;
            const scalar_t v = m[q] * grad_cols[(c * taps + k) * n + q];
            // An outside neighbour's update goes to a scratch slot: a select of the address, not a branch.
            for (int t = 0; t < 4; ++t) *(sq.index[t] >= 0 ? plane + sq.index[t] : &sink) += sq.weight[t] * v;
          }
        }
      }
    }
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> deform_conv2d_backward_cpu(
    const at::Tensor& grad_out, const at::Tensor& input, const at::Tensor& offset, const at::Tensor& mask,
    const at::Tensor& weight, const at::Tensor& bias, int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w,
    int64_t dilation_h, int64_t dilation_w, bool /*deterministic: always*/) {
  const DeformGeometry g = check_deform_conv2d_args(input, offset, mask, weight, bias, stride_h, stride_w, pad_h,
                                                    pad_w, dilation_h, dilation_w);
  VQCNIR_CHECK_ARG(grad_out.dim() == 4 && grad_out.size(0) == g.batch && grad_out.size(1) == g.out_channels &&
                       grad_out.size(2) == g.out_h && grad_out.size(3) == g.out_w,
                   "grad_out", "must have the output's shape [", g.batch, ", ", g.out_channels, ", ", g.out_h, ", ",
                   g.out_w, "], got ", grad_out.sizes());
  const auto acc = compute_dtype(input.scalar_type());
  const at::Tensor in_c = input.to(acc).contiguous(), off_c = offset.to(acc).contiguous();
  const at::Tensor mask_c = mask.to(acc).contiguous();
  const at::Tensor gout = grad_out.to(acc).contiguous().view({g.batch, g.out_channels, g.pixels()});
  const int64_t cin_g = g.channels / g.groups, cout_g = g.out_channels / g.groups, taps = g.taps();
  const at::Tensor w = weight.to(acc).contiguous().view({g.groups, cout_g, cin_g * taps});
  at::Tensor grad_input = at::zeros({g.batch, g.channels, g.height, g.width}, in_c.options());
  at::Tensor grad_offset = at::empty(off_c.sizes(), in_c.options());
  at::Tensor grad_mask = at::empty(mask_c.sizes(), in_c.options());
  at::Tensor grad_weight = at::zeros({g.groups, cout_g, cin_g * taps}, in_c.options());
  const int64_t chunk = chunk_pixels(g);
  AT_DISPATCH_FLOATING_TYPES(acc, "deform_conv2d_backward_cpu", [&] {
    std::vector<Sample<scalar_t>> plan;
    at::Tensor columns = at::empty({g.channels * taps * chunk}, in_c.options());
    at::Tensor grad_columns = at::empty({g.channels * taps * chunk}, in_c.options());
    for (int64_t b = 0; b < g.batch; ++b) {
      const scalar_t* input_b = in_c[b].const_data_ptr<scalar_t>();
      const scalar_t* mask_b = mask_c[b].const_data_ptr<scalar_t>();
      for (int64_t p0 = 0; p0 < g.pixels(); p0 += chunk) {
        const int64_t n = std::min(chunk, g.pixels() - p0);
        build_plan<scalar_t>(g, off_c[b].const_data_ptr<scalar_t>(), p0, n, plan);
        fill_columns<scalar_t>(g, input_b, mask_b, p0, n, plan, columns.mutable_data_ptr<scalar_t>());
        chunk_backward_gemm(gout[b], w, chunk_columns(columns, g.groups, cin_g * taps, n),
                            chunk_columns(grad_columns, g.groups, cin_g * taps, n), grad_weight, p0, n);
        const scalar_t* gc = grad_columns.const_data_ptr<scalar_t>();
        columns_to_coords<scalar_t>(g, gc, input_b, mask_b, p0, n, plan, grad_offset[b].mutable_data_ptr<scalar_t>(),
                                    grad_mask[b].mutable_data_ptr<scalar_t>());
        columns_to_input<scalar_t>(g, gc, mask_b, p0, n, plan, grad_input[b].mutable_data_ptr<scalar_t>());
      }
    }
  });
  // IntArrayRef spelled out: a bare {0, 2} matches both the OptionalIntArrayRef and the DimnameList overload
  // with torch 2.4-2.11 headers (an error there; scripts/check_torch_builds.sh compiles against them).
  const at::Tensor grad_bias = gout.sum(at::IntArrayRef{0, 2});
  return {grad_input.to(input.scalar_type()), grad_offset.to(offset.scalar_type()), grad_mask.to(mask.scalar_type()),
          grad_weight.view(weight.sizes()).to(weight.scalar_type()), grad_bias.to(bias.scalar_type())};
}

}  // namespace

TORCH_LIBRARY_IMPL(vqcnir_C, CPU, m) {
  m.impl("deform_conv2d", &deform_conv2d_cpu);
  m.impl("deform_conv2d_backward", &deform_conv2d_backward_cpu);
}

}  // namespace vqcnir
