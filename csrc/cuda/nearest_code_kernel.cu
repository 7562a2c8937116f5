// Fused nearest-code lookup on CUDA: implements vqcnir::launch_nearest_code (nearest_code_launch.h).
//
// Torch-free on purpose (CUDA headers only), so CMakeLists.txt can compile-check it with nvcc alone.
// The numerical contract lives in nearest_code_launch.h and vqcnir_ops/quantize/reference.py.
//
// Design, one thread block per tile of kRows = 64 query rows (gridDim.x = ceil(N / 64)):
//   1. each warp computes |z - mu|^2 for 8 of the 64 rows (float32, warp-shuffle sum) -> shared memory;
//   2. for each tile of kCodes = 64 codes, for each chunk of kChunk = 32 features:
//        the 256 threads stage z - mu [64 rows x 32] and codes [64 codes x 32] in shared memory (zero
//        outside the matrices), then each thread accumulates a 4 x 4 register micro-tile of dot products;
//      when the chunks are done, each thread turns its 16 dot products into clamped distances and
//      updates a running (dist, index) minimum for each of its 4 rows;
//   3. the 16 threads that share a row reduce their minima with 4 xor-shuffles, and one writes the row.
// Every comparison uses `precedes`, a strict total order on (dist, index) pairs, so the result is the
// unique minimum under the contract's rules whatever order the candidates meet in: deterministic.
// The N x K distance matrix is never stored.

#include <climits>
#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "vqcnir/nearest_code_launch.h"

namespace vqcnir {
namespace {

constexpr int kRows = 64;                  // query rows per block
constexpr int kCodes = 64;                 // codes per codebook tile
constexpr int kChunk = 32;                 // features per shared-memory chunk
constexpr int kThreadsX = 16;              // threads along the codes of a tile
constexpr int kThreadsY = 16;              // threads along the rows of a block
constexpr int kThreads = kThreadsX * kThreadsY;
constexpr int kMicroRows = kRows / kThreadsY;    // rows per thread (4)
constexpr int kMicroCodes = kCodes / kThreadsX;  // codes per thread and tile (4)
constexpr int kStride = kRows + 1;         // shared row length; +1 so the staging stores hit 32 banks
constexpr int kWarps = kThreads / 32;

static_assert(kRows == kCodes, "the staging loop loads one z row and one code per index r < kRows");
static_assert(kChunk == 32, "staging maps the 32 lanes of a warp to the 32 features of a chunk");
static_assert(kThreadsX == 16, "a row's 16 threads are one half-warp; the reduction shuffles xor 8, 4, 2, 1");
static_assert(kRows % kThreadsY == 0 && kCodes % kThreadsX == 0, "micro-tiles must cover the tiles");
static_assert((kRows * kChunk) % kThreads == 0, "every thread stages the same number of elements");

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }

// True when candidate (d, k) must replace the current best (best_d, best_k). A strict total order on
// pairs with distinct indices: every NaN precedes every number, NaNs among themselves by index (so the
// first NaN code wins, torch.argmin's rule), numbers by value and then by index (ties -> smallest).
__device__ __forceinline__ bool precedes(float d, int k, float best_d, int best_k) {
  const bool d_nan = isnan(d);
  const bool best_nan = isnan(best_d);
  if (d_nan || best_nan) return d_nan && (!best_nan || k < best_k);
  return d < best_d || (d == best_d && k < best_k);
}

// Launch contract: blockDim.x == kThreads, gridDim.x == ceil(n_rows / kRows), n_rows >= 1, dim >= 1,
// n_codes >= 1, and dim, n_codes small enough that `x + kChunk` / `x + kCodes` cannot overflow int.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    nearest_code_kernel(const T* __restrict__ z, int64_t n_rows, int dim, int64_t z_stride_n, int64_t z_stride_d,
                        const float* __restrict__ mu, const float* __restrict__ codes,
                        const float* __restrict__ code_sqnorm, int n_codes, int64_t* __restrict__ out_index,
                        float* __restrict__ out_dist) {
  // Stored transposed ([feature][row or code]) so that the compute loop reads, for one feature, the
  // 4 rows and the 4 codes of a thread's micro-tile from a single shared row.
  __shared__ float z_tile[kChunk][kStride];  // z_tile[f][r] = z[row0 + r, d0 + f] - mu[d0 + f], or 0
  __shared__ float c_tile[kChunk][kStride];  // c_tile[f][c] = codes[k0 + c, d0 + f], or 0
  __shared__ float z_sqnorm[kRows];          // z_sqnorm[r] = |z[row0 + r] - mu|^2

  const int tid = static_cast<int>(threadIdx.x);
  // Thread (ty, tx) owns block rows ty + kThreadsY * i (i < kMicroRows) and tile codes tx + kThreadsX * j
  // (j < kMicroCodes). Interleaving (not contiguous blocks of 4) makes the 16 tx-threads of a half-warp
  // read 16 consecutive floats of c_tile (no bank conflict) and the z_tile reads broadcasts.
  const int tx = tid % kThreadsX;
  const int ty = tid / kThreadsX;
  const int lane = tid % 32;
  const int warp = tid / 32;
  // First row of this block; int64 because N may exceed 2^31 and row * z_stride_n certainly may.
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * kRows;

  // 1. |z - mu|^2 per row: warp w sums rows w, w + kWarps, ...; lane l sums features l, l + 32, ...
  for (int r = warp; r < kRows; r += kWarps) {
    const int64_t row = row0 + r;
    float s = 0.0f;
    if (row < n_rows) {  // uniform across the warp, so the shuffles below see all 32 lanes
      const T* z_row = z + row * z_stride_n;
      for (int f = lane; f < dim; f += 32) {
        const float v = to_float(z_row[static_cast<int64_t>(f) * z_stride_d]) - mu[f];
        s += v * v;
      }
    }
    // Butterfly sum: a fixed pairing, so the result is reproducible; lane 0 holds the total.
    for (int offset = 16; offset > 0; offset /= 2) s += __shfl_xor_sync(0xffffffffu, s, offset);
    if (lane == 0) z_sqnorm[r] = s;
  }
  __syncthreads();  // z_sqnorm is read by other warps in step 2

  float row_sqnorm[kMicroRows];
  float best_dist[kMicroRows];
  int best_index[kMicroRows];
#pragma unroll
  for (int i = 0; i < kMicroRows; ++i) {
    row_sqnorm[i] = z_sqnorm[ty + kThreadsY * i];
    // Sentinel: any real candidate precedes (inf, INT_MAX) -- a number is < inf or == inf with a smaller
    // index, and a NaN precedes every number. Thread tx == 0 always sees code 0, so the reduced result
    // is always a real code.
    best_dist[i] = __int_as_float(0x7f800000);  // +inf
    best_index[i] = INT_MAX;
  }

  // 2. Walk the codebook tile by tile.
  for (int k0 = 0; k0 < n_codes; k0 += kCodes) {
    float acc[kMicroRows][kMicroCodes];
#pragma unroll
    for (int i = 0; i < kMicroRows; ++i) {
#pragma unroll
      for (int j = 0; j < kMicroCodes; ++j) acc[i][j] = 0.0f;
    }

    for (int d0 = 0; d0 < dim; d0 += kChunk) {
      // Stage element e = r * kChunk + f of both tiles: consecutive threads take consecutive features f
      // of the same row / code (coalesced for contiguous z and codes), and the transposed store
      // tile[f][r] lands in bank (f * 65 + r) % 32 = (f + r) % 32: distinct across the warp.
      // Outside the matrices (row >= N, code >= K, feature >= D) the tiles hold 0, so the padding adds
      // nothing to any dot product; out-of-range codes are also skipped in the update below.
      for (int e = tid; e < kRows * kChunk; e += kThreads) {
        const int r = e / kChunk;  // block row (for z) and tile code (for codes)
        const int f = e % kChunk;  // feature within the chunk
        const int d = d0 + f;      // feature index in [0, dim) when in range
        const int64_t row = row0 + r;
        const int k = k0 + r;
        float zv = 0.0f;
        float cv = 0.0f;
        if (d < dim) {
          if (row < n_rows) zv = to_float(z[row * z_stride_n + static_cast<int64_t>(d) * z_stride_d]) - mu[d];
          if (k < n_codes) cv = codes[static_cast<int64_t>(k) * dim + d];  // codes is contiguous [K, D]
        }
        z_tile[f][r] = zv;
        c_tile[f][r] = cv;
      }
      __syncthreads();  // tiles complete before anyone reads them

#pragma unroll 8
      for (int f = 0; f < kChunk; ++f) {
        float zr[kMicroRows];
        float cr[kMicroCodes];
#pragma unroll
        for (int i = 0; i < kMicroRows; ++i) zr[i] = z_tile[f][ty + kThreadsY * i];
#pragma unroll
        for (int j = 0; j < kMicroCodes; ++j) cr[j] = c_tile[f][tx + kThreadsX * j];
#pragma unroll
        for (int i = 0; i < kMicroRows; ++i) {
#pragma unroll
          for (int j = 0; j < kMicroCodes; ++j) acc[i][j] = fmaf(zr[i], cr[j], acc[i][j]);
        }
      }
      __syncthreads();  // everyone is done reading before the next chunk overwrites the tiles
    }

    // acc[i][j] = (z[row i] - mu) . codes[k0 + tx + kThreadsX * j]: fold into the running minima.
#pragma unroll
    for (int j = 0; j < kMicroCodes; ++j) {
      const int k = k0 + tx + kThreadsX * j;
      if (k < n_codes) {
        const float k_sqnorm = code_sqnorm[k];
#pragma unroll
        for (int i = 0; i < kMicroRows; ++i) {
          // Same association as the reference: (|z - mu|^2 + |c|^2) - 2 dot, all float32.
          float dist = (row_sqnorm[i] + k_sqnorm) - 2.0f * acc[i][j];
          dist = dist < 0.0f ? 0.0f : dist;  // NaN-preserving clamp (fmaxf would turn NaN into 0)
          if (precedes(dist, k, best_dist[i], best_index[i])) {
            best_dist[i] = dist;
            best_index[i] = k;
          }
        }
      }
    }
  }

  // 3. The 16 threads with the same ty (lanes 0-15 or 16-31 of a warp; tid = 16 * ty + tx) each hold the
  // best candidate among their own codes for rows ty + kThreadsY * i. xor with 8, 4, 2, 1 only flips
  // bits of tx, so the exchange stays within the half-warp; after it every lane holds the half-warp's
  // minimum (precedes is a total order, so the result does not depend on the pairing). All 32 lanes
  // reach this point, as __shfl_xor_sync with a full mask requires.
#pragma unroll
  for (int i = 0; i < kMicroRows; ++i) {
    float d = best_dist[i];
    int k = best_index[i];
    for (int offset = kThreadsX / 2; offset > 0; offset /= 2) {
      const float other_d = __shfl_xor_sync(0xffffffffu, d, offset);
      const int other_k = __shfl_xor_sync(0xffffffffu, k, offset);
      if (precedes(other_d, other_k, d, k)) {
        d = other_d;
        k = other_k;
      }
    }
    const int64_t row = row0 + ty + kThreadsY * i;
    if (tx == 0 && row < n_rows) {
      out_index[row] = k;
      out_dist[row] = d;
    }
  }
}

template <typename T>
void launch_typed(const void* z, int64_t n_rows, int dim, int64_t z_stride_n, int64_t z_stride_d, const float* mu,
                  const float* codes, const float* code_sqnorm, int n_codes, int64_t* out_index, float* out_dist,
                  cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned int>((n_rows + kRows - 1) / kRows));  // rows on gridDim.x (2^31 - 1 max)
  const dim3 block(kThreads);
  nearest_code_kernel<T><<<grid, block, 0, stream>>>(static_cast<const T*>(z), n_rows, dim, z_stride_n, z_stride_d,
                                                     mu, codes, code_sqnorm, n_codes, out_index, out_dist);
}

}  // namespace

cudaError_t launch_nearest_code(const void* z, ScalarKind z_kind, int64_t n_rows, int64_t dim, int64_t z_stride_n,
                                int64_t z_stride_d, const float* mu, const float* codes, const float* code_sqnorm,
                                int64_t n_codes, int64_t* out_index, float* out_dist, cudaStream_t stream) {
  // D and K are looped over with int counters that step by kChunk / kCodes past the end: keep them far
  // from INT_MAX. (K <= 65536 and D of a few thousand are the real sizes.)
  constexpr int64_t kMaxExtent = INT_MAX / 2;
  if (n_rows < 0 || dim < 1 || dim > kMaxExtent || n_codes < 1 || n_codes > kMaxExtent) return cudaErrorInvalidValue;
  if (n_rows == 0) return cudaSuccess;  // nothing to launch (a 0-block grid would be a launch error)
  if ((n_rows + kRows - 1) / kRows > INT_MAX) return cudaErrorInvalidValue;  // gridDim.x limit
  const int d = static_cast<int>(dim);
  const int k = static_cast<int>(n_codes);
  switch (z_kind) {
    case ScalarKind::kFloat32:
      launch_typed<float>(z, n_rows, d, z_stride_n, z_stride_d, mu, codes, code_sqnorm, k, out_index, out_dist, stream);
      break;
    case ScalarKind::kFloat16:
      launch_typed<__half>(z, n_rows, d, z_stride_n, z_stride_d, mu, codes, code_sqnorm, k, out_index, out_dist,
                           stream);
      break;
    case ScalarKind::kBFloat16:
      launch_typed<__nv_bfloat16>(z, n_rows, d, z_stride_n, z_stride_d, mu, codes, code_sqnorm, k, out_index,
                                  out_dist, stream);
      break;
    default:
      return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

}  // namespace vqcnir
