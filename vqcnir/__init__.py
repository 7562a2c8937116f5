"""VQCNIR: clearer night image restoration with a vector-quantized codebook (AAAI 2024).

The stage-1 VQGAN (:class:`VQGAN`) learns a codebook and decoder G on clean images; the stage-2
restorer (:class:`VQCNIR`) maps dark, blurred photos onto that prior. Layers and kernels come from
``vqcnir_ops``.
"""

from vqcnir._version import __version__
from vqcnir.checkpoint import CheckpointError, load_pretrained, save_pretrained
from vqcnir.config import VQCNIRConfig
from vqcnir.export import export_onnx
from vqcnir.model import VQCNIR, VQCNIROutput
from vqcnir.official import load_official_checkpoint, vqcnir_state_dict_from_official
from vqcnir.vqgan import VQGAN, VQGANOutput

__all__ = [
    "VQCNIR",
    "CheckpointError",
    "VQGAN",
    "VQCNIRConfig",
    "VQCNIROutput",
    "VQGANOutput",
    "load_official_checkpoint",
    "load_pretrained",
    "save_pretrained",
    "vqcnir_state_dict_from_official",
    "export_onnx",
    "__version__",
]
