"""The backends of ``curve_map``, declared once (see ``vqcnir_ops._backend``).

No CUDA C++ kernel: one is worth writing only where a GPU benchmark shows it beating the Triton kernel,
and none has run yet (``benchmarks/bench_curve.py``); on CUDA tensors Triton runs.
"""

from __future__ import annotations

import torch

from vqcnir_ops._backend import Backend, OpSpec
from vqcnir_ops.curve.reference import curve_map_bwd_ref, curve_map_ref


def _forward_reference(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return curve_map_ref(x, a)


SPEC = OpSpec(
    "curve_map",
    {
        "reference": Backend(_forward_reference, curve_map_bwd_ref),
        "cpp": Backend("vqcnir_C:curve_map_fwd", "vqcnir_C:curve_map_bwd"),
        "triton": Backend(
            "vqcnir_ops.curve.triton_kernels:curve_map_fwd_triton",
            "vqcnir_ops.curve.triton_kernels:curve_map_bwd_triton",
        ),
    },
    gpu_order=("triton",),
    notes={"cuda": "no CUDA C++ kernel: Triton is the GPU path until a GPU benchmark shows otherwise"},
)
