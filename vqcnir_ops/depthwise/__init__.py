"""Depth-wise convolution (``depthwise_conv2d``, stride 1) and the ``DepthwiseConv2d`` layer built on it."""

from vqcnir_ops.depthwise.functional import depthwise_conv2d
from vqcnir_ops.depthwise.module import DepthwiseConv2d
from vqcnir_ops.depthwise.reference import depthwise_conv2d_bwd_ref, depthwise_conv2d_ref

__all__ = ["DepthwiseConv2d", "depthwise_conv2d", "depthwise_conv2d_bwd_ref", "depthwise_conv2d_ref"]
