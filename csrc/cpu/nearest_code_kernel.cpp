// Fused nearest-code lookup on CPU: blocked GEMM through the BLAS torch links, with a fused running argmin.
//
// Work is cut into blocks of rows of z whose size depends on D only (never on the thread count, so results
// do not depend on how many threads run). A thread centres a block into its own scratch, then walks the
// codebook in tiles: one single-threaded GEMM (at::mm_out into the thread's scratch tensor: the BLAS
// torch links, no allocation) gives the tile's dot products in a block x tile scratch that stays in L2,
// and a vectorisable epilogue turns them into clamped distances and folds them into a running
// (key, index) per row. Scratch is allocated once per thread and call: memory is O(N) beyond the inputs;
// the N x K distance matrix never exists.
//
// Contract: vqcnir_ops/quantize/reference.py (ties -> smallest index, NaN distance wins, dist clamped at 0
// with a NaN-preserving select). Exact duplicate codes are mapped to their first copy by `first_copies`.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "vqcnir/checks.h"
#include "vqcnir/dtypes.h"
#include "vqcnir/parallel.h"

namespace vqcnir {
namespace {

// Block sizes. Rows per block: about kBlockElements centred values (128 rows at D = 512), at least
// kMinRows and at most kMaxRows, so that small D still gives each GEMM call enough work to hide its
// dispatch; codes per tile: kCodeTile, the block x tile float scratch (<= 1 MiB) stays in L2.
constexpr int64_t kBlockElements = 1 << 16;
constexpr int64_t kMinRows = 128;
constexpr int64_t kMaxRows = 1024;
constexpr int64_t kCodeTile = 256;

int64_t rows_per_block(int64_t dim) {
  return std::min(kMaxRows, std::max(kMinRows, kBlockElements / std::max<int64_t>(dim, 1)));
}

// One row of a tile: key_j = clamp(zn + cn_j - 2 d_j) with NaN mapped to -1 (below every clamped distance),
// written over d; returns the smallest key. Branch-free, so the compiler vectorises it.
template <typename scalar_t>
scalar_t tile_row_keys(scalar_t zn, const scalar_t* cn, scalar_t* d, int64_t tile) {
  scalar_t smallest = std::numeric_limits<scalar_t>::infinity();
#pragma omp simd reduction(min : smallest)
  for (int64_t j = 0; j < tile; ++j) {
    scalar_t dist = zn + cn[j] - scalar_t(2) * d[j];
    dist = dist < scalar_t(0) ? scalar_t(0) : dist;  // NaN-preserving clamp
    const scalar_t key = dist == dist ? dist : scalar_t(-1);
    d[j] = key;
    smallest = key < smallest ? key : smallest;
  }
  return smallest;
}

// One block of rows: z [rows, dim] contiguous; centred [block, dim] and dots [block, tile] are the thread's
// scratch tensors; tiles[t] is the t-th tile of the centred codebook, transposed ([dim, tile]).
template <typename scalar_t>
void nearest_code_rows(const scalar_t* z, int64_t rows, int64_t dim, const scalar_t* mu,
                       const std::vector<at::Tensor>& tiles, const scalar_t* code_sqnorm, at::Tensor& centred_block,
                       at::Tensor& dots_block, int64_t* out_index, scalar_t* out_dist) {
  scalar_t* centred = centred_block.data_ptr<scalar_t>();
  const at::Tensor centred_rows = centred_block.narrow(0, 0, rows);
  std::vector<scalar_t> zn(rows), best(rows, std::numeric_limits<scalar_t>::infinity());
  for (int64_t i = 0; i < rows; ++i) {
    const scalar_t* src = z + i * dim;
    scalar_t* dst = centred + i * dim;
    scalar_t sq = 0;
    for (int64_t c = 0; c < dim; ++c) {
      dst[c] = src[c] - mu[c];
      sq += dst[c] * dst[c];
    }
    zn[i] = sq;
    out_index[i] = 0;
  }
  for (size_t t = 0; t < tiles.size(); ++t) {
    const int64_t k0 = static_cast<int64_t>(t) * kCodeTile, tile = tiles[t].size(1);
    at::Tensor dots_tile = dots_block.narrow(0, 0, rows).narrow(1, 0, tile);  // row stride: the full tile width
    at::mm_out(dots_tile, centred_rows, tiles[t]);
    scalar_t* dots = dots_tile.data_ptr<scalar_t>();
    const int64_t ld = dots_tile.stride(0);
    for (int64_t i = 0; i < rows; ++i) {
      scalar_t* d = dots + i * ld;
      const scalar_t smallest = tile_row_keys(zn[i], code_sqnorm + k0, d, tile);
      if (smallest < best[i]) {  // strict: the earlier tile keeps a tie
        int64_t j = 0;
        while (d[j] != smallest) ++j;  // the first code of the tile with that key
        best[i] = smallest;
        out_index[i] = k0 + j;
      }
    }
  }
  for (int64_t i = 0; i < rows; ++i) {
    out_dist[i] = best[i] < scalar_t(0) ? std::numeric_limits<scalar_t>::quiet_NaN() : best[i];
  }
}

std::tuple<at::Tensor, at::Tensor> nearest_code_cpu(const at::Tensor& z, const at::Tensor& mu, const at::Tensor& codes,
                                                    const at::Tensor& code_sqnorm) {
  check_dim(z, "z", 2);
  check_dim(mu, "mu", 1);
  check_dim(codes, "codes", 2);
  check_dim(code_sqnorm, "code_sqnorm", 1);
  VQCNIR_CHECK_ARG(at::isFloatingType(z.scalar_type()), "z", "must be floating point, got ", z.scalar_type());
  const auto compute = compute_dtype(z.scalar_type());
  VQCNIR_CHECK_ARG(codes.scalar_type() == compute, "codes", "must have the compute dtype of 'z' (", compute, "), got ",
                   codes.scalar_type());
  VQCNIR_CHECK_ARG(mu.scalar_type() == compute && code_sqnorm.scalar_type() == compute, "mu",
                   "and 'code_sqnorm' must have the dtype of 'codes' (", compute, ")");
  VQCNIR_CHECK_ARG(codes.is_contiguous() && mu.is_contiguous() && code_sqnorm.is_contiguous(), "codes",
                   "'mu' and 'code_sqnorm' must be contiguous");
  const int64_t n_rows = z.size(0), dim = z.size(1), n_codes = codes.size(0);
  VQCNIR_CHECK_ARG(n_codes >= 1, "codes", "must hold at least one code");
  VQCNIR_CHECK_ARG(codes.size(1) == dim && mu.size(0) == dim, "codes", "and 'mu' must have dim ", dim,
                   " to match 'z', got ", codes.sizes(), " and ", mu.sizes());
  VQCNIR_CHECK_ARG(code_sqnorm.size(0) == n_codes, "code_sqnorm", "must have ", n_codes, " entries, got ",
                   code_sqnorm.size(0));
  for (const auto* t : {&mu, &codes, &code_sqnorm}) check_same_device(z, "z", *t, "codes");

  at::Tensor index = at::empty({n_rows}, z.options().dtype(at::kLong));
  at::Tensor dist = at::empty({n_rows}, z.options().dtype(compute));
  if (n_rows == 0) return {index, dist};
  // Rows in the compute dtype, contiguous: a no-op for contiguous float32/float64 z, else one O(N D) copy.
  const at::Tensor rows = z.to(compute).contiguous();
  const int64_t block = rows_per_block(dim), n_blocks = (n_rows + block - 1) / block;
  const int64_t tile_cols = std::min(kCodeTile, n_codes);
  std::vector<at::Tensor> tiles;  // transposed views of the codebook tiles, made once per call
  for (int64_t k0 = 0; k0 < n_codes; k0 += kCodeTile) {
    tiles.push_back(codes.narrow(0, k0, std::min(kCodeTile, n_codes - k0)).t());
  }
  AT_DISPATCH_FLOATING_TYPES(compute, "nearest_code_cpu", [&] {
    const scalar_t* z_data = rows.data_ptr<scalar_t>();
    const scalar_t* mu_data = mu.data_ptr<scalar_t>();
    const scalar_t* sqnorm = code_sqnorm.data_ptr<scalar_t>();
    int64_t* index_data = index.data_ptr<int64_t>();
    scalar_t* dist_data = dist.data_ptr<scalar_t>();
    vqcnir::parallel_for(0, n_blocks, 1, [&](int64_t begin, int64_t end) {
      const at::NoGradGuard no_grad;  // a kernel: the GEMMs into the scratch record nothing
      at::Tensor centred = at::empty({block, dim}, codes.options());  // this thread's scratch
      at::Tensor dots = at::empty({block, tile_cols}, codes.options());
      for (int64_t b = begin; b < end; ++b) {
        const int64_t r0 = b * block, count = std::min(block, n_rows - r0);
        nearest_code_rows<scalar_t>(z_data + r0 * dim, count, dim, mu_data, tiles, sqnorm, centred, dots,
                                    index_data + r0, dist_data + r0);
      }
    });
  });
  return {index, dist};
}

// [K] int64: for each code, the index of its first bitwise-equal copy; an empty tensor when all codes
// differ (vqcnir_ops/quantize/reference.py first_duplicates, by hashing rows instead of sorting them).
at::Tensor first_copies_cpu(const at::Tensor& codebook) {
  check_dim(codebook, "codebook", 2);
  VQCNIR_CHECK_ARG(at::isFloatingType(codebook.scalar_type()), "codebook", "must be floating point, got ",
                   codebook.scalar_type());
  const at::Tensor book = codebook.contiguous();
  const int64_t n_codes = book.size(0);
  const size_t row_bytes = static_cast<size_t>(book.size(1)) * book.element_size();
  const char* data = static_cast<const char*>(book.data_ptr());
  std::unordered_map<std::string_view, int64_t> first;
  first.reserve(static_cast<size_t>(n_codes) * 2);
  at::Tensor out = at::empty({n_codes}, book.options().dtype(at::kLong));
  int64_t* out_data = out.data_ptr<int64_t>();
  bool any = false;
  for (int64_t k = 0; k < n_codes; ++k) {
    const auto [it, inserted] = first.emplace(std::string_view(data + k * row_bytes, row_bytes), k);
    out_data[k] = it->second;
    any = any || !inserted;
  }
  return any ? out : at::empty({0}, out.options());
}

}  // namespace

TORCH_LIBRARY_IMPL(vqcnir_C, CPU, m) {
  m.impl("nearest_code", &nearest_code_cpu);
  m.impl("first_copies", &first_copies_cpu);
}

}  // namespace vqcnir
