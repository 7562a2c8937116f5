// The GEMM steps of the chunked deformable convolution, shared by the CPU and CUDA kernels.
//
// A chunk covers output pixels [p0, p0 + n) of one image. Its column buffer holds the masked bilinear
// samples as [groups, Cin/groups * taps, n]; the weight is viewed as [groups, Cout/groups, Cin/groups * taps].
// ATen routes the products to the device's BLAS (MKL on CPU, cuBLAS on CUDA).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

namespace vqcnir {

// The first n pixels' worth of a flat column buffer, viewed as [groups, rows_per_group, n].
inline at::Tensor chunk_columns(const at::Tensor& buffer, int64_t groups, int64_t rows_per_group, int64_t n) {
  return buffer.narrow(0, 0, groups * rows_per_group * n).view({groups, rows_per_group, n});
}

// out_b[group rows, p0 : p0 + n] = w[group] @ cols[group], for every group. out_b: [Cout, pixels].
inline void chunk_forward_gemm(const at::Tensor& out_b, const at::Tensor& w, const at::Tensor& cols, int64_t p0,
                               int64_t n) {
  const int64_t cout_g = w.size(1);
  for (int64_t group = 0; group < w.size(0); ++group) {
    at::Tensor dst = out_b.narrow(0, group * cout_g, cout_g).narrow(1, p0, n);
    at::mm_out(dst, w[group], cols[group]);
  }
}

// For every group: grad_weight[group] += gout_b[group rows, p0 : p0 + n] @ cols[group]^T, and
// grad_cols[group] = w[group]^T @ gout_b[group rows, p0 : p0 + n]. gout_b: [Cout, pixels].
inline void chunk_backward_gemm(const at::Tensor& gout_b, const at::Tensor& w, const at::Tensor& cols,
                                const at::Tensor& grad_cols, const at::Tensor& grad_weight, int64_t p0, int64_t n) {
  const int64_t cout_g = w.size(1);
  for (int64_t group = 0; group < w.size(0); ++group) {
    const at::Tensor gout_g = gout_b.narrow(0, group * cout_g, cout_g).narrow(1, p0, n);
    grad_weight[group].addmm_(gout_g, cols[group].t());
    at::Tensor grad_cols_g = grad_cols[group];
    at::mm_out(grad_cols_g, w[group].t(), gout_g);
  }
}

}  // namespace vqcnir
