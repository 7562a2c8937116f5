"""The backends of ``depthwise_conv2d``, declared once (see ``vqcnir_ops._backend``).

No GPU kernel of our own: on CUDA the reference runs cuDNN's depth-wise convolution, which is what a GPU
does well already; the C++ kernel exists because oneDNN's CPU backward at VQCNIR's shapes does not.
"""

from __future__ import annotations

import torch

from vqcnir_ops._backend import Backend, OpSpec
from vqcnir_ops.depthwise.reference import depthwise_conv2d_bwd_ref, depthwise_conv2d_ref


def _forward_reference(*args: object) -> torch.Tensor:
    with torch.no_grad():
        return depthwise_conv2d_ref(*args)  # type: ignore[arg-type]


_GPU_NOTE = "no GPU kernel of our own: on CUDA the reference runs cuDNN's depth-wise convolution"

SPEC = OpSpec(
    "depthwise_conv2d",
    {
        "reference": Backend(_forward_reference, depthwise_conv2d_bwd_ref),
        "cpp": Backend("vqcnir_C:depthwise_conv2d_fwd", "vqcnir_C:depthwise_conv2d_bwd"),
    },
    gpu_order=(),
    notes={"cuda": _GPU_NOTE, "triton": _GPU_NOTE},
)
