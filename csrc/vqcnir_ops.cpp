// Schemas of every raw C++/CUDA kernel, and the stub that makes `vqcnir_ops._C` importable.
//
// The kernels live in the `vqcnir_C` namespace; the public, autograd-aware ops (`vqcnir::*`) are defined
// in Python with torch.library.custom_op and call these when the cpp or cuda backend is chosen.
#include <Python.h>
#include <torch/library.h>

TORCH_LIBRARY(vqcnir_C, m) {
  // z [N, D] (float32/float16/bfloat16/float64, any strides), mu [D], codes [K, D], code_sqnorm [K]
  // (codebook side in the compute dtype: float64 for float64 z, else float32).
  // Returns (index int64 [N], dist [N] in the compute dtype). See vqcnir_ops/quantize/reference.py.
  m.def("nearest_code(Tensor z, Tensor mu, Tensor codes, Tensor code_sqnorm) -> (Tensor, Tensor)");
  // codebook [K, D] (any float dtype) -> [K] int64 index of each code's first bitwise-equal copy, or an
  // empty tensor when all codes differ (first_duplicates in vqcnir_ops/quantize/reference.py). CPU only.
  m.def("first_copies(Tensor codebook) -> Tensor");
  // IMACConv curve mapping. x [B, S, Cs, H, W], a [B, S, n, H, W] (1 <= n <= 16), same floating dtype, any
  // strides. fwd -> y; bwd(dy like x) -> (dx, da), da summed over each split's Cs channels in a fixed
  // order. Outputs are contiguous. See vqcnir_ops/curve/reference.py.
  m.def("curve_map_fwd(Tensor x, Tensor a) -> Tensor");
  m.def("curve_map_bwd(Tensor dy, Tensor x, Tensor a) -> (Tensor, Tensor)");
  // Modulated deformable convolution (torchvision.ops.deform_conv2d semantics; vqcnir_ops/deform/reference.py):
  // input [B, C, H, W], offset [B, 2 * OG * kh * kw, Ho, Wo], mask [B, OG * kh * kw, Ho, Wo], weight
  // [Cout, C / groups, kh, kw], bias [Cout]; groups and OG are read from the shapes. Float32 accumulation
  // (float64 for float64 input); the output has input's dtype. The backward returns the gradients of
  // (input, offset, mask, weight, bias), each in its argument's dtype; deterministic is honoured by the CUDA
  // kernel (the CPU kernel is always deterministic).
  m.def(
      "deform_conv2d(Tensor input, Tensor offset, Tensor mask, Tensor weight, Tensor bias, int stride_h, "
      "int stride_w, int pad_h, int pad_w, int dilation_h, int dilation_w) -> Tensor");
  m.def(
      "deform_conv2d_backward(Tensor grad_out, Tensor input, Tensor offset, Tensor mask, Tensor weight, "
      "Tensor bias, int stride_h, int stride_w, int pad_h, int pad_w, int dilation_h, int dilation_w, "
      "bool deterministic) -> (Tensor, Tensor, Tensor, Tensor, Tensor)");
  // Depth-wise convolution, stride 1 (vqcnir_ops/depthwise/reference.py): input [B, C, H, W] (any float dtype,
  // any strides), weight [C, 1, kh, kw], bias [C] or none (any float dtypes); padding and dilation [2]. fwd ->
  // output [B, C, Ho, Wo] in input's dtype; bwd(grad_out) -> (grad_input, grad_weight, grad_bias), each in its
  // argument's dtype (grad_bias in weight's without a bias). Float32 compute (float64 for float64 input).
  m.def("depthwise_conv2d_fwd(Tensor input, Tensor weight, Tensor? bias, int[2] padding, int[2] dilation) -> Tensor");
  m.def(
      "depthwise_conv2d_bwd(Tensor grad_out, Tensor input, Tensor weight, Tensor? bias, int[2] padding, "
      "int[2] dilation) -> (Tensor, Tensor, Tensor)");
  // Phase kernels of the bi-directional channel attention (vqcnir_ops/attention/staged.py). x, y, z
  // [B, heads, C, N] of one floating dtype, any strides; compute dtype float64 for float64, else float32.
  // channel_gram -> (x @ y^T [B, heads, C, C], |x|^2 [B, heads, C], |y|^2), reduced over N in a fixed order.
  m.def("channel_gram(Tensor x, Tensor y) -> (Tensor, Tensor, Tensor)");
  // channel_mix -> w @ z + a * x in z's dtype, contiguous; w [B, heads, C, C] and a [B, heads, C] in the
  // compute dtype; x like z; a = 1 when absent, x = 0 when absent.
  m.def("channel_mix(Tensor w, Tensor z, Tensor? x, Tensor? a) -> Tensor");
  // The whole op over these phases (CPU): torch.ops.vqcnir.bidirectional_channel_attention_fwd / _bwd's
  // contracts (vqcnir_ops/attention/op.py), minus the backend argument.
  m.def(
      "channel_attention_forward(Tensor q_d, Tensor q_g, Tensor v_d, Tensor v_g, Tensor temperature, "
      "Tensor gain_d, Tensor gain_g, Tensor? res_d, Tensor? res_g, bool normalize, float scale, float eps) "
      "-> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)");
  m.def(
      "channel_attention_backward(Tensor grad_y_d, Tensor grad_y_g, Tensor q_d, Tensor q_g, Tensor v_d, "
      "Tensor v_g, Tensor temperature, Tensor gain_d, Tensor gain_g, Tensor attn, Tensor scores, "
      "Tensor norm_d, Tensor norm_g, bool normalize, float scale, float eps) "
      "-> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)");
}

// Importing the module loads this library, which runs the registrations above and those of every
// kernel file linked into it. `has_cuda` tells Python whether the CUDA kernels were compiled in.
static PyObject* has_cuda(PyObject*, PyObject*) {
#ifdef VQCNIR_WITH_CUDA
  Py_RETURN_TRUE;
#else
  Py_RETURN_FALSE;
#endif
}

static PyMethodDef methods[] = {
    {"has_cuda", has_cuda, METH_NOARGS, "Whether the CUDA kernels were compiled into this extension."},
    {nullptr, nullptr, 0, nullptr}};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_C", "vqcnir_ops compiled kernels", -1, methods, nullptr, nullptr, nullptr, nullptr};

PyMODINIT_FUNC PyInit__C(void) { return PyModule_Create(&module); }
