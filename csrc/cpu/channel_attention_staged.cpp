// The whole bi-directional channel attention on CPU, forward and backward, in one call each: the two-phase
// algorithm of vqcnir_ops/attention/staged.py (its docstring is the spec; the op order below follows it step
// by step) over the phase kernels of channel_attention_kernel.cpp.
//
// Why a C++ copy of the Python driver: at the decoder's deepest level (256ch@32x32, N = 1024) the phases take
// about 1.4 ms and the driver's ~40 small PyTorch calls (the C x C stage, row gains, transposes) cost
// 0.3-0.6 ms more from Python; here they cost a few microseconds each. The reference and Triton backends keep
// the Python driver. Differences from it: the backward's grams skip the unused norms, and the transposed maps
// go to channel_mix as views (no copies).
#include <ATen/ATen.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <tuple>
#include <utility>
#include <vector>

#include "vqcnir/channel_attention_phases.h"
#include "vqcnir/checks.h"
#include "vqcnir/dtypes.h"

namespace vqcnir {
namespace {

// [heads] -> [1, heads, 1, 1] in dtype, times the logit scale.
at::Tensor logit_scale(const at::Tensor& temperature, double scale, c10::ScalarType dtype) {
  return temperature.to(dtype).view({1, -1, 1, 1}) * scale;
}

// [heads * C] -> [1, heads, C, 1] in dtype.
at::Tensor row_gain(const at::Tensor& gain, const at::Tensor& like, c10::ScalarType dtype) {
  return gain.to(dtype).view({1, like.size(1), like.size(2), 1});
}

// The values, temperature and gains against q_d [B, heads, C, N] (q_g and the residuals are checked by the
// phase kernels).
void check_args(const at::Tensor& q_d, const at::Tensor& v_d, const at::Tensor& v_g, const at::Tensor& temperature,
                const at::Tensor& gain_d, const at::Tensor& gain_g) {
  check_dim(q_d, "q_d", 4);
  for (const auto& [v, name] : {std::pair{&v_d, "v_d"}, std::pair{&v_g, "v_g"}}) {
    VQCNIR_CHECK_ARG(v->sizes() == q_d.sizes(), name, "must have the shape of 'q_d' ", q_d.sizes(), ", got ",
                     v->sizes());
  }
  VQCNIR_CHECK_ARG(temperature.dim() == 1 && temperature.size(0) == q_d.size(1), "temperature",
                   "must have shape [heads] = [", q_d.size(1), "], got ", temperature.sizes());
  for (const auto& [gain, name] : {std::pair{&gain_d, "gain_d"}, std::pair{&gain_g, "gain_g"}}) {
    VQCNIR_CHECK_ARG(gain->dim() == 1 && gain->size(0) == q_d.size(1) * q_d.size(2), name,
                     "must have shape [heads * C] = [", q_d.size(1) * q_d.size(2), "], got ", gain->sizes());
  }
}

using Outputs = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

// (y_d, y_g, attn, scores, norm_d, norm_g): vqcnir.bidirectional_channel_attention_fwd's contract.
Outputs channel_attention_forward_cpu(const at::Tensor& q_d, const at::Tensor& q_g, const at::Tensor& v_d,
                                      const at::Tensor& v_g, const at::Tensor& temperature, const at::Tensor& gain_d,
                                      const at::Tensor& gain_g, const std::optional<at::Tensor>& res_d,
                                      const std::optional<at::Tensor>& res_g, bool normalize, double scale,
                                      double eps) {
  check_args(q_d, v_d, v_g, temperature, gain_d, gain_g);
  const at::NoGradGuard no_grad;  // a kernel: the custom op's autograd formula is the backward below
  auto [gram, sq_d, sq_g] = channel_gram_cpu_impl(q_d, q_g, /*norms=*/true);
  const auto dtype = gram.scalar_type();
  // The C x C stage in two plain loops around the softmax: at the decoder's shapes (at most 4 x 64 x 64 per
  // image) each of the ~10 tensor ops it replaces costs more in dispatch and allocation than in arithmetic.
  at::Tensor norm_d = at::empty(sq_d.sizes(), sq_d.options()), norm_g = at::empty(sq_g.sizes(), sq_g.options());
  at::Tensor scores = normalize ? at::empty(gram.sizes(), gram.options()) : gram;
  at::Tensor logits = at::empty(gram.sizes(), gram.options());
  at::Tensor w_d = at::empty(gram.sizes(), gram.options()), w_g = at::empty(gram.sizes(), gram.options());
  at::Tensor attn;
  AT_DISPATCH_FLOATING_TYPES(dtype, "channel_attention_forward_cxc", [&] {
    const at::Tensor temp = temperature.to(dtype).contiguous();
    const at::Tensor gd = gain_d.to(dtype).contiguous(), gg = gain_g.to(dtype).contiguous();
    const int64_t groups = gram.size(0) * gram.size(1), heads = gram.size(1), c = gram.size(2);
    const scalar_t* gram_p = gram.const_data_ptr<scalar_t>();
    const scalar_t* sqd = sq_d.const_data_ptr<scalar_t>();
    const scalar_t* sqg = sq_g.const_data_ptr<scalar_t>();
    scalar_t* nd = norm_d.mutable_data_ptr<scalar_t>();
    scalar_t* ng = norm_g.mutable_data_ptr<scalar_t>();
    scalar_t* sc = scores.mutable_data_ptr<scalar_t>();
    scalar_t* lg = logits.mutable_data_ptr<scalar_t>();
    for (int64_t i = 0; i < groups * c; ++i) {
      nd[i] = std::sqrt(sqd[i]);
      ng[i] = std::sqrt(sqg[i]);
    }
    std::vector<scalar_t> inv_g(c);
    for (int64_t i = 0; i < groups; ++i) {
      // temperature * scale in the compute dtype, as the reference's tensor-times-scalar product.
      const scalar_t ts = temp.const_data_ptr<scalar_t>()[i % heads] * scalar_t(scale);
      for (int64_t col = 0; col < c; ++col) inv_g[col] = scalar_t(1) / std::max(ng[i * c + col], scalar_t(eps));
      for (int64_t row = 0; row < c; ++row) {
        const int64_t at = (i * c + row) * c;
        if (normalize) {
          const scalar_t inv_d = scalar_t(1) / std::max(nd[i * c + row], scalar_t(eps));
          for (int64_t col = 0; col < c; ++col) sc[at + col] = gram_p[at + col] * inv_d * inv_g[col];
        }
        for (int64_t col = 0; col < c; ++col) lg[at + col] = sc[at + col] * ts;
      }
    }
    attn = at::_softmax(logits, -1, false);
    const scalar_t* a = attn.const_data_ptr<scalar_t>();
    scalar_t* wd = w_d.mutable_data_ptr<scalar_t>();
    scalar_t* wg = w_g.mutable_data_ptr<scalar_t>();
    for (int64_t i = 0; i < groups; ++i) {
      for (int64_t row = 0; row < c; ++row) {
        const int64_t at = (i * c + row) * c, gain_at = (i % heads) * c + row;
        const scalar_t rd = gd.const_data_ptr<scalar_t>()[gain_at], rg = gg.const_data_ptr<scalar_t>()[gain_at];
        for (int64_t col = 0; col < c; ++col) {
          wd[at + col] = rd * a[at + col];
          wg[at + col] = rg * a[at + col];
        }
      }
    }
  });
  at::Tensor y_d = channel_mix_cpu(w_d, v_d, res_d, std::nullopt);
  at::Tensor y_g = channel_mix_cpu(w_g, v_g, res_g, std::nullopt);
  return {y_d, y_g, attn, scores, norm_d, norm_g};
}

using Grads = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

// Gradients of (q_d, q_g, v_d, v_g, temperature, gain_d, gain_g), each in its input's dtype:
// vqcnir.bidirectional_channel_attention_bwd's contract.
Grads channel_attention_backward_cpu(const at::Tensor& grad_out_d, const at::Tensor& grad_out_g, const at::Tensor& q_d,
                                     const at::Tensor& q_g, const at::Tensor& v_d, const at::Tensor& v_g,
                                     const at::Tensor& temperature, const at::Tensor& gain_d,
                                     const at::Tensor& gain_g, const at::Tensor& attn, const at::Tensor& scores,
                                     const at::Tensor& norm_d, const at::Tensor& norm_g, bool normalize,
                                     double scale, double eps) {
  check_args(q_d, v_d, v_g, temperature, gain_d, gain_g);
  const at::NoGradGuard no_grad;
  const auto dtype = attn.scalar_type();
  // Each output gradient feeds a gram and a mix: an expanded one (out.sum()'s) is copied once here, not twice.
  const at::Tensor grad_y_d = blas_rows(grad_out_d), grad_y_g = blas_rows(grad_out_g);
  const at::Tensor row_d = row_gain(gain_d, q_d, dtype), row_g = row_gain(gain_g, q_d, dtype);
  const at::Tensor m_d = std::get<0>(channel_gram_cpu_impl(grad_y_d, v_d, /*norms=*/false));
  const at::Tensor m_g = std::get<0>(channel_gram_cpu_impl(grad_y_g, v_g, /*norms=*/false));
  const at::Tensor grad_attn = row_d * m_d + row_g * m_g;
  const at::Tensor grad_gain_d = (attn * m_d).sum(-1).sum(0).reshape(-1);
  const at::Tensor grad_gain_g = (attn * m_g).sum(-1).sum(0).reshape(-1);
  // The C x C stage backward: softmax, temperature, normalisation.
  const at::Tensor grad_logits = attn * (grad_attn - (grad_attn * attn).sum(-1, /*keepdim=*/true));
  const at::Tensor grad_temperature = (grad_logits * scores).sum(at::IntArrayRef{0, 2, 3}) * scale;
  const at::Tensor grad_scores = grad_logits * logit_scale(temperature, scale, dtype);
  at::Tensor grad_gram = grad_scores;
  std::optional<at::Tensor> alpha_d, alpha_g, x_d, x_g;
  if (normalize) {
    const at::Tensor inv_d = norm_d.clamp_min(eps).reciprocal(), inv_g = norm_g.clamp_min(eps).reciprocal();
    grad_gram = grad_scores * inv_d.unsqueeze(-1) * inv_g.unsqueeze(-2);
    const at::Tensor weighted = grad_scores * scores;
    // Below eps the clamp passes no gradient to the norm.
    alpha_d = at::where(norm_d >= eps, -weighted.sum(-1) * inv_d * inv_d, 0.0);
    alpha_g = at::where(norm_g >= eps, -weighted.sum(-2) * inv_g * inv_g, 0.0);
    x_d = q_d;
    x_g = q_g;
  }
  at::Tensor grad_q_d = channel_mix_cpu(grad_gram, q_g, x_d, alpha_d);
  at::Tensor grad_q_g = channel_mix_cpu(grad_gram.transpose(-2, -1), q_d, x_g, alpha_g);
  at::Tensor grad_v_d = channel_mix_cpu((row_d * attn).transpose(-2, -1), grad_y_d, std::nullopt, std::nullopt);
  at::Tensor grad_v_g = channel_mix_cpu((row_g * attn).transpose(-2, -1), grad_y_g, std::nullopt, std::nullopt);
  return {grad_q_d,
          grad_q_g,
          grad_v_d,
          grad_v_g,
          grad_temperature.to(temperature.scalar_type()),
          grad_gain_d.to(gain_d.scalar_type()),
          grad_gain_g.to(gain_g.scalar_type())};
}

}  // namespace

TORCH_LIBRARY_IMPL(vqcnir_C, CPU, m) {
  m.impl("channel_attention_forward", &channel_attention_forward_cpu);
  m.impl("channel_attention_backward", &channel_attention_backward_cpu);
}

}  // namespace vqcnir
