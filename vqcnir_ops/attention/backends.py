"""The backends of ``bidirectional_channel_attention``, declared once (see ``vqcnir_ops._backend``).

Every backend runs the two-phase algorithm of ``staged.py`` with its own two phase kernels (``Phases``):
plain PyTorch (``reference``), the C++ kernels (``cpp``: driven from C++ by
``vqcnir_C.channel_attention_forward`` / ``_backward``, a port of ``staged.py``'s driver), the Triton kernels
(``triton``, C <= 128 per head: a C x C tile of the map lives in one program). The CPU order has ``cpp``
first: it was ahead of the reference in ``benchmarks/bench_channel_attention.py`` (see the README's table).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import torch

from vqcnir_ops._backend import Backend, Facts, OpSpec
from vqcnir_ops.attention.staged import AttentionMap, Phases, staged_backward, staged_forward

MAX_CHANNELS_PER_HEAD = 128  # the Triton kernels' limit (one C x C tile per program); the others have none


def _staged(phases: str, supports: Callable[[Facts], str | None] | None = None) -> Backend:
    """A backend whose phase kernels are ``phases`` ("module:attribute", imported on first use)."""

    def load() -> Phases:
        module, _, name = phases.partition(":")
        return getattr(importlib.import_module(module), name)

    def forward(*args: object) -> tuple[torch.Tensor, ...]:
        y_d, y_g, amap = staged_forward(load(), *args)
        return y_d, y_g, *amap

    def backward(*args: object) -> tuple[torch.Tensor, ...]:
        *tensors, attn, scores, norm_d, norm_g, normalize, scale, eps = args
        amap = AttentionMap(attn, scores, norm_d, norm_g)
        temperature, gain_d, gain_g = tensors[6:9]
        g = staged_backward(load(), *tensors, amap, normalize, scale, eps)
        return (
            g.q_d,
            g.q_g,
            g.v_d,
            g.v_g,
            g.temperature.to(temperature.dtype),
            g.gain_d.to(gain_d.dtype),
            g.gain_g.to(gain_g.dtype),
        )

    return Backend(forward, backward, supports=supports)


def _triton_limit(facts: Facts) -> str | None:
    channels = int(facts.get("channels_per_head", 0))  # absent: a report, not a call
    if channels > MAX_CHANNELS_PER_HEAD:
        return f"its kernels take at most {MAX_CHANNELS_PER_HEAD} channels per head, the call has {channels}"
    return None


SPEC = OpSpec(
    "bidirectional_channel_attention",
    {
        "reference": _staged("vqcnir_ops.attention.staged:TORCH_PHASES"),
        # The same algorithm driven from C++ (csrc/cpu/channel_attention_staged.cpp): one call per direction
        # instead of ~40 small PyTorch calls from Python, which cost 0.3-0.6 ms at the deepest decoder level.
        "cpp": Backend("vqcnir_C:channel_attention_forward", "vqcnir_C:channel_attention_backward"),
        "triton": _staged("vqcnir_ops.attention.triton_kernels:TRITON_PHASES", _triton_limit),
    },
    gpu_order=("triton",),
)
