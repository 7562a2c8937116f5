"""vqcnir_ops: fused kernels and reusable layers of VQCNIR, usable in any PyTorch network.

Importing this package needs neither Triton, nor CUDA, nor the compiled extension ``vqcnir_ops._C``;
each backend is loaded the first time it is used. The package is generic: the converters of the
official VQCNIR checkpoint's keys live in ``vqcnir.official``. ``python -m vqcnir_ops`` reports which backends
this machine can run and why the others are missing.
"""

from vqcnir_ops._backend import BACKENDS, BackendUnavailableError, availability
from vqcnir_ops.aiem import (
    AIEM,
    HIE,
    IMAE,
    LargeKernelAttention,
    SimpleGate,
    SimplifiedChannelAttention,
)
from vqcnir_ops.attention import (
    BidirectionalChannelAttention,
    bidirectional_channel_attention,
    bidirectional_channel_attention_ref,
)
from vqcnir_ops.curve import IMACConv, curve_map, curve_map_ref
from vqcnir_ops.dbca import DBCA
from vqcnir_ops.deform import (
    DeformConv2d,
    DeformConv2dPack,
    TextureWarp,
    deform_conv2d,
    deform_conv2d_ref,
)
from vqcnir_ops.depthwise import DepthwiseConv2d, depthwise_conv2d, depthwise_conv2d_ref
from vqcnir_ops.norm import LayerNorm2d, layer_norm_2d_ref
from vqcnir_ops.quantize import QuantizerOutput, VectorQuantizer, nearest_code, nearest_code_ref

__version__ = "0.1.0"

__all__ = [
    # ops (functionals and their plain-PyTorch references)
    "bidirectional_channel_attention",
    "bidirectional_channel_attention_ref",
    "curve_map",
    "curve_map_ref",
    "deform_conv2d",
    "deform_conv2d_ref",
    "depthwise_conv2d",
    "depthwise_conv2d_ref",
    "layer_norm_2d_ref",
    "nearest_code",
    "nearest_code_ref",
    # modules
    "AIEM",
    "DBCA",
    "HIE",
    "IMAE",
    "BidirectionalChannelAttention",
    "DeformConv2d",
    "DeformConv2dPack",
    "DepthwiseConv2d",
    "IMACConv",
    "LargeKernelAttention",
    "LayerNorm2d",
    "QuantizerOutput",
    "SimpleGate",
    "SimplifiedChannelAttention",
    "TextureWarp",
    "VectorQuantizer",
    # backends
    "BACKENDS",
    "BackendUnavailableError",
    "availability",
]
