"""The Adaptive Illumination Enhancement Module (AIEM) of VQCNIR and its layers."""

from vqcnir_ops.aiem.convert import OFFICIAL_AIEM_PREFIX, convert_official_aiem, convert_official_aiem_blocks
from vqcnir_ops.aiem.layers import LargeKernelAttention, SimpleGate, SimplifiedChannelAttention
from vqcnir_ops.aiem.module import AIEM, HIE, IMAE

__all__ = [
    "AIEM",
    "HIE",
    "IMAE",
    "OFFICIAL_AIEM_PREFIX",
    "LargeKernelAttention",
    "SimpleGate",
    "SimplifiedChannelAttention",
    "convert_official_aiem",
    "convert_official_aiem_blocks",
]
