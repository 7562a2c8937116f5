// Phase kernels of the bi-directional channel attention on CPU (vqcnir_ops/attention/staged.py).
//
// Tensors are [B, heads, C, N] with any strides. Work is cut into fixed tasks of (batch*head, column
// block of kColumns): the blocks do not depend on the thread count, so results do not either.
//
// - channel_gram: per task, x @ y^T and the squared row norms of its column block, in slices of kSlice
//   columns upcast to the compute dtype (one GEMM per slice, single-threaded inside the parallel region;
//   the norms by a plain loop over the slice the GEMM just read, still in cache). The per-block partials
//   are then added in block order: a fixed order, no atomics.
// Tensor ops inside the parallel region run single-threaded, under a NoGradGuard (this is a kernel).
// - channel_mix: per task, w @ z + a * x for its column block (kMixSlice columns), written in z's dtype; in
//   the compute dtype the GEMM accumulates straight into the output (a * x written first, then a GEMM with
//   beta 1).
// In the compute dtype with unit-stride rows (the common case: float32 or float64 activations) the products
// go to the BLAS on raw pointers (vqcnir/cpu_blas.h): at the deepest decoder level the per-block views and
// dispatches of the ATen path cost as much as ~5% of the op. Other calls keep the ATen path.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <optional>
#include <vector>

#include "vqcnir/channel_attention_phases.h"
#include "vqcnir/checks.h"
#include "vqcnir/cpu_blas.h"
#include "vqcnir/cpu_isa.h"
#include "vqcnir/dtypes.h"
#include "vqcnir/parallel.h"

namespace vqcnir {
namespace {

constexpr int64_t kColumns = 16384;  // columns per task: enough GEMM work per task, few partials
constexpr int64_t kSlice = 2048;     // columns upcast at a time: a C x kSlice float block stays in L2
// Columns per channel_mix task: its z block and output block (2 x 64 x 512 floats at 64 channels a head) stay
// in L2 between the residual write and the GEMM; 2048 columns were ~10% slower at 256ch@64x64 (N = 4096).
constexpr int64_t kMixSlice = 512;

void check_bhcn(const at::Tensor& t, const char* name) {
  check_dim(t, name, 4);
  VQCNIR_CHECK_ARG(at::isFloatingType(t.scalar_type()), name, "must be floating point, got ", t.scalar_type());
}

void check_like(const at::Tensor& ref, const char* ref_name, const at::Tensor& t, const char* name) {
  VQCNIR_CHECK_ARG(t.sizes() == ref.sizes(), name, "must have the shape of '", ref_name, "' ", ref.sizes(), ", got ",
                   t.sizes());
  VQCNIR_CHECK_ARG(t.scalar_type() == ref.scalar_type(), name, "must have the dtype of '", ref_name, "' (",
                   ref.scalar_type(), "), got ", t.scalar_type());
  check_same_device(ref, ref_name, t, name);
}

// The sum of squares of row[0 .. len); inlined into a baseline and an AVX2 + FMA wrapper (vqcnir/cpu_isa.h
// chooses), each vectorised for its target. kLanes partial sums: one vector accumulator would make every
// add wait for the previous one (latency-bound: at N = 1024 the norms took as long as a sixth of the gram's
// GEMM); 32 lanes are 4 independent AVX2 chains in float (8 in double).
constexpr int64_t kLanes = 32;

template <typename scalar_t>
inline __attribute__((always_inline)) scalar_t sum_of_squares_body(const scalar_t* row, int64_t len) {
  scalar_t lanes[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= len; j += kLanes) {
#pragma omp simd
    for (int64_t k = 0; k < kLanes; ++k) lanes[k] += row[j + k] * row[j + k];
  }
  scalar_t sum = 0;
  for (; j < len; ++j) sum += row[j] * row[j];
  for (int64_t k = 0; k < kLanes; ++k) sum += lanes[k];
  return sum;
}

template <typename scalar_t>
scalar_t sum_of_squares(const scalar_t* row, int64_t len) {
  return sum_of_squares_body(row, len);
}

#ifdef VQCNIR_CPU_AVX2_VARIANT
template <typename scalar_t>
__attribute__((target("avx2,fma"))) scalar_t sum_of_squares_avx2(const scalar_t* row, int64_t len) {
  return sum_of_squares_body(row, len);
}
#endif

// Adds the squared norm of each of `rows` rows of len values (row stride ld) to out [rows].
template <typename scalar_t>
void add_row_sqnorms(const scalar_t* data, int64_t rows, int64_t len, int64_t ld, scalar_t* out) {
  auto sum = &sum_of_squares<scalar_t>;
#ifdef VQCNIR_CPU_AVX2_VARIANT
  if (use_avx2_variant()) sum = &sum_of_squares_avx2<scalar_t>;
#endif
  for (int64_t c = 0; c < rows; ++c) out[c] += sum(data + c * ld, len);
}

template <typename scalar_t>
void add_row_sqnorms(const at::Tensor& m, scalar_t* out) {
  const at::Tensor rows = m.stride(1) == 1 ? m : m.contiguous();
  add_row_sqnorms(rows.data_ptr<scalar_t>(), rows.size(0), rows.size(1), rows.stride(0), out);
}

// One gram task on raw pointers: g [C, C] = x_i[:, c0:stop] @ y_i[:, c0:stop]^T in slices of kSlice columns,
// plus the squared row norms. x and y point at head i's rows (unit column stride, row strides ldx / ldy).
// Returns false, having written nothing, when the BLAS cannot take the call (the caller's ATen path runs).
template <typename scalar_t>
bool gram_task_blas(const scalar_t* x, int64_t ldx, const scalar_t* y, int64_t ldy, int64_t channels, int64_t c0,
                    int64_t stop, scalar_t* g, scalar_t* sqx, scalar_t* sqy) {
  for (int64_t start = c0; start < stop; start += kSlice) {
    const int64_t len = std::min(kSlice, stop - start);
    const scalar_t beta = start == c0 ? 0 : 1;  // the first slice writes the partial: no zero fill
    if (!row_gemm<scalar_t>(channels, channels, len, 1, {x + start, ldx, false}, {y + start, ldy, true}, beta, g,
                            channels)) {
      return false;  // only possible on the first slice: the sizes do not change between slices
    }
    if (sqx == nullptr) continue;
    add_row_sqnorms(x + start, channels, len, ldx, sqx);
    add_row_sqnorms(y + start, channels, len, ldy, sqy);
  }
  return true;
}

// One channel_mix task on raw pointers: out[:, :len] (row stride ldo) = w @ z[:, :len] + a * x[:, :len], the
// residual term written first (x may be null: none; a may be null: gain 1), then the GEMM with beta 1.
// Returns false when the BLAS cannot take the call; the caller's ATen path then writes the whole block again.
template <typename scalar_t>
bool mix_task_blas(RowMajor<scalar_t> w, const scalar_t* z, int64_t ldz, const scalar_t* x, int64_t ldx,
                   const scalar_t* a, int64_t channels, int64_t len, scalar_t* out, int64_t ldo) {
  if (!have_row_gemm<scalar_t>()) return false;
  if (x != nullptr) {
    for (int64_t r = 0; r < channels; ++r) {
      const scalar_t* src = x + r * ldx;
      scalar_t* dst = out + r * ldo;
      const scalar_t gain = a != nullptr ? a[r] : scalar_t(1);
      for (int64_t j = 0; j < len; ++j) dst[j] = gain * src[j];
    }
  }
  return row_gemm<scalar_t>(channels, len, channels, 1, w, {z, ldz, false}, x != nullptr ? 1 : 0, out, ldo);
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> channel_gram_cpu_impl(const at::Tensor& x, const at::Tensor& y,
                                                                     bool norms) {
  check_bhcn(x, "x");
  check_like(x, "x", y, "y");
  const int64_t batch = x.size(0), heads = x.size(1), channels = x.size(2), n = x.size(3);
  const int64_t bh = batch * heads, blocks = std::max<int64_t>(1, (n + kColumns - 1) / kColumns);
  const auto opts = x.options().dtype(compute_dtype(x.scalar_type()));
  const at::Tensor xs = blas_rows(x).reshape({bh, channels, n}), ys = blas_rows(y).reshape({bh, channels, n});
  // Each block's first slice writes its partial (mm_out, no zero fill), except with no columns at all.
  at::Tensor gram = n == 0 ? at::zeros({blocks, bh, channels, channels}, opts)
                           : at::empty({blocks, bh, channels, channels}, opts);
  const at::Tensor sqx = norms ? at::zeros({blocks, bh, channels}, opts) : at::Tensor();
  const at::Tensor sqy = norms ? at::zeros({blocks, bh, channels}, opts) : at::Tensor();
  const bool blas = x.scalar_type() == opts.dtype().toScalarType() && xs.stride(2) == 1 && ys.stride(2) == 1;
  vqcnir::parallel_for(0, bh * blocks, 1, [&](int64_t begin, int64_t end) {
    const at::NoGradGuard no_grad;  // grad mode is thread-local: worker threads would track these views
    for (int64_t task = begin; task < end; ++task) {
      const int64_t i = task / blocks, blk = task % blocks;
      const int64_t stop = std::min(n, (blk + 1) * kColumns);
      if (blas && n > 0) {
        bool done = false;
        AT_DISPATCH_FLOATING_TYPES(opts.dtype().toScalarType(), "channel_gram_blas", [&] {
          const int64_t partial = (blk * bh + i) * channels;
          done = gram_task_blas<scalar_t>(
              xs.const_data_ptr<scalar_t>() + i * xs.stride(0), xs.stride(1),
              ys.const_data_ptr<scalar_t>() + i * ys.stride(0), ys.stride(1), channels, blk * kColumns, stop,
              gram.mutable_data_ptr<scalar_t>() + partial * channels,
              norms ? sqx.mutable_data_ptr<scalar_t>() + partial : nullptr,
              norms ? sqy.mutable_data_ptr<scalar_t>() + partial : nullptr);
        });
        if (done) continue;
      }
      at::Tensor g = gram[blk][i];
      for (int64_t c0 = blk * kColumns; c0 < stop; c0 += kSlice) {
        const int64_t len = std::min(kSlice, stop - c0);
        const at::Tensor xf = xs[i].narrow(1, c0, len).to(opts.dtype());
        const at::Tensor yf = ys[i].narrow(1, c0, len).to(opts.dtype());
        c0 == blk * kColumns ? (void)at::mm_out(g, xf, yf.t()) : (void)g.addmm_(xf, yf.t());
        if (!norms) continue;
        AT_DISPATCH_FLOATING_TYPES(opts.dtype().toScalarType(), "channel_gram_norms", [&] {
          add_row_sqnorms<scalar_t>(xf, sqx[blk][i].data_ptr<scalar_t>());
          add_row_sqnorms<scalar_t>(yf, sqy[blk][i].data_ptr<scalar_t>());
        });
      }
    }
  });
  // Partials of later blocks are added in block order.
  const at::Tensor g = gram[0];
  for (int64_t blk = 1; blk < blocks; ++blk) g.add_(gram[blk]);
  if (!norms) return {g.reshape({batch, heads, channels, channels}), at::Tensor(), at::Tensor()};
  const at::Tensor nx = sqx[0], ny = sqy[0];
  for (int64_t blk = 1; blk < blocks; ++blk) {
    nx.add_(sqx[blk]);
    ny.add_(sqy[blk]);
  }
  return {g.reshape({batch, heads, channels, channels}), nx.reshape({batch, heads, channels}),
          ny.reshape({batch, heads, channels})};
}

at::Tensor channel_mix_cpu(const at::Tensor& w, const at::Tensor& z, const std::optional<at::Tensor>& x,
                           const std::optional<at::Tensor>& a) {
  check_bhcn(z, "z");
  check_dim(w, "w", 4);
  const int64_t batch = z.size(0), heads = z.size(1), channels = z.size(2), n = z.size(3);
  const auto compute = compute_dtype(z.scalar_type());
  VQCNIR_CHECK_ARG(w.sizes() == at::IntArrayRef({batch, heads, channels, channels}), "w", "must have shape ",
                   at::IntArrayRef({batch, heads, channels, channels}), ", got ", w.sizes());
  VQCNIR_CHECK_ARG(w.scalar_type() == compute, "w", "must have the compute dtype ", compute, ", got ",
                   w.scalar_type());
  check_same_device(z, "z", w, "w");
  if (x) check_like(z, "z", *x, "x");
  if (a) {
    VQCNIR_CHECK_ARG(x.has_value(), "a", "needs 'x'");
    VQCNIR_CHECK_ARG(a->sizes() == at::IntArrayRef({batch, heads, channels}) && a->scalar_type() == compute, "a",
                     "must be ", compute, " of shape ", at::IntArrayRef({batch, heads, channels}), ", got ",
                     a->scalar_type(), " ", a->sizes());
  }
  const int64_t bh = batch * heads, blocks = (n + kMixSlice - 1) / kMixSlice;
  at::Tensor out = at::empty({batch, heads, channels, n}, z.options());
  const at::Tensor ws = w.reshape({bh, channels, channels}), zs = blas_rows(z).reshape({bh, channels, n});
  const at::Tensor os = out.view({bh, channels, n});
  const at::Tensor xs = x ? blas_rows(*x).reshape({bh, channels, n}) : at::Tensor();
  const at::Tensor as = a ? a->reshape({bh, channels, 1}) : at::Tensor();
  // The BLAS path reads w row-major or transposed (the backward passes transposed maps as views).
  const bool w_rows = ws.stride(2) == 1, w_cols = ws.stride(1) == 1;
  const bool blas = z.scalar_type() == compute && zs.stride(2) == 1 && (w_rows || w_cols) &&
                    (!x || xs.stride(2) == 1);
  const at::Tensor gains = a ? a->contiguous() : at::Tensor();
  vqcnir::parallel_for(0, bh * blocks, 1, [&](int64_t begin, int64_t end) {
    const at::NoGradGuard no_grad;  // grad mode is thread-local: worker threads would track these views
    for (int64_t task = begin; task < end; ++task) {
      const int64_t i = task / blocks, c0 = (task % blocks) * kMixSlice, len = std::min(kMixSlice, n - c0);
      if (blas) {
        bool done = false;
        AT_DISPATCH_FLOATING_TYPES(compute, "channel_mix_blas", [&] {
          done = mix_task_blas<scalar_t>(
              {ws.const_data_ptr<scalar_t>() + i * ws.stride(0), w_rows ? ws.stride(1) : ws.stride(2), !w_rows},
              zs.const_data_ptr<scalar_t>() + i * zs.stride(0) + c0, zs.stride(1),
              x ? xs.const_data_ptr<scalar_t>() + i * xs.stride(0) + c0 : nullptr, x ? xs.stride(1) : 0,
              a ? gains.const_data_ptr<scalar_t>() + i * channels : nullptr, channels, len,
              out.mutable_data_ptr<scalar_t>() + i * channels * n + c0, n);
        });
        if (done) continue;
      }
      at::Tensor target = os[i].narrow(1, c0, len);
      if (z.scalar_type() == compute) {  // accumulate in place: no temporary, one pass over the output
        if (!x) {
          at::mm_out(target, ws[i], zs[i].narrow(1, c0, len));
          continue;
        }
        const at::Tensor xf = xs[i].narrow(1, c0, len);
        a ? at::mul_out(target, xf, as[i]) : target.copy_(xf);
        target.addmm_(ws[i], zs[i].narrow(1, c0, len));
        continue;
      }
      at::Tensor result = at::mm(ws[i], zs[i].narrow(1, c0, len).to(compute));
      if (x) {
        const at::Tensor xf = xs[i].narrow(1, c0, len).to(compute);
        a ? result.addcmul_(as[i], xf) : result.add_(xf);
      }
      target.copy_(result);
    }
  });
  return out;
}

namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor> channel_gram_cpu(const at::Tensor& x, const at::Tensor& y) {
  return channel_gram_cpu_impl(x, y, /*norms=*/true);
}

}  // namespace

TORCH_LIBRARY_IMPL(vqcnir_C, CPU, m) {
  m.impl("channel_gram", &channel_gram_cpu);
  m.impl("channel_mix", &channel_mix_cpu);
}

}  // namespace vqcnir
