"""Channel LayerNorm for NCHW features (``LayerNorm2d``)."""

from vqcnir_ops.norm.module import LayerNorm2d
from vqcnir_ops.norm.reference import layer_norm_2d_ref

__all__ = ["LayerNorm2d", "layer_norm_2d_ref"]
