"""Modulated deformable convolution (DCNv2): functional, reference, layers and VQCNIR's texture warp."""

from vqcnir_ops.deform.functional import deform_conv2d
from vqcnir_ops.deform.module import DeformConv2d, DeformConv2dPack, TextureWarp
from vqcnir_ops.deform.reference import deform_conv2d_ref

__all__ = [
    "DeformConv2d",
    "DeformConv2dPack",
    "TextureWarp",
    "deform_conv2d",
    "deform_conv2d_ref",
]
