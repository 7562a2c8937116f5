// Modulated deformable convolution (DCNv2) on CPU, forward and backward, deterministic.
//
// Semantics: torchvision.ops.deform_conv2d; spec: vqcnir_ops/deform/reference.py.
//
// No full im2col buffer: each image is processed in chunks of n output pixels, with n chosen so the chunk's
// column matrix [n, C * K] stays near kColumnBudget elements (a few MB) whatever the image size. The image is
// taken channels-last, and the columns are pixel-major (layouts: deform_conv2d_cpu_chunk.h), so that every
// sample of an offset group reads and writes runs of contiguous channels, which the compiler vectorises.
// Per chunk:
//   1. forward: columns = mask * bilinear samples (parallel over blocks of pixels; the sampling plan of a block
//      is made on the spot and used while in L1), then one GEMM per conv group
//      (weight_g [Cout/G, K * Cin/G] x columns_g^T) into the output;
//   2. backward: the same columns give grad_weight_g += grad_out_g x columns_g; grad_columns_g =
//      grad_out_g^T x weight_g; grad_offset and grad_mask reduce grad_columns over the channels of each
//      offset group (parallel over blocks of pixels: each output element is one task's fixed-order sum);
//      grad_input scatters each sample's gradient to its four neighbours, parallel over (offset group, block
//      of <= 16 channels): each task owns its channels of every pixel, so there are no races and every value
//      receives its updates in (tap, pixel, neighbour) order.
// With two or more images, the images are the parallel tasks instead (one thread each, per-thread buffers, the
// weight gradient summed over images in image order): at the small images of training this scales better than
// splitting each image's short steps. Results do not depend on the thread count except through the GEMM's own
// blocking.
// The loops (deform_conv2d_cpu_loops.inc) are compiled twice on x86-64 with GCC: for the baseline target and
// for AVX2 + FMA, chosen at run time by the CPU (VQCNIR_CPU_ISA=generic forces the baseline).
// Everything is computed in float32 (float64 for float64 inputs); float16/bfloat16 are converted on entry.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <tuple>
#include <type_traits>
#include <vector>

#include "deform_conv2d_cpu_chunk.h"
#include "vqcnir/cpu_isa.h"
#include "vqcnir/deform_conv2d_checks.h"
#include "vqcnir/dtypes.h"
#include "vqcnir/parallel.h"

namespace vqcnir {
namespace deform_cpu {
namespace generic {
#include "deform_conv2d_cpu_loops.inc"
}  // namespace generic
}  // namespace deform_cpu
}  // namespace vqcnir

#ifdef VQCNIR_CPU_AVX2_VARIANT
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace vqcnir {
namespace deform_cpu {
namespace avx2 {
#include "deform_conv2d_cpu_loops.inc"
}  // namespace avx2
}  // namespace deform_cpu
}  // namespace vqcnir
#pragma GCC pop_options
#endif

namespace vqcnir {
namespace {

using deform_cpu::Chunk;

constexpr int64_t kColumnBudget = int64_t(1) << 21;  // elements of one chunk's column matrix (8 MB in float32)

// The loop bodies for this CPU (vqcnir/cpu_isa.h: AVX2 + FMA where the CPU has them, unless
// VQCNIR_CPU_ISA=generic).
template <typename scalar_t>
struct Loops {
  void (*fill)(const Chunk<scalar_t>&, int64_t, int64_t, scalar_t*);
  void (*coords)(const Chunk<scalar_t>&, const scalar_t*, int64_t, int64_t, scalar_t*, scalar_t*);
  void (*scatter)(const Chunk<scalar_t>&, const scalar_t*, int64_t, int64_t, int64_t, scalar_t*, scalar_t*);
};

template <typename scalar_t>
Loops<scalar_t> loops() {
#ifdef VQCNIR_CPU_AVX2_VARIANT
  if (use_avx2_variant()) {
    return {&deform_cpu::avx2::fill_columns_block<scalar_t>, &deform_cpu::avx2::coords_block<scalar_t>,
            &deform_cpu::avx2::scatter_channels<scalar_t>};
  }
#endif
  return {&deform_cpu::generic::fill_columns_block<scalar_t>, &deform_cpu::generic::coords_block<scalar_t>,
          &deform_cpu::generic::scatter_channels<scalar_t>};
}

int64_t chunk_pixels(const DeformGeometry& g) {
  const int64_t row = std::max<int64_t>(1, g.channels * g.taps());
  return std::max<int64_t>(1, std::min(g.pixels(), kColumnBudget / row));
}

// body(q0, count) for every plan block of a chunk of n pixels, in parallel (each block writes only its own
// pixels' outputs).
template <typename Body>
void for_each_plan_block(int64_t n, const Body& body) {
  const int64_t blocks = (n + deform_cpu::kPlanBlock - 1) / deform_cpu::kPlanBlock;
  vqcnir::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t blk = begin; blk < end; ++blk) {
      const int64_t q0 = blk * deform_cpu::kPlanBlock;
      body(q0, std::min(deform_cpu::kPlanBlock, n - q0));
    }
  });
}

// One thread's state: the geometry's per-chunk arrays (row/column bases, a zeros row) and the column
// matrices, allocated on first use.
template <typename scalar_t>
struct Workspace {
  const DeformGeometry& g;
  std::vector<scalar_t> base_y, base_x, zeros;
  at::Tensor columns, grad_columns;

  explicit Workspace(const DeformGeometry& geometry)
      : g(geometry), zeros(std::max<int64_t>(1, geometry.channels_per_offset_group()), scalar_t(0)) {}

  // Chunk p0 .. p0 + n - 1 of image b (in_t: [B, H, W, C]; offset and mask as the op takes them).
  Chunk<scalar_t> chunk(const at::Tensor& in_t, const at::Tensor& offset, const at::Tensor& mask, int64_t b,
                        int64_t p0, int64_t n) {
    base_y.resize(n);
    base_x.resize(n);
    int64_t ho = p0 / g.out_w, wo = p0 % g.out_w;  // stepped along, no division per pixel
    for (int64_t q = 0; q < n; ++q) {
      base_y[q] = scalar_t(ho * g.stride_h - g.pad_h);
      base_x[q] = scalar_t(wo * g.stride_w - g.pad_w);
      if (++wo == g.out_w) {
        wo = 0;
        ++ho;
      }
    }
    return Chunk<scalar_t>{g.channels, g.height, g.width, g.taps(), g.kernel_w, g.offset_groups,
                           g.channels_per_offset_group(), g.channels / g.groups, g.pixels(), g.dilation_h,
                           g.dilation_w, p0, n, base_y.data(), base_x.data(), in_t[b].const_data_ptr<scalar_t>(),
                           offset[b].const_data_ptr<scalar_t>(), mask[b].const_data_ptr<scalar_t>(), zeros.data()};
  }

  // `buffer` (columns or grad_columns) with room for one chunk's column matrix.
  at::Tensor& buffer(at::Tensor& buffer, int64_t chunk, const at::TensorOptions& options) const {
    if (!buffer.defined()) buffer = at::empty({g.channels * g.taps() * chunk}, options);
    return buffer;
  }
};

// body(b) for every image: with two or more images, the images are the parallel tasks (the loops inside run
// on one thread each: nested at::parallel_for runs inline), which scales better than splitting each image's
// small steps; one image runs on the calling thread and its loops are parallel. Each image's work is the same
// sequence of operations either way.
template <typename Body>
void for_each_image(const DeformGeometry& g, const Body& body) {
  vqcnir::parallel_for(0, g.batch, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) body(b);
  });
}

// The weight as [G, Cout/G, K * Cin/G] with taps outer and channels inner, the order of the columns.
at::Tensor weight_tap_major(const at::Tensor& weight, const DeformGeometry& g, at::ScalarType acc) {
  const int64_t cout_g = g.out_channels / g.groups, cin_g = g.channels / g.groups;
  return weight.to(acc)
      .contiguous()
      .view({g.groups, cout_g, cin_g, g.taps()})
      .permute({0, 1, 3, 2})
      .contiguous()
      .view({g.groups, cout_g, g.taps() * cin_g});
}

// The first n pixels' worth of the flat column buffer as [G, n, K * Cin/G].
at::Tensor chunk_columns(const at::Tensor& buffer, const DeformGeometry& g, int64_t n) {
  const int64_t row = g.taps() * (g.channels / g.groups);
  return buffer.narrow(0, 0, g.groups * n * row).view({g.groups, n, row});
}

void check_index_range(const DeformGeometry& g) {
  VQCNIR_CHECK_ARG(g.height * g.width < (int64_t(1) << 31) - int64_t(g.width) - 2, "input",
                   "must have fewer than 2^31 pixels per channel plane for the CPU kernel, got ", g.height, " x ",
                   g.width);
}

at::Tensor deform_conv2d_cpu(const at::Tensor& input, const at::Tensor& offset, const at::Tensor& mask,
                             const at::Tensor& weight, const at::Tensor& bias, int64_t stride_h, int64_t stride_w,
                             int64_t pad_h, int64_t pad_w, int64_t dilation_h, int64_t dilation_w) {
  const DeformGeometry g = check_deform_conv2d_args(input, offset, mask, weight, bias, stride_h, stride_w, pad_h,
                                                    pad_w, dilation_h, dilation_w);
  check_index_range(g);
  const auto acc = compute_dtype(input.scalar_type());
  const at::Tensor in_t = input.to(acc).permute({0, 2, 3, 1}).contiguous();  // [B, H, W, C]
  const at::Tensor off_c = offset.to(acc).contiguous(), mask_c = mask.to(acc).contiguous();
  const at::Tensor w = weight_tap_major(weight, g, acc);
  const int64_t cout_g = g.out_channels / g.groups;
  at::Tensor out = at::empty({g.batch, g.out_channels, g.pixels()}, input.options().dtype(acc));
  const int64_t chunk = chunk_pixels(g);
  AT_DISPATCH_FLOATING_TYPES(acc, "deform_conv2d_cpu", [&] {
    const Loops<scalar_t> run = loops<scalar_t>();
    std::vector<Workspace<scalar_t>> spaces(at::get_num_threads(), Workspace<scalar_t>(g));
    for_each_image(g, [&](int64_t b) {
      Workspace<scalar_t>& space = spaces[at::get_thread_num()];
      at::Tensor& columns = space.buffer(space.columns, chunk, out.options());
      for (int64_t p0 = 0; p0 < g.pixels(); p0 += chunk) {
        const int64_t n = std::min(chunk, g.pixels() - p0);
        const Chunk<scalar_t> ch = space.chunk(in_t, off_c, mask_c, b, p0, n);
        scalar_t* cols = columns.mutable_data_ptr<scalar_t>();
        for_each_plan_block(n, [&](int64_t q0, int64_t count) { run.fill(ch, q0, count, cols); });
        const at::Tensor cols_t = chunk_columns(columns, g, n);
        for (int64_t group = 0; group < g.groups; ++group) {
          at::Tensor dst = out[b].narrow(0, group * cout_g, cout_g).narrow(1, p0, n);
          at::mm_out(dst, w[group], cols_t[group].t());
        }
      }
    });
  });
  out.add_(bias.to(acc).view({1, g.out_channels, 1}));
  return out.view({g.batch, g.out_channels, g.out_h, g.out_w}).to(input.scalar_type());
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> deform_conv2d_backward_cpu(
    const at::Tensor& grad_out, const at::Tensor& input, const at::Tensor& offset, const at::Tensor& mask,
    const at::Tensor& weight, const at::Tensor& bias, int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w,
    int64_t dilation_h, int64_t dilation_w, bool /*deterministic: always*/) {
  const DeformGeometry g = check_deform_conv2d_args(input, offset, mask, weight, bias, stride_h, stride_w, pad_h,
                                                    pad_w, dilation_h, dilation_w);
  VQCNIR_CHECK_ARG(grad_out.dim() == 4 && grad_out.size(0) == g.batch && grad_out.size(1) == g.out_channels &&
                       grad_out.size(2) == g.out_h && grad_out.size(3) == g.out_w,
                   "grad_out", "must have the output's shape [", g.batch, ", ", g.out_channels, ", ", g.out_h, ", ",
                   g.out_w, "], got ", grad_out.sizes());
  check_index_range(g);
  const auto acc = compute_dtype(input.scalar_type());
  const at::Tensor in_t = input.to(acc).permute({0, 2, 3, 1}).contiguous();  // [B, H, W, C]
  const at::Tensor off_c = offset.to(acc).contiguous(), mask_c = mask.to(acc).contiguous();
  const at::Tensor gout = grad_out.to(acc).contiguous().view({g.batch, g.out_channels, g.pixels()});
  const at::Tensor w = weight_tap_major(weight, g, acc);
  const int64_t cin_g = g.channels / g.groups, cout_g = g.out_channels / g.groups, taps = g.taps();
  at::Tensor grad_input_t = at::zeros({g.batch, g.height, g.width, g.channels}, in_t.options());
  at::Tensor grad_offset = at::empty(off_c.sizes(), in_t.options());
  at::Tensor grad_mask = at::empty(mask_c.sizes(), in_t.options());
  at::Tensor grad_w_parts = at::zeros({std::max<int64_t>(1, g.batch), g.groups, cout_g, taps * cin_g}, in_t.options());
  const int64_t chunk = chunk_pixels(g);
  const int64_t cpg = g.channels_per_offset_group();
  const int64_t scatter_blocks = (cpg + deform_cpu::kScatterChannels - 1) / deform_cpu::kScatterChannels;
  AT_DISPATCH_FLOATING_TYPES(acc, "deform_conv2d_backward_cpu", [&] {
    const Loops<scalar_t> run = loops<scalar_t>();
    std::vector<Workspace<scalar_t>> spaces(at::get_num_threads(), Workspace<scalar_t>(g));
    for_each_image(g, [&](int64_t b) {
      Workspace<scalar_t>& space = spaces[at::get_thread_num()];
      at::Tensor& columns = space.buffer(space.columns, chunk, in_t.options());
      at::Tensor& grad_columns = space.buffer(space.grad_columns, chunk, in_t.options());
      scalar_t* grad_offset_b = grad_offset[b].mutable_data_ptr<scalar_t>();
      scalar_t* grad_mask_b = grad_mask[b].mutable_data_ptr<scalar_t>();
      scalar_t* grad_input_b = grad_input_t[b].mutable_data_ptr<scalar_t>();
      for (int64_t p0 = 0; p0 < g.pixels(); p0 += chunk) {
        const int64_t n = std::min(chunk, g.pixels() - p0);
        const Chunk<scalar_t> ch = space.chunk(in_t, off_c, mask_c, b, p0, n);
        scalar_t* cols = columns.mutable_data_ptr<scalar_t>();
        for_each_plan_block(n, [&](int64_t q0, int64_t count) { run.fill(ch, q0, count, cols); });
        const at::Tensor cols_t = chunk_columns(columns, g, n), grad_cols_t = chunk_columns(grad_columns, g, n);
        for (int64_t group = 0; group < g.groups; ++group) {
          const at::Tensor gout_g = gout[b].narrow(0, group * cout_g, cout_g).narrow(1, p0, n);
          grad_w_parts[b][group].addmm_(gout_g, cols_t[group]);
          at::Tensor grad_cols_g = grad_cols_t[group];
          at::mm_out(grad_cols_g, gout_g.t(), w[group]);
        }
        const scalar_t* gc = grad_columns.const_data_ptr<scalar_t>();
        for_each_plan_block(n, [&](int64_t q0, int64_t count) {
          run.coords(ch, gc, q0, count, grad_offset_b, grad_mask_b);
        });
        vqcnir::parallel_for(0, g.offset_groups * scatter_blocks, 1, [&](int64_t begin, int64_t end) {
          scalar_t sink[deform_cpu::kScatterChannels];
          for (int64_t item = begin; item < end; ++item) {
            const int64_t og = item / scatter_blocks;
            const int64_t c0 = og * cpg + (item % scatter_blocks) * deform_cpu::kScatterChannels;
            const int64_t c1 = std::min(c0 + deform_cpu::kScatterChannels, (og + 1) * cpg);
            run.scatter(ch, gc, og, c0, c1, grad_input_b, sink);
          }
        });
      }
    });
  });
  // The images' weight gradients, added in image order: the same sum whatever the thread count.
  const at::Tensor grad_w = grad_w_parts[0].clone();
  for (int64_t b = 1; b < g.batch; ++b) grad_w.add_(grad_w_parts[b]);
  // IntArrayRef spelled out: a bare {0, 2} matches both the OptionalIntArrayRef and the DimnameList overload
  // with torch 2.4-2.11 headers (an error there; scripts/check_torch_builds.sh compiles against them).
  const at::Tensor grad_bias = gout.sum(at::IntArrayRef{0, 2});
  const at::Tensor grad_weight =
      grad_w.view({g.groups, cout_g, taps, cin_g}).permute({0, 1, 3, 2}).reshape(weight.sizes());
  const at::Tensor grad_input = grad_input_t.permute({0, 3, 1, 2}).contiguous();
  return {grad_input.to(input.scalar_type()), grad_offset.to(offset.scalar_type()), grad_mask.to(mask.scalar_type()),
          grad_weight.to(weight.scalar_type()), grad_bias.to(bias.scalar_type())};
}

}  // namespace

TORCH_LIBRARY_IMPL(vqcnir_C, CPU, m) {
  m.impl("deform_conv2d", &deform_conv2d_cpu);
  m.impl("deform_conv2d_backward", &deform_conv2d_backward_cpu);
}

}  // namespace vqcnir
