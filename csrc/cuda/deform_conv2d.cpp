// CUDA kernels of vqcnir_C::deform_conv2d / deform_conv2d_backward: the ATen side of
// csrc/cuda/deform_conv2d_kernel.cu (same structure as the CPU kernel, csrc/cpu/deform_conv2d_kernel.cpp).
//
// Inputs are converted to contiguous float32; each image is processed in chunks of P output pixels whose
// column matrix [C * K, P] stays near kColumnBudget elements (no full im2col buffer). Per chunk: the
// torch-free launchers sample (im2col) or reduce (col2coord, col2im) and ATen's GEMM (cuBLAS) does the
// products. The input gradient uses atomics unless `deterministic` (see deform_conv2d_launch.h).
// Compiled only in CUDA builds (setup.py / CMakeLists.txt add csrc/cuda/*.cpp when torch has CUDA).
#include <tuple>

#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>  // not ATen/cuda/CUDAContext.h: see nearest_code.cpp
#include <torch/library.h>

#include "vqcnir/deform_conv2d_checks.h"
#include "vqcnir/deform_conv2d_gemm.h"
#include "vqcnir/deform_conv2d_launch.h"

namespace vqcnir {
namespace {

constexpr int64_t kColumnBudget = int64_t(1) << 24;  // 64 MB of float32 columns per chunk

int64_t chunk_pixels(const DeformGeometry& g) {
  const int64_t rows = std::max<int64_t>(1, g.channels * g.taps());
  return std::max<int64_t>(1, std::min(g.pixels(), kColumnBudget / rows));
}

void check_launch(cudaError_t err, const char* what) {
  TORCH_CHECK(err == cudaSuccess, "vqcnir: deform_conv2d ", what, " CUDA kernel failed: ", cudaGetErrorString(err));
}

struct Prepared {
  DeformGeometry g;
  at::Tensor input, offset, mask, weight;  // float32 contiguous; weight viewed [G, Cout/G, Cin/G * K]
};

Prepared prepare(const at::Tensor& input, const at::Tensor& offset, const at::Tensor& mask, const at::Tensor& weight,
                 const at::Tensor& bias, int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w,
                 int64_t dilation_h, int64_t dilation_w) {
  VQCNIR_CHECK_ARG(input.is_cuda(), "input", "must be a CUDA tensor, got device ", input.device());
  VQCNIR_CHECK_ARG(input.scalar_type() != at::kDouble, "input",
                   "is float64, which the CUDA kernel does not support; use the 'reference' backend");
  Prepared p;
  p.g = check_deform_conv2d_args(input, offset, mask, weight, bias, stride_h, stride_w, pad_h, pad_w, dilation_h,
                                 dilation_w);
  p.input = input.to(at::kFloat).contiguous();
  p.offset = offset.to(at::kFloat).contiguous();
  p.mask = mask.to(at::kFloat).contiguous();
  p.weight = weight.to(at::kFloat).contiguous().view(
      {p.g.groups, p.g.out_channels / p.g.groups, p.g.channels / p.g.groups * p.g.taps()});
  return p;
}

// columns[:C * K * n] = the masked samples of pixels p0 .. p0 + n - 1 of image b.
void im2col(const Prepared& p, int64_t b, int64_t p0, int64_t n, at::Tensor& columns, cudaStream_t stream) {
  check_launch(launch_deform_im2col(p.input.const_data_ptr<float>(), p.offset.const_data_ptr<float>(),
                                    p.mask.const_data_ptr<float>(), p.g, b, p0, n, columns.mutable_data_ptr<float>(),
                                    stream),
               "im2col");
}

at::Tensor deform_conv2d_cuda(const at::Tensor& input, const at::Tensor& offset, const at::Tensor& mask,
                              const at::Tensor& weight, const at::Tensor& bias, int64_t stride_h, int64_t stride_w,
                              int64_t pad_h, int64_t pad_w, int64_t dilation_h, int64_t dilation_w) {
  const c10::cuda::CUDAGuard guard(input.device());
  const Prepared p =
      prepare(input, offset, mask, weight, bias, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w);
  const DeformGeometry& g = p.g;
  const int64_t cin_g = g.channels / g.groups, taps = g.taps();
  at::Tensor out = at::empty({g.batch, g.out_channels, g.pixels()}, p.input.options());
  const int64_t chunk = chunk_pixels(g);
  at::Tensor columns = at::empty({g.channels * taps * chunk}, p.input.options());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  for (int64_t b = 0; b < g.batch; ++b) {
    for (int64_t p0 = 0; p0 < g.pixels(); p0 += chunk) {
      const int64_t n = std::min(chunk, g.pixels() - p0);
      im2col(p, b, p0, n, columns, stream);
      chunk_forward_gemm(out[b], p.weight, chunk_columns(columns, g.groups, cin_g * taps, n), p0, n);
    }
  }
  out.add_(bias.to(at::kFloat).view({1, g.out_channels, 1}));
  return out.view({g.batch, g.out_channels, g.out_h, g.out_w}).to(input.scalar_type());
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> deform_conv2d_backward_cuda(
    const at::Tensor& grad_out, const at::Tensor& input, const at::Tensor& offset, const at::Tensor& mask,
    const at::Tensor& weight, const at::Tensor& bias, int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w,
    int64_t dilation_h, int64_t dilation_w, bool deterministic) {
  const c10::cuda::CUDAGuard guard(input.device());
  const Prepared p =
      prepare(input, offset, mask, weight, bias, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w);
  const DeformGeometry& g = p.g;
  VQCNIR_CHECK_ARG(grad_out.dim() == 4 && grad_out.size(0) == g.batch && grad_out.size(1) == g.out_channels &&
                       grad_out.size(2) == g.out_h && grad_out.size(3) == g.out_w,
                   "grad_out", "must have the output's shape, got ", grad_out.sizes());
  const at::Tensor gout = grad_out.to(at::kFloat).contiguous().view({g.batch, g.out_channels, g.pixels()});
  const int64_t cin_g = g.channels / g.groups, cout_g = g.out_channels / g.groups, taps = g.taps();
  const auto options = p.input.options();
  at::Tensor grad_input = at::zeros({g.batch, g.channels, g.height, g.width}, options);
  at::Tensor grad_offset = at::empty(p.offset.sizes(), options);
  at::Tensor grad_mask = at::empty(p.mask.sizes(), options);
  at::Tensor grad_weight = at::zeros({g.groups, cout_g, cin_g * taps}, options);
  const int64_t chunk = chunk_pixels(g);
  at::Tensor columns = at::empty({g.channels * taps * chunk}, options);
  at::Tensor grad_columns = at::empty({g.channels * taps * chunk}, options);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  for (int64_t b = 0; b < g.batch; ++b) {
    for (int64_t p0 = 0; p0 < g.pixels(); p0 += chunk) {
      const int64_t n = std::min(chunk, g.pixels() - p0);
      im2col(p, b, p0, n, columns, stream);
      chunk_backward_gemm(gout[b], p.weight, chunk_columns(columns, g.groups, cin_g * taps, n),
                          chunk_columns(grad_columns, g.groups, cin_g * taps, n), grad_weight, p0, n);
      check_launch(launch_deform_col2coord(grad_columns.const_data_ptr<float>(), p.input.const_data_ptr<float>(),
                                           p.offset.const_data_ptr<float>(), p.mask.const_data_ptr<float>(), g, b,
                                           p0, n, grad_offset.mutable_data_ptr<float>(),
                                           grad_mask.mutable_data_ptr<float>(), stream),
                   "col2coord");
      check_launch(launch_deform_col2im(grad_columns.const_data_ptr<float>(), p.offset.const_data_ptr<float>(),
                                        p.mask.const_data_ptr<float>(), g, b, p0, n, deterministic,
                                        grad_input.mutable_data_ptr<float>(), stream),
                   "col2im");
    }
  }
  // IntArrayRef spelled out: a bare {0, 2} matches both the OptionalIntArrayRef and the DimnameList overload
  // with torch 2.4-2.11 headers (an error there; scripts/check_torch_builds.sh compiles against them).
  const at::Tensor grad_bias = gout.sum(at::IntArrayRef{0, 2});
  return {grad_input.to(input.scalar_type()), grad_offset.to(offset.scalar_type()), grad_mask.to(mask.scalar_type()),
          grad_weight.view(weight.sizes()).to(weight.scalar_type()), grad_bias.to(bias.scalar_type())};
}

}  // namespace
}  // namespace vqcnir

TORCH_LIBRARY_IMPL(vqcnir_C, CUDA, m) {
  m.impl("deform_conv2d", &vqcnir::deform_conv2d_cuda);
  m.impl("deform_conv2d_backward", &vqcnir::deform_conv2d_backward_cuda);
}
