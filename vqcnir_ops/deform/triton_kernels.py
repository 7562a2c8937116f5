"""Triton implicit-GEMM forward of the deformable convolution (GPU, or CPU under ``TRITON_INTERPRET=1``).

The convolution is a GEMM ``out[b, n, p] = sum_r W[n, r] * A[b, p, r]`` over ``r = c * K + k`` (input
channel of the conv group, tap), where ``A`` (the "columns") holds the masked bilinear samples. ``A`` is
never stored: one program owns ``BLOCK_P`` output pixels x ``BLOCK_N`` output channels of one image and
conv group; for each ``BLOCK_R`` slice of the reduction it loads the slice's offsets and mask, gathers
the four neighbours of every sample, forms the ``[BLOCK_P, BLOCK_R]`` tile of ``A`` in registers and feeds
it to ``tl.dot`` with the ``[BLOCK_R, BLOCK_N]`` weight tile (float32 accumulation; for float32 inputs a
float32 dot that follows torch's TF32 switch, ``vqcnir_ops._launch.fp32_dot_precision``: IEEE by default,
TF32 where torch allows it for matmuls, as torchvision's cuBLAS GEMM does; tensor-core float16/bfloat16
dot with float32 accumulation for half inputs on a GPU; the interpreter, whose bfloat16 dot is not
reliable, uses the float32 dot for every dtype). Grid: pixel blocks on axis 0 (they grow with the image),
output-channel blocks on axis 1, batch x groups on axis 2 (split by ``_launch.launch`` past 65,535).

Contract: ``reference.py`` (torchvision's semantics). All tensors are made contiguous by the launcher.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from vqcnir_ops._launch import (
    GRID_BASE_ARGS,
    Target,
    fp32_dot_precision,
    launch,
    launch_target,
    program_ids,
    stages_that_fit,
)
from vqcnir_ops.deform.reference import Geometry


@triton.jit
def _neighbours(in_ptr, plane, y, x, ok, H, W):
    """The four neighbours (zero outside the image) of samples at (y, x) in planes starting at `plane`, the
    fractional parts (ly, lx) and the top-left neighbour (y0, x0). Far-away points (and +-inf) are clamped to
    just outside, where they read 0; a NaN position has no neighbour and NaN fractional parts, so its sample
    is NaN (reference.py's rule; explicit, since min/max of NaN differ between the interpreter and a GPU)."""
    nan = (y != y) | (x != x)
    y = tl.where(nan, -2.0, tl.minimum(tl.maximum(y, -2.0), H + 1.0))
    x = tl.where(nan, -2.0, tl.minimum(tl.maximum(x, -2.0), W + 1.0))
    y0f = tl.floor(y)
    x0f = tl.floor(x)
    ly = tl.where(nan, float("nan"), y - y0f)
    lx = tl.where(nan, float("nan"), x - x0f)
    y0 = y0f.to(tl.int32)
    x0 = x0f.to(tl.int32)
    y_lo = (y0 >= 0) & (y0 < H)
    y_hi = (y0 + 1 >= 0) & (y0 + 1 < H)
    x_lo = (x0 >= 0) & (x0 < W)
    x_hi = (x0 + 1 >= 0) & (x0 + 1 < W)
    at = in_ptr + plane + y0 * W + x0
    v00 = tl.load(at, mask=ok & y_lo & x_lo, other=0.0).to(tl.float32)
    v01 = tl.load(at + 1, mask=ok & y_lo & x_hi, other=0.0).to(tl.float32)
    v10 = tl.load(at + W, mask=ok & y_hi & x_lo, other=0.0).to(tl.float32)
    v11 = tl.load(at + W + 1, mask=ok & y_hi & x_hi, other=0.0).to(tl.float32)
    return v00, v01, v10, v11, ly, lx, y0, x0


@triton.jit
def _columns_tile(
    in_ptr, off_ptr, mask_ptr, b, ho, wo, p, p_ok, c, k, r_ok,
    C, H, W, L, CPG, K, KW, SH, SW, PH, PW, DH, DW,
):  # fmt: skip
    """``[BLOCK_P, BLOCK_R]`` tile of masked samples for pixels ``p`` (``ho, wo``) and rows (``c``, ``k``)."""
    gk = (c // CPG) * K + k
    ok = p_ok[:, None] & r_ok[None, :]
    off_at = off_ptr + (b * (2 * (C // CPG) * K) + 2 * gk[None, :]).to(tl.int64) * L + p[:, None]
    dy = tl.load(off_at, mask=ok, other=0.0).to(tl.float32)
    dx = tl.load(off_at + L, mask=ok, other=0.0).to(tl.float32)
    m = tl.load(mask_ptr + (b * ((C // CPG) * K) + gk[None, :]).to(tl.int64) * L + p[:, None], mask=ok, other=0.0)
    y = (ho * SH - PH)[:, None] + ((k // KW) * DH)[None, :] + dy
    x = (wo * SW - PW)[:, None] + ((k % KW) * DW)[None, :] + dx
    plane = (b * C + c[None, :]).to(tl.int64) * H * W
    v00, v01, v10, v11, ly, lx, _, _ = _neighbours(in_ptr, plane, y, x, ok, H, W)
    value = (1.0 - ly) * ((1.0 - lx) * v00 + lx * v01) + ly * ((1.0 - lx) * v10 + lx * v11)
    return value * m.to(tl.float32)


@triton.jit(do_not_specialize=GRID_BASE_ARGS)
def _deform_conv2d_fwd_kernel(
    in_ptr, off_ptr, mask_ptr, w_ptr, bias_ptr, out_ptr,
    C, H, W, Wo, L, COUT, G, CPG, K, KW, SH, SW, PH, PW, DH, DW,
    pid1_base, pid2_base,
    LOW_PRECISION: tl.constexpr, DOT_PRECISION: tl.constexpr,
    BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_R: tl.constexpr,
):  # fmt: skip
    pid_p, pid_n, pid_bg = program_ids(pid1_base, pid2_base)
    b = pid_bg // G
    group = pid_bg % G
    cin_g = C // G
    cout_g = COUT // G
    red = cin_g * K
    p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    p_ok = p < L
    ho = p // Wo
    wo = p % Wo
    n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    n_ok = n < cout_g
    acc = tl.zeros([BLOCK_P, BLOCK_N], dtype=tl.float32)
    for r0 in range(0, red, BLOCK_R):
        r = r0 + tl.arange(0, BLOCK_R)
        r_ok = r < red
        c = group * cin_g + r // K
        a = _columns_tile(in_ptr, off_ptr, mask_ptr, b, ho, wo, p, p_ok, c, r % K, r_ok,
                          C, H, W, L, CPG, K, KW, SH, SW, PH, PW, DH, DW)  # fmt: skip
        w_at = w_ptr + (group * cout_g + n[None, :]).to(tl.int64) * red + r[:, None]
        wt = tl.load(w_at, mask=r_ok[:, None] & n_ok[None, :], other=0.0)
        if LOW_PRECISION:
            acc += tl.dot(a.to(wt.dtype), wt)
        else:
            acc += tl.dot(a, wt.to(tl.float32), input_precision=DOT_PRECISION)
    acc += tl.load(bias_ptr + group * cout_g + n, mask=n_ok, other=0.0).to(tl.float32)[None, :]
    out_at = out_ptr + (b * COUT + group * cout_g + n[None, :]).to(tl.int64) * L + p[:, None]
    tl.store(out_at, acc.to(out_ptr.dtype.element_ty), mask=p_ok[:, None] & n_ok[None, :])


def block(size: int, cap: int) -> int:
    """Power-of-two block for a dimension of ``size``, at least 16 (``tl.dot``'s minimum), at most ``cap``."""
    return max(16, min(cap, triton.next_power_of_2(max(1, size))))


# 8 warps for every deformable-conv kernel: a [64, 32] tile of samples, with its offsets, mask, four gathered
# neighbours and their addresses, is live at once; with 4 warps ptxas spilled 0.5-7 KB per thread (compile gate).
NUM_WARPS = 8
# Loads of one step of a sampling loop: the two offsets, the mask and four neighbours of every sample.
SAMPLE_LOADS = 7


def forward_config(cout_per_group: int, dtype: torch.dtype, target: Target) -> dict[str, int]:
    """Tiles, warps and pipeline depth of the forward kernel on ``target``.

    Triton pipelines every load of the reduction loop (the samples' tiles and the weight tile); three
    stages of float32 tiles need ~136 KB of shared memory, which sm_80/sm_90 have and sm_86/sm_89 (99 KB)
    do not: there the pipeline is two deep (~72 KB).
    """
    block_p, block_n, block_r = 64, block(cout_per_group, 64), 32
    per_stage = (SAMPLE_LOADS * block_p * block_r + block_r * block_n) * dtype.itemsize
    stages = stages_that_fit(target, per_stage, fixed_bytes=4 * block_p * block_r)
    return dict(BLOCK_P=block_p, BLOCK_N=block_n, BLOCK_R=block_r, num_warps=NUM_WARPS, num_stages=stages)


def scalar_args(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor, geometry: Geometry) -> dict[str, int]:
    """Scalar kernel arguments shared by the forward and backward launchers."""
    batch, channels, height, width = x.shape
    out_channels, in_per_group, kh, kw = weight.shape
    offset_groups = offset.shape[1] // (2 * kh * kw)
    (sh, sw), (ph, pw), (dh, dw) = geometry
    return dict(
        C=channels, H=height, W=width, Wo=offset.shape[3], L=offset.shape[2] * offset.shape[3], COUT=out_channels,
        G=channels // in_per_group, CPG=channels // offset_groups, K=kh * kw, KW=kw, SH=sh, SW=sw, PH=ph, PW=pw,
        DH=dh, DW=dw,
    )  # fmt: skip


def deform_conv2d_triton(
    x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
    geometry: Geometry,
) -> torch.Tensor:  # fmt: skip
    """Launch the forward kernel; returns ``[B, Cout, Ho, Wo]`` in ``x``'s dtype.

    Parameters enter in float32, except on a GPU's tensor-core path for float16/bfloat16 activations,
    where the weight takes the activations' dtype (the one rounding the dtype policy allows,
    ``vqcnir_ops._dtypes``).
    """
    geo = scalar_args(x, offset, weight, geometry)
    target = launch_target(x.device)
    low_precision = not target.interpreter and x.dtype != torch.float32
    x, offset, mask = x.contiguous(), offset.contiguous(), mask.contiguous()
    weight = weight.to(x.dtype if low_precision else torch.float32).contiguous()
    bias = bias.to(torch.float32).contiguous()
    batch, cout, groups = x.shape[0], geo["COUT"], geo["G"]
    # The interpreter rounds float32 -> bfloat16 stores by truncation: there, store float32 and let torch round.
    out_dtype = torch.float32 if target.interpreter else x.dtype
    out = torch.empty(batch, cout, offset.shape[2], offset.shape[3], dtype=out_dtype, device=x.device)
    if out.numel() == 0:
        return out.to(x.dtype)
    config = forward_config(cout // groups, x.dtype, target)
    grid = (triton.cdiv(geo["L"], config["BLOCK_P"]), triton.cdiv(cout // groups, config["BLOCK_N"]), batch * groups)
    launch(
        target, _deform_conv2d_fwd_kernel, grid,
        x, offset, mask, weight, bias, out, **geo,
        LOW_PRECISION=low_precision, DOT_PRECISION=fp32_dot_precision(), **config,
    )  # fmt: skip
    return out.to(x.dtype)
