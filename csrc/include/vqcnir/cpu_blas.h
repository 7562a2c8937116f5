// Row-major GEMM straight into the BLAS that torch links (MKL's or OpenBLAS's Fortran sgemm_ / dgemm_).
//
// Why: the CPU kernels cut their products into small blocks (a head's C x C map times a slice of columns).
// Through ATen each block costs a few tensor views, a narrow and a dispatch (~5-10 us in all), about as much as
// a 64 x 64 x 1024 product's bookkeeping should; called on raw pointers the BLAS does only the arithmetic.
// The symbols are declared weak: a torch built without a BLAS leaves them null, row_gemm returns false, and the
// caller takes its ATen path. Sizes past the 32-bit BLAS interface also return false.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <type_traits>

extern "C" {
void sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k, const float* alpha,
            const float* a, const int* lda, const float* b, const int* ldb, const float* beta, float* c,
            const int* ldc) __attribute__((weak));
void dgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k, const double* alpha,
            const double* a, const int* lda, const double* b, const int* ldb, const double* beta, double* c,
            const int* ldc) __attribute__((weak));
}

namespace vqcnir {

// A row-major matrix operand: its data, row stride, and whether the product uses its transpose.
template <typename T>
struct RowMajor {
  const T* data;
  int64_t ld;
  bool transposed;
};

// True when row_gemm<T> can run on this build of torch.
template <typename T>
inline bool have_row_gemm() {
  if constexpr (std::is_same_v<T, float>) return sgemm_ != nullptr;
  if constexpr (std::is_same_v<T, double>) return dgemm_ != nullptr;
  return false;
}

// c[m x n] (row stride ldc) = alpha * op(a) @ op(b) + beta * c, where op(a) is [m x k] (a stored [m x k], or
// [k x m] when a.transposed) and op(b) is [k x n]. Returns false, touching nothing, when the BLAS is missing, a
// size does not fit its 32-bit interface or an operand's rows overlap (row stride below the row length);
// callers then take their ATen path.
template <typename T>
bool row_gemm(int64_t m, int64_t n, int64_t k, T alpha, RowMajor<T> a, RowMajor<T> b, T beta, T* c, int64_t ldc) {
  constexpr int64_t kMax = std::numeric_limits<int>::max();
  if (!have_row_gemm<T>() || std::max({m, n, k, a.ld, b.ld, ldc}) > kMax) return false;
  if (m == 0 || n == 0) return true;
  // Rows closer together than their length (an expanded operand: stride 0) are not a BLAS matrix: raising the
  // leading dimension would read past them. Only a single stored row may have any stride.
  const int64_t a_rows = a.transposed ? k : m, b_rows = b.transposed ? n : k;
  if ((a_rows > 1 && a.ld < (a.transposed ? m : k)) || (b_rows > 1 && b.ld < (b.transposed ? k : n))) return false;
  // Column-major BLAS sees each row-major matrix transposed: c^T = op(b)^T @ op(a)^T. A leading dimension must
  // be at least the stored row length, also for a single row (whose stride can be anything).
  const int im = static_cast<int>(m), in = static_cast<int>(n), ik = static_cast<int>(k);
  const int lda = static_cast<int>(std::max<int64_t>({a.ld, a.transposed ? m : k, 1}));
  const int ldb = static_cast<int>(std::max<int64_t>({b.ld, b.transposed ? k : n, 1}));
  const int ldcc = static_cast<int>(std::max<int64_t>(ldc, n));
  const char ta = a.transposed ? 'T' : 'N', tb = b.transposed ? 'T' : 'N';
  if constexpr (std::is_same_v<T, float>) {
    sgemm_(&tb, &ta, &in, &im, &ik, &alpha, b.data, &ldb, a.data, &lda, &beta, c, &ldcc);
  } else {
    dgemm_(&tb, &ta, &in, &im, &ik, &alpha, b.data, &ldb, a.data, &lda, &beta, c, &ldcc);
  }
  return true;
}

}  // namespace vqcnir
