"""``python -m vqcnir_ops``: which backends this machine can run, and why the others are missing.

``python -m vqcnir_ops demo`` also runs a short demo: the nearest-code lookup on every available
backend (checked against the reference, with timings), then a VectorQuantizer training step.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

import vqcnir_ops
from vqcnir_ops import _backend, _extension


def _status(reason: str | None) -> str:
    return "yes" if reason is None else f"no: {reason}"


def report() -> None:
    print(f"vqcnir_ops {vqcnir_ops.__version__}, torch {torch.__version__} (CUDA {torch.version.cuda})")
    cuda_device = torch.cuda.is_available()
    triton_missing = _backend._triton_missing_reason()
    rows = {
        "C++ CPU kernels (cpp)": _extension.missing_reason(),
        "CUDA kernels (cuda)": _backend.backend_unavailable_reason("cuda", "cuda")
        or (None if cuda_device else "compiled in, but no CUDA device is visible"),
        "Triton compiled, GPU (triton)": triton_missing or (None if cuda_device else "no CUDA device visible to torch"),
        "Triton interpreter, CPU (triton)": triton_missing
        or (None if _backend.triton_interpreting() else "TRITON_INTERPRET=1 is not set (tests set it)"),
    }
    width = max(len(name) for name in rows)
    for name, reason in rows.items():
        print(f"  {name:<{width}}  {_status(reason)}")
    print(f"  {_backend.ENV_VAR}={os.environ.get(_backend.ENV_VAR, 'auto')}")
    print("automatic choice per op (float32):")
    for op, spec in _backend.registered_ops().items():
        cpu = spec.choose(torch.device("cpu"), torch.float32, "auto")
        gpu = spec.choose(torch.device("cuda"), torch.float32, "auto") if cuda_device else "-"
        print(f"  {op}: cpu -> {cpu}, cuda -> {gpu}")


def demo() -> None:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    z, codebook = torch.randn(8 * 32 * 32, 256, device=device), torch.randn(1024, 256, device=device)
    print(f"\nnearest_code: {z.shape[0]} rows, {codebook.shape[0]} codes of dim {codebook.shape[1]}, on {device}")
    expected, _ = vqcnir_ops.nearest_code(z, codebook, backend="reference")
    timings = {}
    for backend in vqcnir_ops.BACKENDS:
        if _backend.backend_unavailable_reason(backend, device.type) is not None:
            continue
        vqcnir_ops.nearest_code(z, codebook, backend=backend)  # warm-up (compiles Triton kernels)
        start = time.perf_counter()
        indices, _ = vqcnir_ops.nearest_code(z, codebook, backend=backend)
        if device.type == "cuda":
            torch.cuda.synchronize()
        timings[backend] = time.perf_counter() - start
        agree = (indices == expected).float().mean().item()
        speed = timings["reference"] / timings[backend]
        print(f"  {backend:<9} {1e3 * timings[backend]:8.2f} ms  {speed:5.2f}x reference, same index on {agree:.2%}")

    vq = vqcnir_ops.VectorQuantizer(num_codes=512, code_dim=64).to(device)
    optimizer = torch.optim.Adam(vq.parameters(), lr=1e-2)
    features = torch.randn(4, 64, 16, 16, device=device)
    for _ in range(20):
        out = vq(features)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    usage = vq.usage()
    print(
        f"\nVectorQuantizer(512 codes, dim 64), 20 Adam steps on one batch: loss {out.loss.item():.4f}, "
        f"perplexity {usage.perplexity:.1f}, {usage.used_fraction:.1%} of codes used"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m vqcnir_ops", description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="?", choices=["report", "demo"], default="report")
    args = parser.parse_args()
    report()
    if args.command == "demo":
        demo()


if __name__ == "__main__":
    main()
