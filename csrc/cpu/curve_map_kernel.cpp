// Fused IMACConv curve mapping on CPU: forward and backward, parallel with at::parallel_for.
//
// Work unit: one (batch, split) and a block of kPixelBlock pixels; the unit walks the split's Cs
// channels. Inputs are made contiguous ([B, S, Cs, P] and [B, S, n, P], P = H * W), converted to
// float32 (float64 for float64) in small per-unit buffers, and every inner loop runs over the pixel
// block with unit stride and no branches, so the compiler vectorises it.
//
// Backward: the unit keeps the states y_0 .. y_{n-1} of one channel in a buffer (n x kPixelBlock, in
// L1), walks the curve back, and adds that channel's share of da in channel order: the reduction over
// Cs happens inside the unit, in a fixed order, so results do not depend on the thread count.
// Units are fixed by the shape, not by the thread count. Contract: vqcnir_ops/curve/reference.py.
//
// The extension is compiled for baseline x86-64 (SSE2); on x86-64 with GCC or Clang the unit functions
// are also cloned for AVX2 and AVX-512 (target_clones), and the loader picks the best clone for the CPU.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "vqcnir/checks.h"

namespace vqcnir {
namespace {

constexpr int64_t kPixelBlock = 256;  // pixels per unit: n + 3 float buffers of 1 KiB stay in L1
constexpr int64_t kMaxCurves = 16;

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(_WIN32)
#define VQCNIR_CPU_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define VQCNIR_CPU_CLONES
#endif
#define VQCNIR_INLINE inline __attribute__((always_inline))

template <typename acc_t>
VQCNIR_INLINE acc_t clamp_unit(acc_t v) {
  // Comparisons are false for NaN, so NaN passes through.
  return v < acc_t(0) ? acc_t(0) : (v > acc_t(1) ? acc_t(1) : v);
}

template <typename scalar_t, typename acc_t>
VQCNIR_INLINE void load_block(const scalar_t* __restrict__ src, acc_t* __restrict__ dst, int64_t len) {
  for (int64_t i = 0; i < len; ++i) dst[i] = static_cast<acc_t>(src[i]);
}

template <typename scalar_t, typename acc_t>
VQCNIR_INLINE void store_block(const acc_t* __restrict__ src, scalar_t* __restrict__ dst, int64_t len) {
  for (int64_t i = 0; i < len; ++i) dst[i] = static_cast<scalar_t>(src[i]);
}

struct Shape {
  int64_t units_per_split, Cs, n, P;
};

Shape check_inputs(const at::Tensor& x, const at::Tensor& a) {
  check_dim(x, "x", 5);
  check_dim(a, "a", 5);
  check_same_device(x, "x", a, "a");
  VQCNIR_CHECK_ARG(at::isFloatingType(x.scalar_type()), "x", "must be floating point, got ", x.scalar_type());
  VQCNIR_CHECK_ARG(a.scalar_type() == x.scalar_type(), "a", "must have the dtype of 'x' (", x.scalar_type(),
                   "), got ", a.scalar_type());
  VQCNIR_CHECK_ARG(a.size(0) == x.size(0) && a.size(1) == x.size(1) && a.size(3) == x.size(3) &&
                       a.size(4) == x.size(4),
                   "a", "must have shape [B, S, n, H, W] matching 'x' ", x.sizes(), ", got ", a.sizes());
  const int64_t n = a.size(2);
  VQCNIR_CHECK_ARG(n >= 1 && n <= kMaxCurves, "a", "must hold 1 to ", kMaxCurves, " curve maps, got ", n);
  const int64_t P = x.size(3) * x.size(4);
  return {(P + kPixelBlock - 1) / kPixelBlock, x.size(2), n, P};
}

template <typename scalar_t>
VQCNIR_INLINE void forward_unit(const scalar_t* x, const scalar_t* a, scalar_t* y, const Shape& sh, int64_t p0, int64_t len) {
  using acc_t = at::opmath_type<scalar_t>;
  acc_t curves[kMaxCurves][kPixelBlock];
  acc_t state[kPixelBlock];
  for (int64_t k = 0; k < sh.n; ++k) load_block(a + k * sh.P + p0, curves[k], len);
  for (int64_t c = 0; c < sh.Cs; ++c) {
    const scalar_t* xc = x + c * sh.P + p0;
    for (int64_t i = 0; i < len; ++i) state[i] = clamp_unit(static_cast<acc_t>(xc[i]));
    for (int64_t k = 0; k < sh.n; ++k) {
      const acc_t* ak = curves[k];
      for (int64_t i = 0; i < len; ++i) state[i] += ak[i] * state[i] * (acc_t(1) - state[i]);
    }
    store_block(state, y + c * sh.P + p0, len);
  }
}

template <typename scalar_t>
VQCNIR_INLINE void backward_unit(const scalar_t* dy, const scalar_t* x, const scalar_t* a, scalar_t* dx, scalar_t* da,
                   const Shape& sh, int64_t p0, int64_t len) {
  using acc_t = at::opmath_type<scalar_t>;
  acc_t curves[kMaxCurves][kPixelBlock];
  acc_t da_acc[kMaxCurves][kPixelBlock];
  acc_t states[kMaxCurves][kPixelBlock];
  acc_t xin[kPixelBlock];
  acc_t g[kPixelBlock];
  for (int64_t k = 0; k < sh.n; ++k) {
    load_block(a + k * sh.P + p0, curves[k], len);
    std::fill(da_acc[k], da_acc[k] + len, acc_t(0));
  }
  for (int64_t c = 0; c < sh.Cs; ++c) {
    load_block(x + c * sh.P + p0, xin, len);
    load_block(dy + c * sh.P + p0, g, len);
    for (int64_t i = 0; i < len; ++i) states[0][i] = clamp_unit(xin[i]);
    for (int64_t k = 1; k < sh.n; ++k) {
      const acc_t* prev = states[k - 1];
      const acc_t* ak = curves[k - 1];
      acc_t* cur = states[k];
      for (int64_t i = 0; i < len; ++i) cur[i] = prev[i] + ak[i] * prev[i] * (acc_t(1) - prev[i]);
    }
    for (int64_t k = sh.n - 1; k >= 0; --k) {
      const acc_t* yk = states[k];
      const acc_t* ak = curves[k];
      acc_t* dak = da_acc[k];
      for (int64_t i = 0; i < len; ++i) {
        dak[i] += g[i] * yk[i] * (acc_t(1) - yk[i]);
        g[i] *= acc_t(1) + ak[i] * (acc_t(1) - acc_t(2) * yk[i]);
      }
    }
    scalar_t* dxc = dx + c * sh.P + p0;
    for (int64_t i = 0; i < len; ++i) {
      const bool inside = xin[i] > acc_t(0) && xin[i] <= acc_t(1);
      dxc[i] = static_cast<scalar_t>(inside ? g[i] : acc_t(0));
    }
  }
  for (int64_t k = 0; k < sh.n; ++k) store_block(da_acc[k], da + k * sh.P + p0, len);
}

// One non-template, multi-versioned entry point per dtype and direction (target_clones needs plain functions).
#define VQCNIR_CURVE_UNITS(T)                                                                                   \
  VQCNIR_CPU_CLONES void forward_unit_of(const T* x, const T* a, T* y, const Shape& sh, int64_t p0, int64_t len) { \
    forward_unit<T>(x, a, y, sh, p0, len);                                                                       \
  }                                                                                                              \
  VQCNIR_CPU_CLONES void backward_unit_of(const T* dy, const T* x, const T* a, T* dx, T* da, const Shape& sh,     \
                                          int64_t p0, int64_t len) {                                             \
    backward_unit<T>(dy, x, a, dx, da, sh, p0, len);                                                             \
  }
VQCNIR_CURVE_UNITS(float)
VQCNIR_CURVE_UNITS(double)
VQCNIR_CURVE_UNITS(c10::Half)
VQCNIR_CURVE_UNITS(c10::BFloat16)
#undef VQCNIR_CURVE_UNITS

// Runs body(bs, p0, len) for every unit (batch*split, pixel block), in parallel.
template <typename F>
void for_each_unit(int64_t n_bs, const Shape& sh, const F& body) {
  const int64_t units = n_bs * sh.units_per_split;
  // grain: enough units that each task moves a few hundred KiB
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, kPixelBlock * sh.Cs));
  at::parallel_for(0, units, grain, [&](int64_t begin, int64_t end) {
    for (int64_t u = begin; u < end; ++u) {
      const int64_t bs = u / sh.units_per_split;
      const int64_t p0 = (u % sh.units_per_split) * kPixelBlock;
      body(bs, p0, std::min(kPixelBlock, sh.P - p0));
    }
  });
}

at::Tensor curve_map_fwd_cpu(const at::Tensor& x_in, const at::Tensor& a_in) {
  const Shape sh = check_inputs(x_in, a_in);
  const at::Tensor x = x_in.contiguous(), a = a_in.contiguous();
  at::Tensor y = at::empty(x.sizes(), x.options());
  const int64_t n_bs = x.size(0) * x.size(1);
  if (y.numel() == 0) return y;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "curve_map_fwd_cpu", [&] {
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    const scalar_t* ap = a.const_data_ptr<scalar_t>();
    scalar_t* yp = y.data_ptr<scalar_t>();
    for_each_unit(n_bs, sh, [&](int64_t bs, int64_t p0, int64_t len) {
      forward_unit_of(xp + bs * sh.Cs * sh.P, ap + bs * sh.n * sh.P, yp + bs * sh.Cs * sh.P, sh, p0, len);
    });
  });
  return y;
}

std::tuple<at::Tensor, at::Tensor> curve_map_bwd_cpu(const at::Tensor& dy_in, const at::Tensor& x_in,
                                                     const at::Tensor& a_in) {
  const Shape sh = check_inputs(x_in, a_in);
  VQCNIR_CHECK_ARG(dy_in.sizes() == x_in.sizes(), "dy", "must have the shape of 'x' ", x_in.sizes(), ", got ",
                   dy_in.sizes());
  check_same_device(x_in, "x", dy_in, "dy");
  const at::Tensor x = x_in.contiguous(), a = a_in.contiguous();
  const at::Tensor dy = dy_in.to(x.scalar_type()).contiguous();
  at::Tensor dx = at::empty(x.sizes(), x.options());
  at::Tensor da = at::zeros(a.sizes(), a.options());
  const int64_t n_bs = x.size(0) * x.size(1);
  if (n_bs * sh.P == 0) return {dx, da};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "curve_map_bwd_cpu", [&] {
    const scalar_t* gp = dy.const_data_ptr<scalar_t>();
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    const scalar_t* ap = a.const_data_ptr<scalar_t>();
    scalar_t* dxp = dx.data_ptr<scalar_t>();
    scalar_t* dap = da.data_ptr<scalar_t>();
    for_each_unit(n_bs, sh, [&](int64_t bs, int64_t p0, int64_t len) {
      const int64_t xo = bs * sh.Cs * sh.P, ao = bs * sh.n * sh.P;
      backward_unit_of(gp + xo, xp + xo, ap + ao, dxp + xo, dap + ao, sh, p0, len);
    });
  });
  return {dx, da};
}

}  // namespace

TORCH_LIBRARY_IMPL(vqcnir_C, CPU, m) {
  m.impl("curve_map_fwd", &curve_map_fwd_cpu);
  m.impl("curve_map_bwd", &curve_map_bwd_cpu);
}

}  // namespace vqcnir
