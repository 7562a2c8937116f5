"""Fused bi-directional channel cross-attention (the attention half of VQCNIR's DBCA block)."""

from vqcnir_ops.attention.functional import bidirectional_channel_attention
from vqcnir_ops.attention.module import BidirectionalChannelAttention
from vqcnir_ops.attention.reference import bidirectional_channel_attention_ref

__all__ = [
    "BidirectionalChannelAttention",
    "bidirectional_channel_attention",
    "bidirectional_channel_attention_ref",
]
