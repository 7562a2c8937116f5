"""ONNX export of every ``vqcnir_ops`` op, registered once: networks built from these layers export with
``torch.onnx.export(model, args, dynamo=True)`` and no extra code.

While ``torch.onnx.export`` traces a network (``torch.onnx.is_in_onnx_export()``), each public functional
(and so each layer) runs its ONNX form from this table instead of its custom op, which the exporter could
not translate. The forms, one file per op (``vqcnir_ops/<op>/to_onnx.py``), use standard ONNX only (no
custom domain):

- ``deform_conv2d``: one ``DeformConv`` node (opset 19 or later), through ``torch.onnx.ops.symbolic``;
- ``bidirectional_channel_attention``: its reference, decomposed into ``ReduceL2`` / ``MatMul`` / ``Softmax``;
- ``curve_map``: its reference, elementwise operators;
- ``nearest_code``: squared distances (``MatMul``) and ``ArgMin``; inference only;
- ``depthwise_conv2d``: its reference, one ``Conv`` node with ``group = C``.

The exported model needs opset :data:`MIN_OPSET` or later (``torch.onnx.export``'s default in torch 2.13 is
20). ``vqcnir.export_onnx`` exports whole VQCNIR / VQGAN models on top of this.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, NamedTuple

import torch

MIN_OPSET = 19  # ONNX's DeformConv (vqcnir_ops.deform.to_onnx.DEFORM_CONV_OPSET)


class OnnxForm(NamedTuple):
    """How one op leaves PyTorch: the function traced in its place and the ONNX operators it becomes."""

    build: str  # "package.module:function", imported on first use (the functionals import this table)
    onnx_ops: tuple[str, ...]


ONNX_FORMS: dict[str, OnnxForm] = {
    "deform_conv2d": OnnxForm("vqcnir_ops.deform.to_onnx:deform_conv2d_onnx", ("DeformConv",)),
    "bidirectional_channel_attention": OnnxForm(
        "vqcnir_ops.attention.to_onnx:bidirectional_channel_attention_onnx", ("ReduceL2", "MatMul", "Softmax")
    ),
    "curve_map": OnnxForm("vqcnir_ops.curve.to_onnx:curve_map_onnx", ("Mul", "Add")),
    "nearest_code": OnnxForm("vqcnir_ops.quantize.to_onnx:nearest_code_onnx", ("MatMul", "ArgMin")),
    "depthwise_conv2d": OnnxForm("vqcnir_ops.depthwise.to_onnx:depthwise_conv2d_onnx", ("Conv",)),
}


def exporting() -> bool:
    """True while ``torch.onnx.export`` traces a network: the functionals then run their ONNX forms."""
    return torch.onnx.is_in_onnx_export()


def onnx_form(op: str) -> Callable[..., Any]:
    """The function traced in place of ``op`` (a key of :data:`ONNX_FORMS`) while exporting."""
    module, _, name = ONNX_FORMS[op].build.partition(":")
    return getattr(importlib.import_module(module), name)
