"""Fused nearest-code lookup vs the plain PyTorch approach, at VQCNIR's shapes.

    python benchmarks/bench_quantize.py [--device cpu|cuda] [--dtype float32|float16|bfloat16] [--quick] [--only TEXT]
                                        [--no-compile] [--no-save] [--json-out FILE]

Providers: ``naive`` (FeMaSR/VQGAN-style: full N x K distance matrix by matmul, then argmin; the
baseline), ``naive+compile`` (the same under torch.compile), ``cdist`` (``torch.cdist`` then argmin, also
N x K), and every vqcnir_ops backend available on the device (``reference`` is our chunked spec; the fused
kernels keep O(N) memory: compare the peak MiB). Matmul-bound: TFLOP/s counts 2*N*K*D.
"""

from __future__ import annotations

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import Case, parse_args, run  # noqa: E402

import vqcnir_ops  # noqa: E402
from vqcnir_ops import _backend  # noqa: E402


def naive(z: torch.Tensor, codebook: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    dist = (z**2).sum(1, keepdim=True) + (codebook**2).sum(1) - 2 * z @ codebook.t()
    indices = dist.argmin(1)
    return indices, dist.gather(1, indices[:, None])


def cdist(z: torch.Tensor, codebook: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    dist = torch.cdist(z, codebook)
    indices = dist.argmin(1)
    return indices, dist.gather(1, indices[:, None]).square()


def cases(quick: bool, dtype: torch.dtype) -> list[Case]:
    shapes = [("256px batch 8: N=8192 K=1024 D=512", 8192, 1024, 512),
              ("1080p: N=32400 K=1024 D=512", 32400, 1024, 512),
              ("tiny preset 256px batch 4: N=4096 K=64 D=32", 4096, 64, 32),
              ("small model: N=16384 K=512 D=128", 16384, 512, 128),
              ("small codes: N=8192 K=16384 D=8", 8192, 16384, 8)]  # fmt: skip
    if quick:
        shapes = [(f"quick: N={n} K={k} D={d}", n, k, d) for n, k, d in [(1024, 256, 64)]]

    def make(n: int, k: int, d: int):
        return lambda device: tuple(torch.randn(rows, d, device=device, dtype=dtype) for rows in (n, k))

    return [Case(name, make(n, k, d), flops=2.0 * n * k * d) for name, n, k, d in shapes]


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    device = torch.device(args.device)

    providers = {"naive": lambda inputs: lambda: naive(*inputs)}
    if not args.no_compile:
        compiled = torch.compile(naive, dynamic=False)
        providers["naive+compile"] = lambda inputs: lambda: compiled(*inputs)
    providers["cdist"] = lambda inputs: lambda: cdist(*inputs)
    for backend in vqcnir_ops.BACKENDS:
        if backend == "triton" and device.type == "cpu":
            continue  # the interpreter is for tests, not speed
        if _backend.backend_unavailable_reason(backend, device.type) is None:
            providers[backend] = lambda inputs, b=backend: lambda: vqcnir_ops.nearest_code(*inputs, backend=b)
    run("bench_quantize", cases(args.quick, args.dtype), providers, device, "naive", args)


if __name__ == "__main__":
    main()
