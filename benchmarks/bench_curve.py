"""Fused curve mapping (IMACConv's iterated curve) vs the plain PyTorch reference, at VQCNIR's shapes.

    python benchmarks/bench_curve.py [--device cpu|cuda] [--dtype float32|float16|bfloat16] [--quick] [--only TEXT]
                                     [--no-compile] [--no-save] [--json-out FILE]

Shapes: the AIEM at 256 channels runs IMACConv on 256 channels split 4 ways (Cs = 64, n = 3), at 1/8
resolution: 32 x 32 for 256 px training crops (batch 8), 135 x 240 for a 1080p image (batch 1).
Providers: ``reference`` (``curve_map_ref`` in eager mode: ~10 elementwise kernels per step; the
baseline), ``reference+compile`` (the same under torch.compile, which fuses the chain), and every
compiled backend of ``curve_map`` on the device (``cpp`` on CPU, ``triton`` on GPU).
Modes: ``fwd`` and ``fwd+bwd`` (gradients of x and a). GB/s counts the minimum bytes: forward reads
x and a and writes y; backward reads x, a, dy and writes dx, da.
"""

from __future__ import annotations

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import Case, parse_args, run  # noqa: E402

from vqcnir_ops import _backend, curve_map  # noqa: E402
from vqcnir_ops.curve.reference import curve_map_ref  # noqa: E402

SPLITS, CURVES = 4, 3


def cases(quick: bool, dtype: torch.dtype) -> list[Case]:
    shapes = [("AIEM 256px crops b8 32x32", 8, 256, 32, 32), ("AIEM 1080p b1 135x240", 1, 256, 135, 240)]
    if quick:
        shapes = [("quick b2 C64 16x16", 2, 64, 16, 16)]
    out = []
    for name, b, c, h, w in shapes:
        x_elems, a_elems = b * c * h * w, b * SPLITS * CURVES * h * w
        size = dtype.itemsize
        fwd_bytes = size * (2 * x_elems + a_elems)
        bwd_bytes = size * (3 * x_elems + 2 * a_elems)

        def make(device: torch.device, b=b, c=c, h=h, w=w, backward=False) -> tuple:
            gen = torch.Generator().manual_seed(0)
            x = (0.5 + 0.5 * torch.randn(b, SPLITS, c // SPLITS, h, w, generator=gen)).to(device, dtype)
            a = torch.rand(b, SPLITS, CURVES, h, w, generator=gen).to(device, dtype)
            return x.requires_grad_(backward), a.requires_grad_(backward), torch.randn_like(x), backward

        out.append(Case(f"{name} fwd", make, bytes=fwd_bytes))
        out.append(Case(f"{name} fwd+bwd", lambda d, m=make: m(d, backward=True), bytes=fwd_bytes + bwd_bytes))
    return out


def provider(fn):
    """Inputs -> a zero-argument call: forward only, or forward and the gradients of x and a."""

    def make(inputs: tuple):
        x, a, dy, backward = inputs
        if not backward:
            return lambda: fn(x, a)
        return lambda: torch.autograd.grad(fn(x, a), (x, a), dy)

    return make


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    device = torch.device(args.device)

    providers = {"reference": provider(curve_map_ref)}
    if not args.no_compile:
        providers["reference+compile"] = provider(torch.compile(curve_map_ref, dynamic=False))
    for backend in ("cpp", "triton"):
        if backend == "triton" and device.type == "cpu":
            continue  # the interpreter is for tests, not speed
        if _backend.backend_unavailable_reason(backend, device.type) is None:
            providers[backend] = provider(lambda x, a, b=backend: curve_map(x, a, backend=b))
    run("bench_curve", cases(args.quick, args.dtype), providers, device, "reference", args)


if __name__ == "__main__":
    main()
