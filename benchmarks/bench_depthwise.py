"""Depth-wise convolution (``depthwise_conv2d``) vs ``F.conv2d(..., groups=C)``, at VQCNIR's shapes.

    python benchmarks/bench_depthwise.py [--device cpu|cuda] [--dtype float32|float16|bfloat16] [--quick]
                                         [--only TEXT] [--no-compile] [--no-save] [--json-out FILE]
                                         [--threads N] [--repeat R] [--clock wall|process]

Shapes: texture warping's 7 x 7 (``TextureWarp.offset_conv1``) at the tiny model's decoder levels of a 64 px
batch of 4 (16ch@64x64, 32ch@32x32, 32ch@16x16) and of the paper model on 256 px crops (64ch@256x256 batch 1,
256ch@32x32 batch 8); the large-kernel attention's 5 x 5 and dilated 7 x 7 (``LargeKernelAttention``, AIEM) at
the tiny model's latent (64ch@8x8 batch 4) and the paper's (1024ch@32x32 batch 8).
Providers: ``F.conv2d`` (what ``nn.Conv2d(..., groups=C)`` runs: oneDNN on CPU, cuDNN on CUDA; the baseline),
``F.conv2d+compile`` (torch.compile of it) and every compiled backend of ``depthwise_conv2d`` on the device
(``cpp`` on CPU). Modes ``fwd`` and ``fwd+bwd`` (gradients of input, weight and bias). GB/s counts the minimum
bytes: the forward reads the input and writes the output; the backward also reads the output gradient and
writes the input gradient.
"""

from __future__ import annotations

import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import Case, parse_args, run  # noqa: E402

from vqcnir_ops import _backend, depthwise_conv2d  # noqa: E402

# (name, batch, channels, height, width, kernel, dilation)
SHAPES = [
    ("warp 7x7 tiny 16ch@64 b4", 4, 16, 64, 64, 7, 1),
    ("warp 7x7 tiny 32ch@32 b4", 4, 32, 32, 32, 7, 1),
    ("warp 7x7 tiny 32ch@16 b4", 4, 32, 16, 16, 7, 1),
    ("warp 7x7 paper 64ch@256 b1", 1, 64, 256, 256, 7, 1),
    ("warp 7x7 paper 256ch@32 b8", 8, 256, 32, 32, 7, 1),
    ("LKA 5x5 tiny 64ch@8 b4", 4, 64, 8, 8, 5, 1),
    ("LKA 7x7 d3 tiny 64ch@8 b4", 4, 64, 8, 8, 7, 3),
    ("LKA 7x7 d3 paper 1024ch@32 b8", 8, 1024, 32, 32, 7, 3),
]


def cases(quick: bool, dtype: torch.dtype) -> list[Case]:
    shapes = [("quick 8ch@16 b2", 2, 8, 16, 16, 7, 1)] if quick else SHAPES
    out = []
    for name, b, c, h, w, k, d in shapes:
        elems = b * c * h * w
        flops = 2.0 * elems * k * k

        def make(device: torch.device, b=b, c=c, h=h, w=w, k=k, d=d, backward=False) -> tuple:
            gen = torch.Generator().manual_seed(0)
            x = torch.randn(b, c, h, w, generator=gen).to(device, dtype).requires_grad_(backward)
            weight = (0.1 * torch.randn(c, 1, k, k, generator=gen)).to(device, dtype).requires_grad_(backward)
            bias = torch.randn(c, generator=gen).to(device, dtype).requires_grad_(backward)
            return x, weight, bias, d * (k - 1) // 2, d, torch.randn_like(x), backward

        size = dtype.itemsize
        out.append(Case(f"{name} fwd", make, flops=flops, bytes=2 * size * elems))
        out.append(Case(f"{name} fwd+bwd", lambda dev, m=make: m(dev, backward=True), flops=3 * flops,
                        bytes=6 * size * elems))  # fmt: skip
    return out


def conv2d(x, weight, bias, padding, dilation):
    return F.conv2d(x, weight, bias, padding=padding, dilation=dilation, groups=x.shape[1])


def provider(fn):
    """Inputs -> a zero-argument call: forward only, or forward and the gradients of input, weight and bias."""

    def make(inputs: tuple):
        x, weight, bias, padding, dilation, dy, backward = inputs
        if not backward:
            return lambda: fn(x, weight, bias, padding, dilation)
        return lambda: torch.autograd.grad(fn(x, weight, bias, padding, dilation), (x, weight, bias), dy)

    return make


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    device = torch.device(args.device)
    providers = {"F.conv2d": provider(conv2d)}
    if not args.no_compile:
        providers["F.conv2d+compile"] = provider(torch.compile(conv2d, dynamic=False))
    if device.type == "cpu" and _backend.backend_unavailable_reason("cpp", "cpu") is None:
        providers["cpp"] = provider(lambda x, w, b, p, d: depthwise_conv2d(x, w, b, p, d, backend="cpp"))
    run("bench_depthwise", cases(args.quick, args.dtype), providers, device, "F.conv2d", args)


if __name__ == "__main__":
    main()
