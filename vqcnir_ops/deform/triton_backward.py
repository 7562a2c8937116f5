"""Triton backward of the deformable convolution: weight, offset, mask and input gradients.

Two kernels, neither stores the column matrix:

- ``_deform_conv2d_bwd_weight_kernel``: one program per ``[BLOCK_N, BLOCK_R]`` tile of the weight
  gradient of one conv group; it walks every image and pixel block, rebuilds the column tile
  (``_columns_tile``) and accumulates ``grad_out^T x columns`` with ``tl.dot``: a fixed-order reduction,
  deterministic. The bias gradient is ``grad_out.sum((0, 2, 3))`` (torch, deterministic).
- ``_deform_conv2d_bwd_data_kernel``: one program per (pixel block, offset group x tap, image). For each
  ``BLOCK_C`` slice of the offset group's channels it forms the column gradient
  ``grad_columns[p, c] = sum_n grad_out[n, p] * W[n, c, k]`` with ``tl.dot`` (weights of other conv
  groups masked to zero), then (a) reduces it against the four neighbours into grad_offset and grad_mask
  (fixed-order sums, deterministic) and (b) scatters ``mask * grad_columns * bilinear weight`` into the
  float32 input gradient with ``tl.atomic_add``: the order of those float additions, hence the last bits,
  varies from run to run on a GPU (the interpreter runs programs one by one, so it is reproducible).
  With ``deterministic=True`` the scatter is skipped and the input gradient comes from the reference
  (torch autograd through ``reference.py``), which is reproducible but slower and materialises columns.

Both GEMMs run in float32 (operands upcast for every input dtype) and follow torch's TF32 switch
(``vqcnir_ops._launch.fp32_dot_precision``): IEEE by default, TF32 where torch allows it for matmuls.
Grids: output-channel x reduction tiles x groups (weights); pixel blocks on axis 0, offset group x tap,
batch (inputs); ``_launch.launch`` splits axes 1 and 2 past 65,535.
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
from vqcnir_ops.deform.reference import Geometry, deform_conv2d_grads_ref
from vqcnir_ops.deform.triton_kernels import NUM_WARPS, SAMPLE_LOADS, _columns_tile, _neighbours, block, scalar_args


@triton.jit(do_not_specialize=GRID_BASE_ARGS)
def _deform_conv2d_bwd_weight_kernel(
    gout_ptr, in_ptr, off_ptr, mask_ptr, gw_ptr,
    B, C, H, W, Wo, L, COUT, G, CPG, K, KW, SH, SW, PH, PW, DH, DW,
    pid1_base, pid2_base,
    DOT_PRECISION: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_R: tl.constexpr,
):  # fmt: skip
    pid_n, pid_r, group = program_ids(pid1_base, pid2_base)
    cin_g = C // G
    cout_g = COUT // G
    red = cin_g * K
    n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    n_ok = n < cout_g
    r = pid_r * BLOCK_R + tl.arange(0, BLOCK_R)
    r_ok = r < red
    c = group * cin_g + r // K
    acc = tl.zeros([BLOCK_N, BLOCK_R], dtype=tl.float32)
    for b in range(0, B):
        for p0 in range(0, L, BLOCK_P):
            p = p0 + tl.arange(0, BLOCK_P)
            p_ok = p < L
            a = _columns_tile(in_ptr, off_ptr, mask_ptr, b, p // Wo, p % Wo, p, p_ok, c, r % K, r_ok,
                              C, H, W, L, CPG, K, KW, SH, SW, PH, PW, DH, DW)  # fmt: skip
            g_at = gout_ptr + (b * COUT + group * cout_g + n[:, None]).to(tl.int64) * L + p[None, :]
            g = tl.load(g_at, mask=n_ok[:, None] & p_ok[None, :], other=0.0).to(tl.float32)
            acc += tl.dot(g, a, input_precision=DOT_PRECISION)
    gw_at = gw_ptr + (group * cout_g + n[:, None]).to(tl.int64) * red + r[None, :]
    tl.store(gw_at, acc, mask=n_ok[:, None] & r_ok[None, :])


@triton.jit(do_not_specialize=GRID_BASE_ARGS)
def _deform_conv2d_bwd_data_kernel(
    gout_ptr, in_ptr, off_ptr, mask_ptr, w_ptr, gin_ptr, goff_ptr, gmask_ptr,
    C, H, W, Wo, L, COUT, G, CPG, K, KW, SH, SW, PH, PW, DH, DW,
    pid1_base, pid2_base,
    SCATTER: tl.constexpr, DOT_PRECISION: tl.constexpr,
    BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    pid_p, gk, b = program_ids(pid1_base, pid2_base)
    og = gk // K
    k = gk % K
    n_og = C // CPG
    cin_g = C // G
    cout_g = COUT // G
    p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    p_ok = p < L
    off_at = off_ptr + (b * 2 * n_og * K + 2 * gk).to(tl.int64) * L + p
    dy = tl.load(off_at, mask=p_ok, other=0.0).to(tl.float32)
    dx = tl.load(off_at + L, mask=p_ok, other=0.0).to(tl.float32)
    m = tl.load(mask_ptr + (b * n_og * K + gk).to(tl.int64) * L + p, mask=p_ok, other=0.0).to(tl.float32)
    y = ((p // Wo) * SH - PH + (k // KW) * DH).to(tl.float32) + dy
    x = ((p % Wo) * SW - PW + (k % KW) * DW).to(tl.float32) + dx
    grad_y = tl.zeros([BLOCK_P], dtype=tl.float32)
    grad_x = tl.zeros([BLOCK_P], dtype=tl.float32)
    grad_m = tl.zeros([BLOCK_P], dtype=tl.float32)
    for c0 in range(og * CPG, (og + 1) * CPG, BLOCK_C):
        c = c0 + tl.arange(0, BLOCK_C)
        c_ok = c < (og + 1) * CPG
        gcol = tl.zeros([BLOCK_P, BLOCK_C], dtype=tl.float32)
        for n0 in range(0, COUT, BLOCK_N):
            n = n0 + tl.arange(0, BLOCK_N)
            n_ok = n < COUT
            g = tl.load(gout_ptr + (b * COUT + n[None, :]).to(tl.int64) * L + p[:, None],
                        mask=p_ok[:, None] & n_ok[None, :], other=0.0).to(tl.float32)  # fmt: skip
            same = (n[:, None] // cout_g) == (c[None, :] // cin_g)
            w_at = w_ptr + (n[:, None].to(tl.int64) * cin_g + c[None, :] % cin_g) * K + k
            wt = tl.load(w_at, mask=same & n_ok[:, None] & c_ok[None, :], other=0.0).to(tl.float32)
            gcol += tl.dot(g, wt, input_precision=DOT_PRECISION)
        ok = p_ok[:, None] & c_ok[None, :]
        plane = (b * C + c[None, :]).to(tl.int64) * H * W
        yy = tl.broadcast_to(y[:, None], [BLOCK_P, BLOCK_C])
        xx = tl.broadcast_to(x[:, None], [BLOCK_P, BLOCK_C])
        v00, v01, v10, v11, ly, lx, y0, x0 = _neighbours(in_ptr, plane, yy, xx, ok, H, W)
        value = (1.0 - ly) * ((1.0 - lx) * v00 + lx * v01) + ly * ((1.0 - lx) * v10 + lx * v11)
        grad_m += tl.sum(gcol * value, axis=1)
        grad_y += tl.sum(gcol * ((1.0 - lx) * (v10 - v00) + lx * (v11 - v01)), axis=1)
        grad_x += tl.sum(gcol * ((1.0 - ly) * (v01 - v00) + ly * (v11 - v10)), axis=1)
        if SCATTER:
            # The neighbours of _neighbours: far-away and NaN samples have none inside.
            spread = gcol * m[:, None]
            for corner in tl.static_range(4):
                cy = y0 + corner // 2
                cx = x0 + corner % 2
                wy = ly if corner // 2 == 1 else 1.0 - ly
                wx = lx if corner % 2 == 1 else 1.0 - lx
                inside = ok & (cy >= 0) & (cy < H) & (cx >= 0) & (cx < W)
                tl.atomic_add(gin_ptr + plane + cy * W + cx, spread * wy * wx, mask=inside)
    goff_at = goff_ptr + (b * 2 * n_og * K + 2 * gk).to(tl.int64) * L + p
    tl.store(goff_at, m * grad_y, mask=p_ok)
    tl.store(goff_at + L, m * grad_x, mask=p_ok)
    tl.store(gmask_ptr + (b * n_og * K + gk).to(tl.int64) * L + p, grad_m, mask=p_ok)


def weight_grad_config(cout_per_group: int, dtype: torch.dtype, precision: str, target: Target) -> dict[str, int]:
    """Tiles, warps and pipeline depth of the weight-gradient kernel on ``target``.

    Its pixel loop loads the samples' tiles and a grad_out tile; two stages of float32 tiles need ~80 KB.
    An IEEE float32 dot (FMA) of float32 inputs keeps both operands in registers and spills with a
    pipeline, so it runs without one (it spilled 0.6 KB per thread with two stages, none with one).
    """
    block_p, block_n, block_r = 64, block(cout_per_group, 64), 32
    per_stage = (SAMPLE_LOADS * block_p * block_r + block_n * block_p) * dtype.itemsize
    deepest = 1 if dtype == torch.float32 and precision == "ieee" else 2
    stages = stages_that_fit(target, per_stage, fixed_bytes=4 * block_p * (block_r + block_n), deepest=deepest)
    return dict(BLOCK_P=block_p, BLOCK_N=block_n, BLOCK_R=block_r, num_warps=NUM_WARPS, num_stages=stages)


def data_grad_config(cout: int, channels_per_offset_group: int, target: Target) -> dict[str, int]:
    """Tiles, warps and pipeline depth of the input/offset/mask-gradient kernel on ``target``: its inner loop
    loads a grad_out tile and a weight tile (float32 after the load), ~12 KB per stage."""
    block_p, block_n, block_c = 64, block(cout, 32), block(channels_per_offset_group, 32)
    per_stage = 4 * (block_p * block_n + block_n * block_c)
    stages = stages_that_fit(target, per_stage, fixed_bytes=4 * block_p * block_c, deepest=2)
    return dict(BLOCK_P=block_p, BLOCK_N=block_n, BLOCK_C=block_c, num_warps=NUM_WARPS, num_stages=stages)


def deform_conv2d_backward_triton(
    grad_out: torch.Tensor, x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor,
    bias: torch.Tensor, geometry: Geometry, deterministic: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """Gradients of ``(x, offset, mask, weight, bias)``, each in its argument's dtype (parameters enter in float32)."""
    geo = scalar_args(x, offset, weight, geometry)
    gout, xc, off, m = (t.contiguous() for t in (grad_out, x, offset, mask))
    w = weight.to(torch.float32).contiguous()
    batch, cout, groups, red = x.shape[0], geo["COUT"], geo["G"], geo["C"] // geo["G"] * geo["K"]
    f32 = dict(dtype=torch.float32, device=x.device)
    grad_weight = torch.empty(cout, red, **f32)
    grad_input = torch.zeros(x.shape, **f32)
    grad_offset = torch.empty(offset.shape, **f32)
    grad_mask = torch.empty(mask.shape, **f32)

    target = launch_target(x.device)
    precision = fp32_dot_precision()
    config_w = weight_grad_config(cout // groups, x.dtype, precision, target)
    grid_w = (triton.cdiv(cout // groups, config_w["BLOCK_N"]), triton.cdiv(red, config_w["BLOCK_R"]), groups)
    launch(
        target, _deform_conv2d_bwd_weight_kernel, grid_w, gout, xc, off, m, grad_weight, batch, **geo,
        DOT_PRECISION=precision, **config_w,
    )  # fmt: skip
    config_d = data_grad_config(cout, geo["CPG"], target)
    grid_d = (triton.cdiv(geo["L"], config_d["BLOCK_P"]), offset.shape[1] // 2, batch)
    launch(
        target, _deform_conv2d_bwd_data_kernel, grid_d,
        gout, xc, off, m, w, grad_input, grad_offset, grad_mask, **geo, SCATTER=not deterministic,
        DOT_PRECISION=precision, **config_d,
    )  # fmt: skip
    if deterministic:
        grad_input = deform_conv2d_grads_ref(grad_out, x, offset, mask, weight, bias, geometry)[0]
    grad_bias = grad_out.float().sum((0, 2, 3))
    return (
        grad_input.to(x.dtype), grad_offset.to(offset.dtype), grad_mask.to(mask.dtype),
        grad_weight.view(weight.shape).to(weight.dtype), grad_bias.to(bias.dtype),
    )  # fmt: skip
