// Fused IMACConv curve mapping on CPU: forward and backward, parallel with at::parallel_for.
//
// Work unit: one (batch, split) and a block of kPixelBlock pixels; the unit walks the split's Cs
// channels. Inputs are made contiguous ([B, S, Cs, P] and [B, S, n, P], P = H * W), converted to
// float32 (float64 for float64) in a per-task workspace, and every inner loop runs over the pixel
// block with unit stride and no branches, so the compiler vectorises it.
//
// Backward: the unit keeps the states y_0 .. y_{n-1} of one channel in the workspace (n x kPixelBlock), walks the curve back, and adds that channel's share of da in channel order: the reduction over
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

#include "vqcnir/parallel.h"
#include "vqcnir/checks.h"

namespace vqcnir {
namespace {

// Pixels per unit: each channel row is read in 4 KiB (float32) runs, long enough for the hardware
// prefetcher and one TLB entry per run; the workspace ((3n + 2) rows of 4 KiB) stays in L1/L2.
constexpr int64_t kPixelBlock = 1024;
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

// Workspace of one unit, in acc_t elements: n curve rows, n state rows, n da rows, x and g (kPixelBlock each).
inline int64_t workspace_elems(int64_t n) { return (3 * n + 2) * kPixelBlock; }

// Forward for a compile-time n: one pass per channel row, the curve iterated in registers.
template <int N, typename scalar_t>
VQCNIR_INLINE void forward_rows_fixed(const scalar_t* x, const scalar_t* a, scalar_t* y, const Shape& sh, int64_t p0,
                                      int64_t len, at::opmath_type<scalar_t>* work) {
  using acc_t = at::opmath_type<scalar_t>;
  acc_t* curves = work;  // [N][kPixelBlock], converted once, reused by every channel
  for (int k = 0; k < N; ++k) load_block(a + k * sh.P + p0, curves + k * kPixelBlock, len);
  for (int64_t c = 0; c < sh.Cs; ++c) {
    const scalar_t* xc = x + c * sh.P + p0;
    scalar_t* yc = y + c * sh.P + p0;
    for (int64_t i = 0; i < len; ++i) {
      acc_t v = clamp_unit(static_cast<acc_t>(xc[i]));
      for (int k = 0; k < N; ++k) v += curves[k * kPixelBlock + i] * v * (acc_t(1) - v);
      yc[i] = static_cast<scalar_t>(v);
    }
  }
}

template <typename scalar_t>
VQCNIR_INLINE void forward_unit(const scalar_t* x, const scalar_t* a, scalar_t* y, const Shape& sh, int64_t p0,
                                int64_t len, at::opmath_type<scalar_t>* work) {
  using acc_t = at::opmath_type<scalar_t>;
  switch (sh.n) {  // the common small n (VQCNIR uses 3): fully unrolled single pass
    case 1: return forward_rows_fixed<1>(x, a, y, sh, p0, len, work);
    case 2: return forward_rows_fixed<2>(x, a, y, sh, p0, len, work);
    case 3: return forward_rows_fixed<3>(x, a, y, sh, p0, len, work);
    case 4: return forward_rows_fixed<4>(x, a, y, sh, p0, len, work);
    default: break;
  }
  acc_t* curves = work;  // [n][kPixelBlock]
  acc_t* state = work + sh.n * kPixelBlock;
  for (int64_t k = 0; k < sh.n; ++k) load_block(a + k * sh.P + p0, curves + k * kPixelBlock, len);
  for (int64_t c = 0; c < sh.Cs; ++c) {
    const scalar_t* xc = x + c * sh.P + p0;
    for (int64_t i = 0; i < len; ++i) state[i] = clamp_unit(static_cast<acc_t>(xc[i]));
    for (int64_t k = 0; k < sh.n; ++k) {
      const acc_t* ak = curves + k * kPixelBlock;
      for (int64_t i = 0; i < len; ++i) state[i] += ak[i] * state[i] * (acc_t(1) - state[i]);
    }
    store_block(state, y + c * sh.P + p0, len);
  }
}

// Backward for a compile-time n: one pass per channel row, the states y_0 .. y_{N-1} in registers.
template <int N, typename scalar_t>
VQCNIR_INLINE void backward_rows_fixed(const scalar_t* dy, const scalar_t* x, const scalar_t* a, scalar_t* dx,
                                       scalar_t* da, const Shape& sh, int64_t p0, int64_t len,
                                       at::opmath_type<scalar_t>* work) {
  using acc_t = at::opmath_type<scalar_t>;
  acc_t* curves = work;                   // [N][kPixelBlock]
  acc_t* da_acc = work + N * kPixelBlock;  // [N][kPixelBlock]
  for (int k = 0; k < N; ++k) {
    load_block(a + k * sh.P + p0, curves + k * kPixelBlock, len);
    std::fill(da_acc + k * kPixelBlock, da_acc + k * kPixelBlock + len, acc_t(0));
  }
  for (int64_t c = 0; c < sh.Cs; ++c) {
    const scalar_t* xc = x + c * sh.P + p0;
    const scalar_t* gc = dy + c * sh.P + p0;
    scalar_t* dxc = dx + c * sh.P + p0;
    for (int64_t i = 0; i < len; ++i) {
      const acc_t xv = static_cast<acc_t>(xc[i]);
      acc_t ys[N];
      ys[0] = clamp_unit(xv);
      for (int k = 1; k < N; ++k) ys[k] = ys[k - 1] + curves[(k - 1) * kPixelBlock + i] * ys[k - 1] * (acc_t(1) - ys[k - 1]);
      acc_t g = static_cast<acc_t>(gc[i]);
      for (int k = N - 1; k >= 0; --k) {
        da_acc[k * kPixelBlock + i] += g * ys[k] * (acc_t(1) - ys[k]);
        g *= acc_t(1) + curves[k * kPixelBlock + i] * (acc_t(1) - acc_t(2) * ys[k]);
      }
      dxc[i] = static_cast<scalar_t>(xv > acc_t(0) && xv <= acc_t(1) ? g : acc_t(0));
    }
  }
  for (int k = 0; k < N; ++k) store_block(da_acc + k * kPixelBlock, da + k * sh.P + p0, len);
}

template <typename scalar_t>
VQCNIR_INLINE void backward_unit(const scalar_t* dy, const scalar_t* x, const scalar_t* a, scalar_t* dx, scalar_t* da,
                                 const Shape& sh, int64_t p0, int64_t len, at::opmath_type<scalar_t>* work) {
  using acc_t = at::opmath_type<scalar_t>;
  switch (sh.n) {  // the common small n (VQCNIR uses 3): fully unrolled single pass
    case 1: return backward_rows_fixed<1>(dy, x, a, dx, da, sh, p0, len, work);
    case 2: return backward_rows_fixed<2>(dy, x, a, dx, da, sh, p0, len, work);
    case 3: return backward_rows_fixed<3>(dy, x, a, dx, da, sh, p0, len, work);
    case 4: return backward_rows_fixed<4>(dy, x, a, dx, da, sh, p0, len, work);
    default: break;
  }
  const int64_t n = sh.n;
  acc_t* curves = work;                        // [n][kPixelBlock]
  acc_t* states = work + n * kPixelBlock;      // [n][kPixelBlock]: y_0 .. y_{n-1} of one channel
  acc_t* da_acc = work + 2 * n * kPixelBlock;  // [n][kPixelBlock]
  acc_t* xin = work + 3 * n * kPixelBlock;
  acc_t* g = xin + kPixelBlock;
  for (int64_t k = 0; k < n; ++k) {
    load_block(a + k * sh.P + p0, curves + k * kPixelBlock, len);
    std::fill(da_acc + k * kPixelBlock, da_acc + k * kPixelBlock + len, acc_t(0));
  }
  for (int64_t c = 0; c < sh.Cs; ++c) {
    load_block(x + c * sh.P + p0, xin, len);
    load_block(dy + c * sh.P + p0, g, len);
    for (int64_t i = 0; i < len; ++i) states[i] = clamp_unit(xin[i]);
    for (int64_t k = 1; k < n; ++k) {
      const acc_t* prev = states + (k - 1) * kPixelBlock;
      const acc_t* ak = curves + (k - 1) * kPixelBlock;
      acc_t* cur = states + k * kPixelBlock;
      for (int64_t i = 0; i < len; ++i) cur[i] = prev[i] + ak[i] * prev[i] * (acc_t(1) - prev[i]);
    }
    for (int64_t k = n - 1; k >= 0; --k) {
      const acc_t* yk = states + k * kPixelBlock;
      const acc_t* ak = curves + k * kPixelBlock;
      acc_t* dak = da_acc + k * kPixelBlock;
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
  for (int64_t k = 0; k < n; ++k) store_block(da_acc + k * kPixelBlock, da + k * sh.P + p0, len);
}

// One non-template, multi-versioned entry point per dtype and direction (target_clones needs plain functions).
#define VQCNIR_CURVE_UNITS(T)                                                                                   \
  VQCNIR_CPU_CLONES void forward_unit_of(const T* x, const T* a, T* y, const Shape& sh, int64_t p0, int64_t len,   \
                                         at::opmath_type<T>* work) {                                             \
    forward_unit<T>(x, a, y, sh, p0, len, work);                                                                 \
  }                                                                                                              \
  VQCNIR_CPU_CLONES void backward_unit_of(const T* dy, const T* x, const T* a, T* dx, T* da, const Shape& sh,     \
                                          int64_t p0, int64_t len, at::opmath_type<T>* work) {                   \
    backward_unit<T>(dy, x, a, dx, da, sh, p0, len, work);                                                       \
  }
VQCNIR_CURVE_UNITS(float)
VQCNIR_CURVE_UNITS(double)
VQCNIR_CURVE_UNITS(c10::Half)
VQCNIR_CURVE_UNITS(c10::BFloat16)
#undef VQCNIR_CURVE_UNITS

// Runs body(bs, p0, len, work) for every unit (batch*split, pixel block), in parallel; each task owns a
// workspace of workspace_elems(n) acc_t elements.
template <typename acc_t, typename F>
void for_each_unit(int64_t n_bs, const Shape& sh, const F& body) {
  const int64_t units = n_bs * sh.units_per_split;
  // grain: at least ~256K elements per task, so small calls run on one thread instead of paying a wake-up
  const int64_t grain = std::max<int64_t>(1, 262144 / std::max<int64_t>(1, kPixelBlock * sh.Cs));
  vqcnir::parallel_for(0, units, grain, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> work(workspace_elems(sh.n));
    for (int64_t u = begin; u < end; ++u) {
      const int64_t bs = u / sh.units_per_split;
      const int64_t p0 = (u % sh.units_per_split) * kPixelBlock;
      body(bs, p0, std::min(kPixelBlock, sh.P - p0), work.data());
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
    using acc_t = at::opmath_type<scalar_t>;
    for_each_unit<acc_t>(n_bs, sh, [&](int64_t bs, int64_t p0, int64_t len, acc_t* work) {
      forward_unit_of(xp + bs * sh.Cs * sh.P, ap + bs * sh.n * sh.P, yp + bs * sh.Cs * sh.P, sh, p0, len, work);
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
    using acc_t = at::opmath_type<scalar_t>;
    for_each_unit<acc_t>(n_bs, sh, [&](int64_t bs, int64_t p0, int64_t len, acc_t* work) {
      const int64_t xo = bs * sh.Cs * sh.P, ao = bs * sh.n * sh.P;
      backward_unit_of(gp + xo, xp + xo, ap + ao, dxp + xo, dap + ao, sh, p0, len, work);
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
