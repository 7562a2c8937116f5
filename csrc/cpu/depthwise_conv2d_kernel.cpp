// Depth-wise 2-D convolution on CPU (groups = channels, one filter per channel, stride 1), forward and backward.
// Contract: vqcnir_ops/depthwise/reference.py.
//
// Why a kernel of our own: oneDNN, which F.conv2d calls on CPU, runs the depth-wise backward of VQCNIR's
// shapes (texture warping's 7 x 7, the large-kernel attention's 5 x 5 and dilated 7 x 7) 5-10x slower than
// its forward, about 10% of a tiny-model training step. Here every loop works on one image row with unit
// stride on a zero-padded copy of the plane (no bounds checks): a block of up to 32 output columns stays in
// registers while every tap of the filter adds a shifted input row times its weight (forward); the input
// gradient is the same correlation of the padded output gradient with the flipped filter, and the weight
// gradient a dot product per tap of the output gradient with the shifted input. The model's planes stay in
// L1/L2, and the loops are vectorised by the compiler.
//
// Tasks: the forward takes (image, channel) planes; the backward takes channels, and walks the images of a
// channel in order, so the weight and bias gradients are summed in a fixed order: results do not depend on
// the thread count. float32 and float64 are computed as they are; float16/bfloat16 activations and
// parameters of any float dtype are converted to the compute dtype (float32) first, and every result is
// returned in its argument's dtype. The row loops are compiled for the baseline target and for AVX2 + FMA
// (vqcnir/cpu_isa.h picks).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <tuple>
#include <vector>

#include "vqcnir/checks.h"
#include "vqcnir/cpu_isa.h"
#include "vqcnir/dtypes.h"
#include "vqcnir/parallel.h"

namespace vqcnir {
namespace {

#define VQCNIR_INLINE inline __attribute__((always_inline))

// One plane's geometry: input H x W, output Ho x Wo, filter kh x kw, padding and dilation.
struct Plane {
  int64_t H, W, Ho, Wo, kh, kw, ph, pw, dh, dw;
};

int64_t round_up(int64_t n, int64_t block) { return (n + block - 1) / block * block; }

// The columns an output row is computed in at a time: held in registers across every tap of the filter, so
// each tap costs one load and one FMA per vector and no store. Narrow planes take narrow blocks.
int64_t block_for(int64_t cols) { return cols <= 8 ? 8 : (cols <= 16 ? 16 : 32); }

// A zero-filled buffer of rows x cols holding plane [h, w] (row stride w) at (top, left); parts of the plane
// outside the buffer (negative offsets: padding larger than the dilated kernel) are cut. The blocked loops
// then read the buffer without bounds checks.
template <typename T>
void place(const T* plane, int64_t h, int64_t w, int64_t top, int64_t left, std::vector<T>& buffer, int64_t rows,
           int64_t cols) {
  buffer.assign(rows * cols, T(0));
  for (int64_t y = std::max<int64_t>(0, -top); y < h && y + top < rows; ++y) {
    const int64_t x0 = std::max<int64_t>(0, -left), x1 = std::min<int64_t>(w, cols - left);
    if (x1 > x0) std::copy(plane + y * w + x0, plane + y * w + x1, buffer.data() + (y + top) * cols + x0 + left);
  }
}

// The vector helpers are always inlined: the ABI of a 32-byte vector return (which GCC warns about in the
// baseline variant) never applies.
#pragma GCC diagnostic ignored "-Wpsabi"

// 32-byte vectors of GCC's vector extension (one AVX2 register; two SSE2 registers in the baseline variant):
// written out because GCC, left to itself, keeps a block of accumulators in scalar registers.
typedef float float8 __attribute__((vector_size(32)));
typedef double double4 __attribute__((vector_size(32)));
template <typename T>
struct Vec;
template <>
struct Vec<float> {
  using type = float8;
};
template <>
struct Vec<double> {
  using type = double4;
};

template <typename V, typename T>
VQCNIR_INLINE V load(const T* p) {
  V v;
  std::memcpy(&v, p, sizeof(V));
  return v;
}

// out[r, c] = bias + sum over taps of w[ky, kx] * src[r + ky * dh, c + kx * dw] for r < rows, c < cols; src
// (row stride ld) is readable up to column round_up(cols, B) - 1 + (kw - 1) * dw.
template <typename T, int B>
VQCNIR_INLINE void correlate_body(const T* src, int64_t ld, const T* w, const Plane& g, T bias, T* out, int64_t rows,
                                  int64_t cols) {
  using V = typename Vec<T>::type;
  constexpr int L = sizeof(V) / sizeof(T), N = B / L;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c0 = 0; c0 < cols; c0 += B) {
      V acc[N];
      for (int j = 0; j < N; ++j) acc[j] = V{} + bias;
      for (int64_t ky = 0; ky < g.kh; ++ky) {
        const T* row = src + (r + ky * g.dh) * ld + c0;
        for (int64_t kx = 0; kx < g.kw; ++kx) {
          const V weight = V{} + w[ky * g.kw + kx];
          const T* in = row + kx * g.dw;
          for (int j = 0; j < N; ++j) acc[j] += weight * load<V>(in + j * L);
        }
      }
      const int64_t n = std::min<int64_t>(B, cols - c0);
      if (n == B) {
        std::memcpy(out + r * cols + c0, acc, sizeof(acc));
      } else {
        T tail[B];
        std::memcpy(tail, acc, sizeof(acc));
        std::copy(tail, tail + n, out + r * cols + c0);
      }
    }
  }
}

// gw[tap] += sum over r < rows, c < ld_g of gout[r, c] * src[r + ky * dh, c + kx * dw]; gout (row stride ld_g,
// a multiple of B) is zero past its last column.
template <typename T, int B>
VQCNIR_INLINE void weight_grad_body(const T* gout, int64_t ld_g, const T* src, int64_t ld, const Plane& g,
                                    int64_t rows, double* gw) {
  using V = typename Vec<T>::type;
  constexpr int L = sizeof(V) / sizeof(T), N = B / L;
  for (int64_t ky = 0; ky < g.kh; ++ky) {
    for (int64_t kx = 0; kx < g.kw; ++kx) {
      V acc[N] = {};
      for (int64_t r = 0; r < rows; ++r) {
        const T* in = src + (r + ky * g.dh) * ld + kx * g.dw;
        const T* gr = gout + r * ld_g;
        for (int64_t c0 = 0; c0 < ld_g; c0 += B) {
          for (int j = 0; j < N; ++j) acc[j] += load<V>(gr + c0 + j * L) * load<V>(in + c0 + j * L);
        }
      }
      T lanes[B];
      std::memcpy(lanes, acc, sizeof(acc));
      double total = 0;  // the lanes in a fixed order
      for (int i = 0; i < B; ++i) total += lanes[i];
      gw[ky * g.kw + kx] += total;
    }
  }
}

// Per-thread buffers of the plane loops.
template <typename T>
struct Buffers {
  std::vector<T> input, grad_out, grad_out_wide, flipped;
};

// One (image, channel) plane of the forward: out [Ho, Wo].
template <typename T, int B>
VQCNIR_INLINE void forward_plane_body(const T* in, const T* w, T bias, T* out, const Plane& g, Buffers<T>& buf) {
  const int64_t ld = round_up(g.Wo, B) + (g.kw - 1) * g.dw;
  place(in, g.H, g.W, g.ph, g.pw, buf.input, g.Ho + (g.kh - 1) * g.dh, ld);
  correlate_body<T, B>(buf.input.data(), ld, w, g, bias, out, g.Ho, g.Wo);
}

// One plane of the backward: gin [H, W] = the transposed convolution of gout [Ho, Wo] (the correlation of gout,
// placed at (kh - 1) dh - ph, (kw - 1) dw - pw, with the flipped filter); adds the plane's share of the weight
// and bias gradients to gw [kh * kw] and *gb, in double (a channel's sums run over every image).
template <typename T, int B>
VQCNIR_INLINE void backward_plane_body(const T* gout, const T* in, const T* w, T* gin, double* gw, double* gb,
                                       const Plane& g, Buffers<T>& buf) {
  const int64_t taps = g.kh * g.kw;
  buf.flipped.resize(taps);
  for (int64_t t = 0; t < taps; ++t) buf.flipped[t] = w[taps - 1 - t];
  const int64_t ld_gin = round_up(g.W, B) + (g.kw - 1) * g.dw;
  place(gout, g.Ho, g.Wo, (g.kh - 1) * g.dh - g.ph, (g.kw - 1) * g.dw - g.pw, buf.grad_out, g.H + (g.kh - 1) * g.dh,
        ld_gin);
  correlate_body<T, B>(buf.grad_out.data(), ld_gin, buf.flipped.data(), g, T(0), gin, g.H, g.W);
  // Weight gradient: gout zero-extended to whole blocks against the padded input.
  const int64_t ld_g = round_up(g.Wo, B), ld = ld_g + (g.kw - 1) * g.dw;
  place(gout, g.Ho, g.Wo, 0, 0, buf.grad_out_wide, g.Ho, ld_g);
  place(in, g.H, g.W, g.ph, g.pw, buf.input, g.Ho + (g.kh - 1) * g.dh, ld);
  weight_grad_body<T, B>(buf.grad_out_wide.data(), ld_g, buf.input.data(), ld, g, g.Ho, gw);
  double sum = 0;
  for (int64_t i = 0; i < g.Ho * g.Wo; ++i) sum += gout[i];
  *gb += sum;
}

template <typename T, int B>
void forward_plane(const T* in, const T* w, T bias, T* out, const Plane& g, Buffers<T>& buf) {
  forward_plane_body<T, B>(in, w, bias, out, g, buf);
}

template <typename T, int B>
void backward_plane(const T* gout, const T* in, const T* w, T* gin, double* gw, double* gb, const Plane& g,
                    Buffers<T>& buf) {
  backward_plane_body<T, B>(gout, in, w, gin, gw, gb, g, buf);
}

#ifdef VQCNIR_CPU_AVX2_VARIANT
template <typename T, int B>
__attribute__((target("avx2,fma"))) void forward_plane_avx2(const T* in, const T* w, T bias, T* out, const Plane& g,
                                                            Buffers<T>& buf) {
  forward_plane_body<T, B>(in, w, bias, out, g, buf);
}

template <typename T, int B>
__attribute__((target("avx2,fma"))) void backward_plane_avx2(const T* gout, const T* in, const T* w, T* gin,
                                                             double* gw, double* gb, const Plane& g,
                                                             Buffers<T>& buf) {
  backward_plane_body<T, B>(gout, in, w, gin, gw, gb, g, buf);
}
#endif

template <typename T>
using ForwardPlane = void (*)(const T*, const T*, T, T*, const Plane&, Buffers<T>&);
template <typename T>
using BackwardPlane = void (*)(const T*, const T*, const T*, T*, double*, double*, const Plane&, Buffers<T>&);

// The plane functions for a block width and the CPU's instruction set (vqcnir/cpu_isa.h).
template <typename T, int B>
std::pair<ForwardPlane<T>, BackwardPlane<T>> plane_functions_for() {
#ifdef VQCNIR_CPU_AVX2_VARIANT
  if (use_avx2_variant()) return {&forward_plane_avx2<T, B>, &backward_plane_avx2<T, B>};
#endif
  return {&forward_plane<T, B>, &backward_plane<T, B>};
}

template <typename T>
std::pair<ForwardPlane<T>, BackwardPlane<T>> plane_functions(int64_t block) {
  if (block == 8) return plane_functions_for<T, 8>();
  if (block == 16) return plane_functions_for<T, 16>();
  return plane_functions_for<T, 32>();
}

Plane check_and_plan(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                     at::IntArrayRef padding, at::IntArrayRef dilation) {
  check_dim(input, "input", 4);
  check_dim(weight, "weight", 4);
  const int64_t channels = input.size(1);
  VQCNIR_CHECK_ARG(weight.size(0) == channels && weight.size(1) == 1, "weight", "must have shape [", channels,
                   ", 1, kh, kw] (one filter per channel of 'input'), got ", weight.sizes());
  VQCNIR_CHECK_ARG(weight.size(2) >= 1 && weight.size(3) >= 1, "weight", "must have a kernel of at least 1 x 1, got ",
                   weight.sizes());
  if (bias) {
    VQCNIR_CHECK_ARG(bias->dim() == 1 && bias->size(0) == channels, "bias", "must have shape [", channels, "], got ",
                     bias->sizes());
    check_same_device(input, "input", *bias, "bias");
  }
  check_same_device(input, "input", weight, "weight");
  VQCNIR_CHECK_ARG(padding.size() == 2 && padding[0] >= 0 && padding[1] >= 0, "padding",
                   "must be two integers >= 0, got ", padding);
  VQCNIR_CHECK_ARG(dilation.size() == 2 && dilation[0] >= 1 && dilation[1] >= 1, "dilation",
                   "must be two integers >= 1, got ", dilation);
  Plane g{input.size(2), input.size(3), 0, 0, weight.size(2), weight.size(3), padding[0], padding[1], dilation[0],
          dilation[1]};
  g.Ho = g.H + 2 * g.ph - g.dh * (g.kh - 1);
  g.Wo = g.W + 2 * g.pw - g.dw * (g.kw - 1);
  VQCNIR_CHECK_ARG(g.Ho >= 1 && g.Wo >= 1, "input", "of ", g.H, " x ", g.W, " is smaller than the dilated kernel (",
                   g.dh * (g.kh - 1) + 1, " x ", g.dw * (g.kw - 1) + 1, ") after padding");
  return g;
}

at::Tensor depthwise_conv2d_fwd_cpu(const at::Tensor& input, const at::Tensor& weight,
                                    const std::optional<at::Tensor>& bias, at::IntArrayRef padding,
                                    at::IntArrayRef dilation) {
  const Plane g = check_and_plan(input, weight, bias, padding, dilation);
  const int64_t batch = input.size(0), channels = input.size(1);
  const auto compute = compute_dtype(input.scalar_type());
  const at::Tensor x = input.to(compute).contiguous(), w = weight.to(compute).contiguous();
  const at::Tensor b = bias ? bias->to(compute).contiguous() : at::zeros({channels}, x.options());
  at::Tensor out = at::empty({batch, channels, g.Ho, g.Wo}, x.options());
  AT_DISPATCH_FLOATING_TYPES(compute, "depthwise_conv2d_fwd_cpu", [&] {
    const auto plane = plane_functions<scalar_t>(block_for(g.Wo)).first;
    const scalar_t *xp = x.const_data_ptr<scalar_t>(), *wp = w.const_data_ptr<scalar_t>();
    const scalar_t* bp = b.const_data_ptr<scalar_t>();
    scalar_t* op = out.mutable_data_ptr<scalar_t>();
    vqcnir::parallel_for(0, batch * channels, 1, [&](int64_t begin, int64_t end) {
      Buffers<scalar_t> buffers;
      for (int64_t p = begin; p < end; ++p) {
        const int64_t c = p % channels;
        plane(xp + p * g.H * g.W, wp + c * g.kh * g.kw, bp[c], op + p * g.Ho * g.Wo, g, buffers);
      }
    });
  });
  return out.to(input.scalar_type());
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> depthwise_conv2d_bwd_cpu(const at::Tensor& grad_out,
                                                                       const at::Tensor& input,
                                                                       const at::Tensor& weight,
                                                                       const std::optional<at::Tensor>& bias,
                                                                       at::IntArrayRef padding,
                                                                       at::IntArrayRef dilation) {
  const Plane g = check_and_plan(input, weight, bias, padding, dilation);
  const int64_t batch = input.size(0), channels = input.size(1), taps = g.kh * g.kw;
  VQCNIR_CHECK_ARG(grad_out.sizes() == at::IntArrayRef({batch, channels, g.Ho, g.Wo}), "grad_out", "must have shape ",
                   at::IntArrayRef({batch, channels, g.Ho, g.Wo}), ", got ", grad_out.sizes());
  check_same_device(input, "input", grad_out, "grad_out");
  const auto compute = compute_dtype(input.scalar_type());
  const at::Tensor x = input.to(compute).contiguous(), w = weight.to(compute).contiguous();
  const at::Tensor gy = grad_out.to(compute).contiguous();
  at::Tensor grad_input = at::empty_like(x);
  std::vector<double> gw(channels * taps, 0.0), gb(channels, 0.0);
  AT_DISPATCH_FLOATING_TYPES(compute, "depthwise_conv2d_bwd_cpu", [&] {
    // One block width for both passes: the input gradient's rows (W wide) and the output's (Wo wide).
    const auto plane = plane_functions<scalar_t>(block_for(std::max(g.W, g.Wo))).second;
    const scalar_t *xp = x.const_data_ptr<scalar_t>(), *wp = w.const_data_ptr<scalar_t>();
    const scalar_t* gp = gy.const_data_ptr<scalar_t>();
    scalar_t* gip = grad_input.mutable_data_ptr<scalar_t>();
    vqcnir::parallel_for(0, channels, 1, [&](int64_t begin, int64_t end) {
      Buffers<scalar_t> buffers;
      for (int64_t c = begin; c < end; ++c) {
        for (int64_t n = 0; n < batch; ++n) {  // images in order: a fixed summation order for gw and gb
          const int64_t p = n * channels + c;
          plane(gp + p * g.Ho * g.Wo, xp + p * g.H * g.W, wp + c * taps, gip + p * g.H * g.W, gw.data() + c * taps,
                gb.data() + c, g, buffers);
        }
      }
    });
  });
  // Copies out of the local sums (copy = true: a float64 weight would otherwise alias the vector).
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  at::Tensor grad_weight =
      at::from_blob(gw.data(), {channels, 1, g.kh, g.kw}, f64).to(weight.scalar_type(), false, /*copy=*/true);
  at::Tensor grad_bias =
      at::from_blob(gb.data(), {channels}, f64).to(bias ? bias->scalar_type() : weight.scalar_type(), false, true);
  return {grad_input.to(input.scalar_type()), grad_weight, grad_bias};
}

}  // namespace

TORCH_LIBRARY_IMPL(vqcnir_C, CPU, m) {
  m.impl("depthwise_conv2d_fwd", &depthwise_conv2d_fwd_cpu);
  m.impl("depthwise_conv2d_bwd", &depthwise_conv2d_bwd_cpu);
}

}  // namespace vqcnir
