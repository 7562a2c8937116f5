"""Triton phase kernels of the bi-directional channel attention (GPU, or CPU under ``TRITON_INTERPRET=1``).

Both kernels work on ``[B, heads, C, N]`` tensors with any strides (offsets in int64: N may pass 2**31
elements per tensor at 4096 x 4096 pixels and 128 channels); ``C`` per head is at most 128.

- ``_bca_gram_kernel`` (phase 1): one program owns a ``BLOCK_M x BLOCK_K`` tile of ``x @ y^T`` for one
  (batch, head) and one contiguous split of N; it walks its split in ``BLOCK_N`` steps with ``tl.dot``
  (float32 accumulation, IEEE for float32 inputs) and also sums the squares of the rows it loads. Splits
  write partial sums, which the launcher adds in split order: deterministic, no atomics.
- ``_bca_mix_kernel`` (phase 2): one program owns ``BLOCK_M`` rows x ``BLOCK_N`` columns of
  ``w @ z + a * x`` for one (batch, head); ``w`` is the tiny float32 C x C map. For float16/bfloat16 ``z``
  and a bounded map (the softmax times the gains: forward outputs and value gradients) the map is split
  into ``hi + lo`` in ``z``'s dtype and applied with two tensor-core dots (float32 accumulation), which
  keeps ~16-22 bits of it; the query gradients (``a`` given) cancel two large terms and their map is
  unbounded (``1 / eps`` for zero rows), so they use IEEE float32 dots on upcast ``z``, as float32 does.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

MAX_SPLITS = 16  # partial sums per (batch, head) in phase 1


@triton.jit
def _bca_gram_kernel(
    x_ptr, y_ptr, gram_ptr, sqx_ptr, sqy_ptr,
    HEADS, C, N, n_per_split,
    sxb, sxh, sxc, sxn, syb, syh, syc, syn,
    UPCAST_DOT: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    split = tl.program_id(0)
    tiles_k = tl.cdiv(C, BLOCK_K)
    tile_m = tl.program_id(1) // tiles_k
    tile_k = tl.program_id(1) % tiles_k
    bh = tl.program_id(2).to(tl.int64)
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
            acc += tl.dot(xt, tl.trans(yt), input_precision="ieee")
        sqx += tl.sum(xf * xf, axis=1)
        sqy += tl.sum(yf * yf, axis=1)

    out = (split * tl.num_programs(2) + bh) * C  # partials laid out [splits, B * heads, C, (C)]
    tl.store(gram_ptr + (out + rows_m[:, None]) * C + rows_k[None, :], acc, mask=ok_m[:, None] & ok_k[None, :])
    if tile_k == 0:
        tl.store(sqx_ptr + out + rows_m, sqx, mask=ok_m)
    if tile_m == 0:
        tl.store(sqy_ptr + out + rows_k, sqy, mask=ok_k)


@triton.jit
def _bca_mix_kernel(
    w_ptr, z_ptr, x_ptr, a_ptr, out_ptr,
    HEADS, C, N,
    szb, szh, szc, szn, sxb, sxh, sxc, sxn,
    HAS_X: tl.constexpr, HAS_A: tl.constexpr, SPLIT_DOT: tl.constexpr, UPCAST_DOT: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    cols = tl.program_id(0).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    rows = tl.program_id(1) * BLOCK_M + tl.arange(0, BLOCK_M)
    bh = tl.program_id(2).to(tl.int64)
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
            acc += tl.dot(wt, zt.to(tl.float32), input_precision="ieee")
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


def _upcast_dot(t: torch.Tensor) -> bool:
    """Triton 3.9's interpreter gets bfloat16 ``tl.dot`` wrong: there, the kernels upcast the (already
    rounded) operands to float32 first, which gives the same exact products."""
    return t.dtype == torch.bfloat16 and not t.is_cuda


def _block(size: int, cap: int) -> int:
    """Power of two covering ``size``, between 16 (tl.dot's minimum) and ``cap``."""
    return max(16, min(cap, triton.next_power_of_2(size)))


def gram_triton(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x @ y^T, |x|^2, |y|^2)`` in float32 for ``[B, heads, C, N]`` float32/float16/bfloat16 inputs."""
    batch, heads, channels, n = x.shape
    bh = batch * heads
    block_m = block_k = _block(channels, 64)
    block_n = 64 if channels <= 64 else 32
    tiles = triton.cdiv(channels, block_m) * triton.cdiv(channels, block_k)
    # Enough programs to fill a GPU (~1024) without splitting short rows: a split gets >= 4 column blocks.
    splits = max(1, min(MAX_SPLITS, triton.cdiv(n, 4 * block_n), triton.cdiv(1024, bh * tiles)))
    n_per_split = triton.cdiv(triton.cdiv(n, splits), block_n) * block_n
    splits = triton.cdiv(n, n_per_split)
    gram = torch.empty(splits, bh, channels, channels, dtype=torch.float32, device=x.device)
    sqx = torch.empty(splits, bh, channels, dtype=torch.float32, device=x.device)
    sqy = torch.empty_like(sqx)
    _bca_gram_kernel[(splits, tiles, bh)](
        x, y, gram, sqx, sqy, heads, channels, n, n_per_split, *x.stride(), *y.stride(),
        UPCAST_DOT=_upcast_dot(x), BLOCK_M=block_m, BLOCK_K=block_k, BLOCK_N=block_n, num_warps=4,
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
    block_m = _block(channels, 64)
    block_k = _block(channels, 32)
    block_n = 64
    has_x, has_a = x is not None, a is not None
    x_arg = x if has_x else z
    a_arg = a.to(torch.float32).contiguous() if has_a else w
    grid = (triton.cdiv(n, block_n), triton.cdiv(channels, block_m), batch * heads)
    _bca_mix_kernel[grid](
        w, z, x_arg, a_arg, out, heads, channels, n, *z.stride(), *x_arg.stride(),
        HAS_X=has_x, HAS_A=has_a, SPLIT_DOT=z.dtype != torch.float32 and not has_a, UPCAST_DOT=_upcast_dot(z),
        BLOCK_M=block_m, BLOCK_K=block_k, BLOCK_N=block_n, num_warps=4,
    )  # fmt: skip
    return out
