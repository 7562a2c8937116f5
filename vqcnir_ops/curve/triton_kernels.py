"""Triton kernels of the fused curve mapping (GPU, or CPU under ``TRITON_INTERPRET=1``).

Forward: one program owns ``BLOCK_C`` channels x ``BLOCK_P`` pixels of one (batch, split); it reads x
and the split's n curve maps once, iterates the curve in registers and writes y once.

Backward: one program owns ``BLOCK_P`` pixels of one (batch, split) and walks all Cs channels of the
split in ``BLOCK_C`` chunks, so the reduction of ``da`` over channels stays inside the program, in a
fixed order (deterministic, no atomics). Only x and a are read back: the states ``y_{k-1}`` are
recomputed in registers from ``clamp(x)`` for every k (n(n-1)/2 curve steps, cheap for n <= 16 next
to the memory traffic). ``da`` accumulates in an ``[N_PAD, BLOCK_P]`` float32 tile, one row per map.

Pixels are addressed through (H, W) strides, so any strided input works without a copy. Offsets are
int64. Grid axis 0 walks the pixels (it grows with the image and allows 2**31 - 1 programs); (batch,
split) and channel blocks are axes 1 and 2, split into several launches by ``vqcnir_ops._launch.launch``
where they pass CUDA's 65,535. No ``tl.dot``. Contract: ``reference.py``.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from vqcnir_ops._launch import GRID_BASE_ARGS, Target, launch, launch_target, program_ids


@triton.jit
def _pixel_offsets(pix, W, stride_h, stride_w):
    return (pix // W) * stride_h + (pix % W) * stride_w


@triton.jit
def _clamp_unit(x):
    # where-based, so NaN stays NaN (tl.minimum/maximum may drop it)
    return tl.where(x < 0.0, 0.0, tl.where(x > 1.0, 1.0, x))


@triton.jit(do_not_specialize=GRID_BASE_ARGS)
def _curve_map_fwd_kernel(
    x_ptr, a_ptr, y_ptr,
    S, Cs, P, W,
    sx_b, sx_s, sx_c, sx_h, sx_w,
    sa_b, sa_s, sa_n, sa_h, sa_w,
    pid1_base, pid2_base,
    N: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_P: tl.constexpr,
):  # fmt: skip
    pid_p, pid_bs, pid_c = program_ids(pid1_base, pid2_base)
    bs = pid_bs.to(tl.int64)
    b, s = bs // S, bs % S
    pix = pid_p.to(tl.int64) * BLOCK_P + tl.arange(0, BLOCK_P)
    chan = pid_c.to(tl.int64) * BLOCK_C + tl.arange(0, BLOCK_C)
    pix_ok, chan_ok = pix < P, chan < Cs
    mask = chan_ok[:, None] & pix_ok[None, :]

    x_offs = b * sx_b + s * sx_s + chan[:, None] * sx_c + _pixel_offsets(pix, W, sx_h, sx_w)[None, :]
    y = _clamp_unit(tl.load(x_ptr + x_offs, mask=mask, other=0.0).to(tl.float32))
    a_base = a_ptr + b * sa_b + s * sa_s + _pixel_offsets(pix, W, sa_h, sa_w)
    for k in tl.static_range(N):
        a_k = tl.load(a_base + k * sa_n, mask=pix_ok, other=0.0).to(tl.float32)
        y = y + a_k[None, :] * y * (1.0 - y)
    # y is contiguous [B, S, Cs, P]
    y_offs = (bs * Cs + chan[:, None]) * P + pix[None, :]
    tl.store(y_ptr + y_offs, y.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit(do_not_specialize=GRID_BASE_ARGS)
def _curve_map_bwd_kernel(
    dy_ptr, x_ptr, a_ptr, dx_ptr, da_ptr,
    S, Cs, P, W,
    sg_b, sg_s, sg_c, sg_h, sg_w,
    sx_b, sx_s, sx_c, sx_h, sx_w,
    sa_b, sa_s, sa_n, sa_h, sa_w,
    pid1_base, pid2_base,
    N: tl.constexpr, N_PAD: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_P: tl.constexpr,
):  # fmt: skip
    pid_p, pid_bs, _ = program_ids(pid1_base, pid2_base)
    bs = pid_bs.to(tl.int64)
    b, s = bs // S, bs % S
    pix = pid_p.to(tl.int64) * BLOCK_P + tl.arange(0, BLOCK_P)
    pix_ok = pix < P
    a_base = a_ptr + b * sa_b + s * sa_s + _pixel_offsets(pix, W, sa_h, sa_w)
    x_pix = _pixel_offsets(pix, W, sx_h, sx_w)
    g_pix = _pixel_offsets(pix, W, sg_h, sg_w)
    rows = tl.arange(0, N_PAD)
    da = tl.zeros([N_PAD, BLOCK_P], dtype=tl.float32)

    for c0 in range(0, Cs, BLOCK_C):
        chan = c0 + tl.arange(0, BLOCK_C).to(tl.int64)
        mask = (chan < Cs)[:, None] & pix_ok[None, :]
        x = tl.load(x_ptr + b * sx_b + s * sx_s + chan[:, None] * sx_c + x_pix[None, :], mask=mask, other=0.0)
        x = x.to(tl.float32)
        g = tl.load(dy_ptr + b * sg_b + s * sg_s + chan[:, None] * sg_c + g_pix[None, :], mask=mask, other=0.0)
        g = g.to(tl.float32)
        y0 = _clamp_unit(x)
        # Map k acts on state y_k (0-based), recomputed from y_0. Runtime loops, not static_range: unrolled,
        # the n(n-1)/2 steps of n = 16 make code that ptxas can only fit by spilling kilobytes per thread.
        for kk in range(0, N):
            k = N - 1 - kk
            y = y0
            for j in range(0, k):
                a_j = tl.load(a_base + j * sa_n, mask=pix_ok, other=0.0).to(tl.float32)
                y = y + a_j[None, :] * y * (1.0 - y)
            a_k = tl.load(a_base + k * sa_n, mask=pix_ok, other=0.0).to(tl.float32)
            contrib = tl.sum(tl.where(mask, g * y * (1.0 - y), 0.0), axis=0)
            da += tl.where(rows[:, None] == k, contrib[None, :], 0.0)
            g = g * (1.0 + a_k[None, :] * (1.0 - 2.0 * y))
        dx = tl.where((x > 0.0) & (x <= 1.0), g, 0.0)
        # dx is contiguous [B, S, Cs, P]
        tl.store(dx_ptr + (bs * Cs + chan[:, None]) * P + pix[None, :], dx.to(dx_ptr.dtype.element_ty), mask=mask)

    # da is contiguous [B, S, N, P]
    da_mask = (rows < N)[:, None] & pix_ok[None, :]
    tl.store(da_ptr + (bs * N + rows[:, None]) * P + pix[None, :], da.to(da_ptr.dtype.element_ty), mask=da_mask)


def block_sizes(channels: int, pixels: int, elements: int = 2048) -> tuple[int, int]:
    """(BLOCK_C, BLOCK_P): about ``elements`` per program, pixels (the contiguous axis) first. The kernels
    use no shared memory to speak of (no tl.dot), so the setting is the same on every target."""
    block_p = min(256, max(16, triton.next_power_of_2(pixels)))
    block_c = min(max(1, elements // block_p), triton.next_power_of_2(channels))
    return block_c, block_p


# The backward holds x, dy, two curve states and their int64 addresses per element: 1024-element chunks keep
# it near 100 registers (2048 took 130-150), leaving room for more resident warps on a memory-bound kernel.
BACKWARD_ELEMENTS = 1024


def grid(batch_splits: int, channels: int, pixels: int, block_c: int, block_p: int) -> tuple[int, int, int]:
    """Pixel blocks on axis 0 (the axis that may grow past 65,535), (batch, split) pairs on axis 1, channel
    blocks on axis 2 (the backward, which loops over the channels, takes one)."""
    return triton.cdiv(pixels, block_p), batch_splits, triton.cdiv(channels, block_c)


def _strides5(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(t.stride())


def _output(shape: torch.Size, dtype: torch.dtype, device: torch.device, target: Target) -> torch.Tensor:
    """Output buffer. Triton's interpreter truncates float32 -> bfloat16 casts (compiled Triton rounds to
    nearest even), so under the interpreter bfloat16 outputs are written in float32 and rounded by torch
    in ``_finish``."""
    if dtype == torch.bfloat16 and target.interpreter:
        dtype = torch.float32
    return torch.empty(shape, dtype=dtype, device=device)


def _finish(out: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return out if out.dtype == dtype else out.to(dtype)


def curve_map_fwd_triton(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """``x [B, S, Cs, H, W]``, ``a [B, S, n, H, W]`` (any strides) -> contiguous ``y`` like x."""
    B, S, Cs, H, W = x.shape
    n = a.shape[2]
    target = launch_target(x.device)
    y = _output(x.shape, x.dtype, x.device, target)
    if y.numel() == 0:
        return _finish(y, x.dtype)
    block_c, block_p = block_sizes(Cs, H * W)
    launch(
        target, _curve_map_fwd_kernel, grid(B * S, Cs, H * W, block_c, block_p),
        x, a, y, S, Cs, H * W, W, *_strides5(x), *_strides5(a),
        N=n, BLOCK_C=block_c, BLOCK_P=block_p, num_warps=4,
    )  # fmt: skip
    return _finish(y, x.dtype)


def curve_map_bwd_triton(dy: torch.Tensor, x: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Fused backward: contiguous ``(dx like x, da like a)``."""
    B, S, Cs, H, W = x.shape
    n = a.shape[2]
    target = launch_target(x.device)
    dx = _output(x.shape, x.dtype, x.device, target)
    da = _output(a.shape, a.dtype, a.device, target)
    if B * S * H * W == 0:
        return _finish(dx, x.dtype), _finish(da, a.dtype)
    if Cs == 0:
        return _finish(dx, x.dtype), _finish(da.zero_(), a.dtype)
    block_c, block_p = block_sizes(Cs, H * W, BACKWARD_ELEMENTS)
    launch(
        target, _curve_map_bwd_kernel, grid(B * S, Cs, H * W, block_c, block_p)[:2],
        dy, x, a, dx, da, S, Cs, H * W, W, *_strides5(dy), *_strides5(x), *_strides5(a),
        N=n, N_PAD=triton.next_power_of_2(n), BLOCK_C=block_c, BLOCK_P=block_p, num_warps=4,
    )  # fmt: skip
    return _finish(dx, x.dtype), _finish(da, a.dtype)
