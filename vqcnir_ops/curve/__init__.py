"""Fused IMACConv curve mapping (``curve_map``) and the ``IMACConv`` layer built on it."""

from vqcnir_ops.curve.functional import curve_map
from vqcnir_ops.curve.module import IMACConv
from vqcnir_ops.curve.reference import curve_map_bwd_ref, curve_map_ref

__all__ = ["IMACConv", "curve_map", "curve_map_bwd_ref", "curve_map_ref"]
