"""Triton phase kernels of the bi-directional channel attention (GPU, or CPU under ``TRITON_INTERPRET=1``).

Both kernels work on ``[B, heads, C, N]`` tensors with any strides (offsets in int64: N may pass 2**31
elements per tensor at 4096 x 4096 pixels and 128 channels); ``C`` per head is at most 128.

- ``_bca_gram_kernel`` (phase 1): one program owns a ``BLOCK_M x BLOCK_K`` tile of ``x @ y^T`` for one
  (batch, head) and one contiguous split of N; it walks its split in ``BLOCK_N`` steps with ``tl.dot``
  (float32 accumulation) and also sums the squares of the rows it loads. Splits write partial sums,
  which the launcher adds in split order: deterministic, no atomics.
- ``_bca_mix_kernel`` (phase 2): one program owns ``BLOCK_M`` rows x ``BLOCK_N`` columns of
  ``w @ z + a * x`` for one (batch, head); ``w`` is the tiny float32 C x C map. For float16/bfloat16 ``z``
  and a bounded map (the softmax times the gains: forward outputs and value gradients) the map is split
  into ``hi + lo`` in ``z``'s dtype and applied with two tensor-core dots (float32 accumulation), which
  keeps ~16-22 bits of it; the query gradients (``a`` given) cancel two large terms and their map is
  unbounded (``1 / eps`` for zero rows), so they use float32 dots on upcast ``z``, as float32 does.

TF32: every float32 ``tl.dot`` here (float32 inputs, and the query gradients of half inputs, whose
operands are upcast) follows torch's switch (``vqcnir_ops._launch.fp32_dot_precision``): IEEE by default,
TF32 where ``torch.backends.cuda.matmul.allow_tf32`` / ``set_float32_matmul_precision("high")`` allow it,
as the official code's ``torch.matmul`` does. Half inputs use tensor-core dots with float32 accumulation.
Grids: N on axis 0 where it is long (mix); (batch, head) on axis 2, split by ``_launch.launch`` past 65,535.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from vqcnir_ops._launch import GRID_BASE_ARGS, Target, fp32_dot_precision, launch, launch_target, program_ids
from vqcnir_ops.attention.staged import Phases

MAX_SPLITS = 16  # partial sums per (batch, head) in phase 1


@triton.jit(do_not_specialize=GRID_BASE_ARGS)
def _bca_gram_kernel(
    x_ptr, y_ptr, gram_ptr, sqx_ptr, sqy_ptr,
    HEADS, BH, C, N, n_per_split,
    sxb, sxh, sxc, sxn, syb, syh, syc, syn,
    pid1_base, pid2_base,
    UPCAST_DOT: tl.constexpr, DOT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    split, tile, pid_bh = program_ids(pid1_base, pid2_base)
    tiles_k = tl.cdiv(C, BLOCK_K)
    tile_m = tile // tiles_k
    tile_k = tile % tiles_k
    bh = pid_bh.to(tl.int64)
    b, h = bh // HEADS, bh % HEADS
    rows_m = tile_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rows_k = tile_k * BLOCK_K + tl.arange(0, BLOCK_K)
    ok_m, ok_k = rows_m < C, rows_k < C
    x_rows = x_ptr + b * sxb + h * sxh + rows_m.to(tl.int64)[:, None] * sxc
    y_rows = y_ptr + b * syb + h * syh + rows_k.to(tl.int64)[:, None] * syc

    acc = tl.zeros([BLOCK_M, BLOCK_K], dtype=tl.float32)
    sqx = tl.zeros([BLOCK_M], dtype=tl.float32)
    sqy = tl.zeros([BLOCK_K], dtype=tl.float32)
    n_start = split.to(tl.int64) * n_per_split
    n_end = tl.minimum(n_start + n_per_split, N)
    for n0 in range(n_start, n_end, BLOCK_N):
        cols = n0 + tl.arange(0, BLOCK_N).to(tl.int64)
        ok_n = cols < n_end
        xt = tl.load(x_rows + cols[None, :] * sxn, mask=ok_m[:, None] & ok_n[None, :], other=0.0)
        yt = tl.load(y_rows + cols[None, :] * syn, mask=ok_k[:, None] & ok_n[None, :], other=0.0)
        xf, yf = xt.to(tl.float32), yt.to(tl.float32)
        if UPCAST_DOT:
            acc += tl.dot(xf, tl.trans(yf), input_precision="ieee")
        else:
            acc += tl.dot(xt, tl.trans(yt), input_precision=DOT_PRECISION)
        sqx += tl.sum(xf * xf, axis=1)
        sqy += tl.sum(yf * yf, axis=1)

    out = (split * BH + bh) * C  # partials laid out [splits, B * heads, C, (C)]
    tl.store(gram_ptr + (out + rows_m[:, None]) * C + rows_k[None, :], acc, mask=ok_m[:, None] & ok_k[None, :])
    if tile_k == 0:
        tl.store(sqx_ptr + out + rows_m, sqx, mask=ok_m)
    if tile_m == 0:
        tl.store(sqy_ptr + out + rows_k, sqy, mask=ok_k)


@triton.jit(do_not_specialize=GRID_BASE_ARGS)
def _bca_mix_kernel(
    w_ptr, z_ptr, x_ptr, a_ptr, out_ptr,
    HEADS, C, N,
    szb, szh, szc, szn, sxb, sxh, sxc, sxn,
    pid1_base, pid2_base,
    HAS_X: tl.constexpr, HAS_A: tl.constexpr, SPLIT_DOT: tl.constexpr, UPCAST_DOT: tl.constexpr,
    DOT_PRECISION: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    pid_n, pid_m, pid_bh = program_ids(pid1_base, pid2_base)
    cols = pid_n.to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    bh = pid_bh.to(tl.int64)
    b, h = bh // HEADS, bh % HEADS
    ok_m, ok_n = rows < C, cols < N
    w_rows = w_ptr + (bh * C + rows[:, None]) * C
    z_base = z_ptr + b * szb + h * szh + cols[None, :] * szn

    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for k0 in range(0, C, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        ok_k = ks < C
        wt = tl.load(w_rows + ks[None, :], mask=ok_m[:, None] & ok_k[None, :], other=0.0)
        zt = tl.load(z_base + ks.to(tl.int64)[:, None] * szc, mask=ok_k[:, None] & ok_n[None, :], other=0.0)
        if SPLIT_DOT:  # w = hi + lo in z's dtype: two tensor-core dots carry ~16-22 bits of w
            w_hi = wt.to(zt.dtype)
            w_lo = (wt - w_hi.to(tl.float32)).to(zt.dtype)
            if UPCAST_DOT:  # the same products, in float32
                zf = zt.to(tl.float32)
                acc += tl.dot(w_hi.to(tl.float32), zf, input_precision="ieee")
                acc += tl.dot(w_lo.to(tl.float32), zf, input_precision="ieee")
            else:
                acc += tl.dot(w_hi, zt)
                acc += tl.dot(w_lo, zt)
        else:
            acc += tl.dot(wt, zt.to(tl.float32), input_precision=DOT_PRECISION)
    mask = ok_m[:, None] & ok_n[None, :]
    if HAS_X:
        xt = tl.load(
            x_ptr + b * sxb + h * sxh + rows.to(tl.int64)[:, None] * sxc + cols[None, :] * sxn, mask=mask, other=0.0
        ).to(tl.float32)
        if HAS_A:
            xt = xt * tl.load(a_ptr + bh * C + rows, mask=ok_m, other=0.0)[:, None]
        acc += xt
    out = out_ptr + (bh * C + rows.to(tl.int64)[:, None]) * N + cols[None, :]
    tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=mask)


def _upcast_dot(t: torch.Tensor, target: Target) -> bool:
    """Triton 3.9's interpreter gets bfloat16 ``tl.dot`` wrong: there, the kernels upcast the (already
    rounded) operands to float32 first, which gives the same exact products."""
    return t.dtype == torch.bfloat16 and target.interpreter


def _block(size: int, cap: int) -> int:
    """Power of two covering ``size``, between 16 (tl.dot's minimum) and ``cap``."""
    return max(16, min(cap, triton.next_power_of_2(size)))


def gram_triton(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x @ y^T, |x|^2, |y|^2)`` in float32 for ``[B, heads, C, N]`` float32/float16/bfloat16 inputs."""
    batch, heads, channels, n = x.shape
    bh = batch * heads
    if bh == 0:  # empty batch: nothing to launch
        f32 = dict(dtype=torch.float32, device=x.device)
        return torch.zeros(batch, heads, channels, channels, **f32), *(torch.zeros(batch, heads, channels, **f32),) * 2
    target = launch_target(x.device)
    block_m = block_k = _block(channels, 64)
    fp32_dot = x.dtype == torch.float32 or _upcast_dot(x, target)
    # A float32 dot keeps its operands in registers: a 32-column step and 8 warps (64 x 64 x 64 with 4 warps
    # spilled ~1 KB per thread on sm_80); half inputs take tensor cores at 64 columns and 4 warps.
    block_n = 32 if channels > 64 or fp32_dot else 64
    tiles = triton.cdiv(channels, block_m) * triton.cdiv(channels, block_k)
    # Enough programs to fill a GPU (~1024) without splitting short rows: a split gets >= 4 column blocks.
    splits = max(1, min(MAX_SPLITS, triton.cdiv(n, 4 * block_n), triton.cdiv(1024, bh * tiles)))
    n_per_split = triton.cdiv(triton.cdiv(n, splits), block_n) * block_n
    splits = triton.cdiv(n, n_per_split)
    gram = torch.empty(splits, bh, channels, channels, dtype=torch.float32, device=x.device)
    sqx = torch.empty(splits, bh, channels, dtype=torch.float32, device=x.device)
    sqy = torch.empty_like(sqx)
    launch(
        target, _bca_gram_kernel, (splits, tiles, bh),
        x, y, gram, sqx, sqy, heads, bh, channels, n, n_per_split, *x.stride(), *y.stride(),
        UPCAST_DOT=_upcast_dot(x, target), DOT_PRECISION=fp32_dot_precision(),
        BLOCK_M=block_m, BLOCK_K=block_k, BLOCK_N=block_n, num_warps=8 if fp32_dot else 4,
    )  # fmt: skip
    shape = (batch, heads, channels)
    return tuple(_sum_in_order(t).view(*shape, *t.shape[3:]) for t in (gram, sqx, sqy))  # type: ignore[return-value]


def _sum_in_order(partials: torch.Tensor) -> torch.Tensor:
    """Sum over the leading (split) dimension, split 0 first: the same order on every run."""
    total = partials[0].clone()
    for part in partials[1:]:
        total += part
    return total


def mix_triton(w: torch.Tensor, z: torch.Tensor, x: torch.Tensor | None, a: torch.Tensor | None) -> torch.Tensor:
    """``w @ z + a * x`` (``a`` 1 if None, ``x`` 0 if None) as a contiguous ``[B, heads, C, N]`` in z's dtype."""
    batch, heads, channels, n = z.shape
    w = w.to(torch.float32).contiguous()
    out = torch.empty(z.shape, dtype=z.dtype, device=z.device)
    if out.numel() == 0:
        return out
    block_m = _block(channels, 64)
    block_k = _block(channels, 32)
    block_n = 64
    has_x, has_a = x is not None, a is not None
    x_arg = x if has_x else z
    a_arg = a.to(torch.float32).contiguous() if has_a else w
    target = launch_target(z.device)
    split_dot = z.dtype != torch.float32 and not has_a
    launch(
        target, _bca_mix_kernel, (triton.cdiv(n, block_n), triton.cdiv(channels, block_m), batch * heads),
        w, z, x_arg, a_arg, out, heads, channels, n, *z.stride(), *x_arg.stride(),
        HAS_X=has_x, HAS_A=has_a, SPLIT_DOT=split_dot, UPCAST_DOT=_upcast_dot(z, target),
        DOT_PRECISION=fp32_dot_precision(), BLOCK_M=block_m, BLOCK_K=block_k, BLOCK_N=block_n,
        num_warps=4 if split_dot else 8,  # float32 dots: 8 warps, as in gram_triton
    )  # fmt: skip
    return out


TRITON_PHASES = Phases(gram_triton, mix_triton)
