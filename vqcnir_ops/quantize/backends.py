"""The backends of ``nearest_code``, declared once (see ``vqcnir_ops._backend``).

Every backend sees the same centred codebook (``center_codebook``, in the compute dtype: float32 on
``triton`` and ``cuda``) and maps exact duplicate codes to their first occurrence (``resolve_duplicates``);
only ``dist`` has a backward, one PyTorch op shared by every backend (a gather
and a deterministic scatter), so the backends declare forwards only. Triton first on GPU: the CUDA kernel
has not been benchmarked against it on a GPU yet; ``benchmarks/bench_quantize.py`` decides the order.
"""

from __future__ import annotations

import torch

from vqcnir_ops._backend import Backend, OpSpec
from vqcnir_ops._dtypes import compute_dtype
from vqcnir_ops.quantize.reference import center_codebook, nearest_code_ref, resolve_duplicates


def _reference(z: torch.Tensor, codebook: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    indices, dist = nearest_code_ref(z, codebook)
    return dist, indices


def _compiled(z: torch.Tensor, codebook: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    indices, dist = torch.ops.vqcnir_C.nearest_code(z, *center_codebook(codebook, compute_dtype(z.dtype)))
    if z.device.type != "cpu":
        return dist, resolve_duplicates(indices, codebook)
    # On CPU the duplicate map is the C++ hash of the rows (O(K D)): torch.unique's sort costs more than
    # the whole search at small shapes (tiny preset: K 64, D 32).
    first = torch.ops.vqcnir_C.first_copies(codebook)
    return dist, (first[indices] if first.numel() else indices)


def _triton(z: torch.Tensor, codebook: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    from vqcnir_ops.quantize.triton_kernels import nearest_code_triton

    indices, dist = nearest_code_triton(z, *center_codebook(codebook, torch.float32))
    return dist, resolve_duplicates(indices, codebook)


SPEC = OpSpec(
    "nearest_code",
    {
        "reference": Backend(_reference),
        "cpp": Backend(_compiled),
        "cuda": Backend(_compiled),
        "triton": Backend(_triton),
    },
    gpu_order=("triton", "cuda"),
)
