"""The ONNX form of ``depthwise_conv2d``: its reference, which exports as one ``Conv`` node with ``group = C``
(arguments checked by ``depthwise_conv2d`` before it is traced)."""

from __future__ import annotations

from vqcnir_ops.depthwise.reference import depthwise_conv2d_ref

depthwise_conv2d_onnx = depthwise_conv2d_ref
