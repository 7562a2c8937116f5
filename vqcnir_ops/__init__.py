"""vqcnir_ops: fused kernels and reusable layers of VQCNIR, usable in any PyTorch network.

Importing this package needs neither Triton, nor CUDA, nor the compiled extension ``vqcnir_ops._C``;
each backend is loaded the first time it is used. ``python -m vqcnir_ops`` reports which backends
this machine can run and why the others are missing.
"""

from vqcnir_ops._backend import BACKENDS, BackendUnavailableError, availability
from vqcnir_ops.attention import (
    BidirectionalChannelAttention,
    bidirectional_channel_attention,
    bidirectional_channel_attention_ref,
    convert_twam_state_dict,
)
from vqcnir_ops.norm import LayerNorm2d, layer_norm_2d_ref
from vqcnir_ops.quantize import QuantizerOutput, VectorQuantizer, nearest_code, nearest_code_ref

__version__ = "0.1.0"

__all__ = [
    "BACKENDS",
    "BackendUnavailableError",
    "BidirectionalChannelAttention",
    "LayerNorm2d",
    "QuantizerOutput",
    "VectorQuantizer",
    "availability",
    "bidirectional_channel_attention",
    "bidirectional_channel_attention_ref",
    "convert_twam_state_dict",
    "layer_norm_2d_ref",
    "nearest_code",
    "nearest_code_ref",
]
