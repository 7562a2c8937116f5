"""Nearest-code lookup (fused) and the VQ-VAE/VQGAN vector quantizer built on it."""

from vqcnir_ops.quantize.functional import nearest_code
from vqcnir_ops.quantize.module import QuantizerOutput, VectorQuantizer
from vqcnir_ops.quantize.reference import nearest_code_ref

__all__ = ["QuantizerOutput", "VectorQuantizer", "nearest_code", "nearest_code_ref"]
