// Torch-free interface of the CUDA nearest-code kernel.
//
// The .cu file that implements it includes only CUDA headers, so CMakeLists.txt can compile it with
// nvcc without torch; csrc/cuda/nearest_code.cpp is the thin ATen side that checks tensors, prepares
// the centred float32 codebook and calls this launcher on the current stream.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

namespace vqcnir {

// Element type of the query rows `z` (the codebook side is always prepared as float32).
enum class ScalarKind : int { kFloat32 = 0, kFloat16 = 1, kBFloat16 = 2 };

// Nearest-code lookup, fused: distances are computed tile by tile and reduced on the fly.
//
//   z            [N, D] rows of type `z_kind`, element (n, d) at z + n * z_stride_n + d * z_stride_d
//   mu           [D]    float32, the codebook mean; subtracted from every z row before the expansion
//   codes        [K, D] float32, contiguous, the codebook minus mu
//   code_sqnorm  [K]    float32, squared L2 norm of each row of `codes`
//   out_index    [N]    int64, argmin_k of the clamped distance; ties and NaN: see below
//   out_dist     [N]    float32, max(|z - mu|^2 + code_sqnorm[k] - 2 (z - mu) . codes[k], 0)
//
// Contract (shared by every backend, see vqcnir_ops/quantize/reference.py):
//   * all arithmetic in float32; the distance is clamped at 0 with a NaN-preserving select;
//   * ties go to the smallest index;
//   * a NaN distance counts as smaller than every number, so the first code whose distance is NaN
//     wins and its distance (NaN) is reported (torch.argmin's rule).
// N may be 0 (nothing is launched). K >= 1, D >= 1. Returns the launch error, if any.
cudaError_t launch_nearest_code(const void* z, ScalarKind z_kind, int64_t n_rows, int64_t dim,
                                int64_t z_stride_n, int64_t z_stride_d, const float* mu, const float* codes,
                                const float* code_sqnorm, int64_t n_codes, int64_t* out_index, float* out_dist,
                                cudaStream_t stream);

}  // namespace vqcnir
