"""The Adaptive Illumination Enhancement Module (AIEM) of VQCNIR and its layers."""

from vqcnir_ops.aiem.layers import LargeKernelAttention, SimpleGate, SimplifiedChannelAttention
from vqcnir_ops.aiem.module import AIEM, HIE, IMAE

__all__ = ["AIEM", "HIE", "IMAE", "LargeKernelAttention", "SimpleGate", "SimplifiedChannelAttention"]
