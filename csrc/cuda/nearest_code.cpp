// CUDA kernel of vqcnir_C::nearest_code: the ATen side of csrc/cuda/nearest_code_kernel.cu.
//
// Checks the tensors, allocates the outputs and calls the torch-free launcher on the current stream.
// The centred float32 codebook (mu, codes = codebook - mu, code_sqnorm) is prepared by the caller
// (vqcnir_ops/quantize/reference.py: center_codebook), exactly as for the CPU kernel.
// Compiled only in CUDA builds (setup.py / CMakeLists.txt add csrc/cuda/*.cpp when torch has CUDA).
#include <tuple>

#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
// c10::cuda::getCurrentCUDAStream is the function at::cuda::getCurrentCUDAStream names. Its header needs only
// the CUDA runtime, while ATen/cuda/CUDAContext.h also pulls in cusparse.h, cublas_v2.h and cusolverDn.h,
// which a minimal toolkit (nvcc + cudart only) does not ship.
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "vqcnir/checks.h"
#include "vqcnir/nearest_code_launch.h"

namespace vqcnir {
namespace {

ScalarKind z_scalar_kind(const at::Tensor& z) {
  switch (z.scalar_type()) {
    case at::kFloat:
      return ScalarKind::kFloat32;
    case at::kHalf:
      return ScalarKind::kFloat16;
    case at::kBFloat16:
      return ScalarKind::kBFloat16;
    case at::kDouble:
      VQCNIR_CHECK_ARG(false, "z",
                       "is float64, which the CUDA kernel does not support (it computes in float32); "
                       "use the 'reference' backend for float64, or pass float32/float16/bfloat16");
    default:
      VQCNIR_CHECK_ARG(false, "z", "must be float32, float16 or bfloat16, got ", z.scalar_type());
  }
  return ScalarKind::kFloat32;  // unreachable: the checks above throw
}

std::tuple<at::Tensor, at::Tensor> nearest_code_cuda(const at::Tensor& z, const at::Tensor& mu,
                                                     const at::Tensor& codes, const at::Tensor& code_sqnorm) {
  check_dim(z, "z", 2);
  VQCNIR_CHECK_ARG(z.is_cuda(), "z", "must be a CUDA tensor, got device ", z.device());
  const ScalarKind z_kind = z_scalar_kind(z);
  check_dim(mu, "mu", 1);
  check_dim(codes, "codes", 2);
  check_dim(code_sqnorm, "code_sqnorm", 1);
  check_float32_contiguous(mu, "mu");
  check_float32_contiguous(codes, "codes");
  check_float32_contiguous(code_sqnorm, "code_sqnorm");
  check_same_device(z, "z", mu, "mu");
  check_same_device(z, "z", codes, "codes");
  check_same_device(z, "z", code_sqnorm, "code_sqnorm");

  const int64_t n_rows = z.size(0);
  const int64_t dim = z.size(1);
  const int64_t n_codes = codes.size(0);
  VQCNIR_CHECK_ARG(n_codes >= 1, "codes", "must hold at least one code (K >= 1), got shape ", codes.sizes());
  VQCNIR_CHECK_ARG(dim >= 1, "z", "must have at least one feature (D >= 1), got shape ", z.sizes());
  VQCNIR_CHECK_ARG(codes.size(1) == dim, "codes", "must have D = ", dim, " columns like 'z', got shape ",
                   codes.sizes());
  VQCNIR_CHECK_ARG(mu.size(0) == dim, "mu", "must have shape [", dim, "] (D of 'z'), got ", mu.sizes());
  VQCNIR_CHECK_ARG(code_sqnorm.size(0) == n_codes, "code_sqnorm", "must have shape [", n_codes,
                   "] (K of 'codes'), got ", code_sqnorm.sizes());

  const c10::cuda::CUDAGuard guard(z.device());
  at::Tensor index = at::empty({n_rows}, z.options().dtype(at::kLong));
  at::Tensor dist = at::empty({n_rows}, z.options().dtype(at::kFloat));
  if (n_rows == 0) return {index, dist};

  // z is read through its strides (in elements); data_ptr() already includes the storage offset.
  const cudaError_t err = launch_nearest_code(
      z.const_data_ptr(), z_kind, n_rows, dim, z.stride(0), z.stride(1), mu.const_data_ptr<float>(),
      codes.const_data_ptr<float>(), code_sqnorm.const_data_ptr<float>(), n_codes, index.mutable_data_ptr<int64_t>(),
      dist.mutable_data_ptr<float>(), c10::cuda::getCurrentCUDAStream());
  TORCH_CHECK(err == cudaSuccess, "vqcnir: nearest_code CUDA kernel failed (N=", n_rows, ", D=", dim, ", K=", n_codes,
              "): ", cudaGetErrorString(err));
  return {index, dist};
}

}  // namespace
}  // namespace vqcnir

TORCH_LIBRARY_IMPL(vqcnir_C, CUDA, m) { m.impl("nearest_code", &vqcnir::nearest_code_cuda); }
