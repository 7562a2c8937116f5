"""Deformable convolution (DCNv2) backends vs the plain PyTorch reference, at VQCNIR's DBCA shapes.

    python benchmarks/bench_deform_conv.py [--device cpu|cuda] [--dtype ...] [--batch B] [--quick] [--only TEXT]
                                           [--no-compile] [--no-save] [--json-out FILE]

Cases: the deformable conv of each decoder level (3x3, padding 1, 4 offset groups, Cout = Cin) forward
(``fwd``) and forward + backward of all five inputs (``fwd+bwd``), and the whole ``TextureWarp`` block
(offset estimator + deformable conv) at the coarsest and finest level. Providers: ``reference`` (the
baseline: bilinear gather per tap + einsum, which materialises the column matrix), ``reference+compile``
(the same under torch.compile; op cases), ``torchvision`` (``torchvision.ops.deform_conv2d`` where
torchvision imports; op cases) and every vqcnir_ops backend available on the device (the Triton
interpreter is skipped on CPU: it is for tests). Matmul-bound: TFLOP/s counts 2 * B * Cout * Cin * 9 *
Ho * Wo per forward and three times that for fwd+bwd. On CPU the default batch is 1 (batch 8 at
64ch@256x256 needs minutes per reference call on 2 cores).
"""

from __future__ import annotations

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import Case, parse_args, run  # noqa: E402

import vqcnir_ops  # noqa: E402
from vqcnir_ops import _backend  # noqa: E402

LEVELS = [(256, 32), (256, 64), (128, 128), (64, 256)]  # (channels, size) from the coarsest to the finest level
OFFSET_GROUPS = 4


def _op_inputs(channels: int, size: int, batch: int, device: torch.device, grad: bool, dtype: torch.dtype) -> dict:
    gen = torch.Generator().manual_seed(0)
    taps = 9 * OFFSET_GROUPS
    tensors = {
        "input": torch.randn(batch, channels, size, size, generator=gen),
        "offset": 2 * torch.randn(batch, 2 * taps, size, size, generator=gen),
        "weight": torch.randn(channels, channels, 3, 3, generator=gen) / (3 * channels**0.5),
        "bias": torch.randn(channels, generator=gen),
        "mask": torch.rand(batch, taps, size, size, generator=gen),
    }
    return {k: v.to(device, dtype).requires_grad_(grad) for k, v in tensors.items()}


def _call_op(t: dict, mode: str, backend: str | None = None, fn=None) -> None:  # noqa: ANN001
    """The op on ``backend``, or ``fn`` (torchvision's or the compiled reference) with the same arguments."""
    if fn is None:
        out = vqcnir_ops.deform_conv2d(t["input"], t["offset"], t["weight"], t["bias"], 1, 1, 1, t["mask"],
                                       backend=backend)  # fmt: skip
    else:
        out = fn(t["input"], t["offset"], t["weight"], t["bias"], (1, 1), (1, 1), (1, 1), t["mask"])
    if mode == "fwd+bwd":
        out.backward(torch.ones_like(out))
        for tensor in t.values():
            tensor.grad = None


def _call_block(block: tuple, mode: str, backend: str) -> None:
    warp, x_main, x_cond, previous = block
    warp.dcn.backend = backend
    with torch.set_grad_enabled(mode == "fwd+bwd"):
        warped, offset = warp(x_main, x_cond, previous)
        if mode == "fwd+bwd":
            (warped.sum() + offset.sum()).backward()
            warp.zero_grad(set_to_none=True)


def cases(batch: int, quick: bool, dtype: torch.dtype) -> list[Case]:
    levels = [(64, 32)] if quick else LEVELS
    block_levels = [(64, 32)] if quick else [LEVELS[0], LEVELS[-1]]
    out = []
    for mode in ("fwd", "fwd+bwd"):
        for channels, size in levels:
            flops = 2.0 * batch * channels * channels * 9 * size * size * (3 if mode == "fwd+bwd" else 1)

            def make(device, c=channels, s=size, m=mode):  # noqa: ANN001, ANN202
                return "op", m, _op_inputs(c, s, batch, device, m != "fwd", dtype)

            out.append(Case(f"{mode} {channels}ch@{size}x{size} b{batch}", make, flops=flops))
    for mode in ("fwd", "fwd+bwd"):
        for channels, size in block_levels:

            def make(device, c=channels, s=size, m=mode):  # noqa: ANN001, ANN202
                torch.manual_seed(0)
                previous = 0 if s == LEVELS[0][1] else c
                warp = vqcnir_ops.TextureWarp(c, previous_offset_channels=previous).to(device)
                torch.nn.init.normal_(warp.dcn.conv_offset.weight, std=0.01)  # non-trivial offsets
                warp = warp.to(dtype)
                x = [torch.randn(batch, c, s, s, device=device, dtype=dtype) for _ in range(2)]
                prev = torch.randn(batch, c, s, s, device=device, dtype=dtype) if previous else None
                return ("block", m, (warp, x[0], x[1], prev))

            out.append(Case(f"TextureWarp {mode} {channels}ch@{size} b{batch}", make))
    return out


def torchvision_deform_conv2d():  # noqa: ANN201
    """``torchvision.ops.deform_conv2d``, or None where torchvision does not import (e.g. a CPU torch here)."""
    try:
        from torchvision.ops import deform_conv2d
    except Exception:  # ImportError, or torchvision's operator registration failing against this torch
        return None
    return deform_conv2d


def main() -> None:
    def add_batch(parser):
        parser.add_argument("--batch", type=int, default=None, help="default: 8 on GPU, 1 on CPU")

    args = parse_args(__doc__.splitlines()[0], add_batch)
    device = torch.device(args.device)
    batch = args.batch or (8 if device.type == "cuda" else 1)

    def provider(backend: str | None = None, fn=None):  # noqa: ANN001, ANN202
        def make(inputs: tuple):  # noqa: ANN202
            kind, mode, payload = inputs
            if kind == "op":
                return lambda: _call_op(payload, mode, backend, fn)
            if fn is not None:
                raise ValueError("op cases only")
            return lambda: _call_block(payload, mode, backend)

        return make

    providers = {}
    for backend in vqcnir_ops.BACKENDS:
        if backend == "triton" and device.type == "cpu":
            continue  # the interpreter is for tests, not speed
        if _backend.backend_unavailable_reason(backend, device.type) is None:
            providers[backend] = provider(backend)
    if not args.no_compile:
        torch._dynamo.config.recompile_limit = 64  # one graph per case and mode
        providers["reference+compile"] = provider(fn=torch.compile(vqcnir_ops.deform_conv2d_ref, dynamic=False))
    torchvision_op = torchvision_deform_conv2d()
    if torchvision_op is not None:
        providers["torchvision"] = provider(fn=torchvision_op)
    run("bench_deform_conv", cases(batch, args.quick, args.dtype), providers, device, "reference", args)


if __name__ == "__main__":
    main()
