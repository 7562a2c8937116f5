"""``BidirectionalChannelAttention``: the attention half of VQCNIR's DBCA block (the official ``TWAM``)."""

from __future__ import annotations

import torch
from torch import nn

from vqcnir_ops.attention.functional import bidirectional_channel_attention
from vqcnir_ops.norm import LayerNorm2d
from vqcnir_ops.validation import check_tensor


class BidirectionalChannelAttention(nn.Module):
    """Bi-directional channel cross-attention between decoder features ``F_D`` and codebook features ``F_G``.

    ``Q_D = proj_q_d(norm_d(F_D))``, ``Q_G = proj_q_g(norm_g(F_G))``, ``V_D = proj_v_d(F_D)``,
    ``V_G = proj_v_g(F_G)`` (1x1 convolutions), one shared map ``softmax(norm(Q_D) norm(Q_G)^T *
    temperature)`` per head, and ``F_D' = F_D + gamma_d * (attn @ V_G)``, ``F_G' = F_G + gamma_g *
    (attn @ V_D)`` through the fused :func:`bidirectional_channel_attention`. ``temperature`` starts at 1,
    the gammas at 0 (the block starts as the identity). Same parameters as the official ``TWAM``: load
    its weights with ``vqcnir.official.channel_attention_state_dict_from_official``.

    Args:
        channels: C of both inputs.
        num_heads: heads; must divide ``channels`` (the Triton backend takes at most 128 channels per head).
        normalize: L2-normalised queries (official model) or the paper's ``1 / sqrt(C)`` scaling.
        backend: attention backend for every call (default: automatic, see ``vqcnir_ops._backend``).

    Example:
        >>> dbca = BidirectionalChannelAttention(256, num_heads=4)
        >>> f_d, f_g = dbca(torch.randn(2, 256, 32, 32), torch.randn(2, 256, 32, 32))
    """

    def __init__(self, channels: int, num_heads: int, normalize: bool = True, backend: str | None = None) -> None:
        super().__init__()
        if channels < 1 or num_heads < 1 or channels % num_heads:
            raise ValueError(f"channels ({channels}) must be a positive multiple of num_heads ({num_heads})")
        self.channels, self.num_heads, self.normalize, self.backend = int(channels), int(num_heads), normalize, backend
        self.norm_d = LayerNorm2d(channels)
        self.norm_g = LayerNorm2d(channels)
        self.proj_q_d = nn.Conv2d(channels, channels, kernel_size=1)
        self.proj_q_g = nn.Conv2d(channels, channels, kernel_size=1)
        self.proj_v_d = nn.Conv2d(channels, channels, kernel_size=1)
        self.proj_v_g = nn.Conv2d(channels, channels, kernel_size=1)
        self.temperature = nn.Parameter(torch.ones(num_heads))
        self.gamma_d = nn.Parameter(torch.zeros(channels))
        self.gamma_g = nn.Parameter(torch.zeros(channels))

    def forward(self, f_d: torch.Tensor, f_g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(F_D', F_G')`` for ``f_d``, ``f_g`` ``[B, C, H, W]`` of one shape."""
        for name, t in (("f_d", f_d), ("f_g", f_g)):
            check_tensor(name, t, ndim=4)
            if t.shape[1] != self.channels:
                raise ValueError(f"argument '{name}' must have {self.channels} channels, got shape {tuple(t.shape)}")
        if f_d.shape != f_g.shape:
            raise ValueError(f"arguments 'f_d' {tuple(f_d.shape)} and 'f_g' {tuple(f_g.shape)} must have one shape")
        return bidirectional_channel_attention(
            self.proj_q_d(self.norm_d(f_d)),
            self.proj_q_g(self.norm_g(f_g)),
            self.proj_v_d(f_d),
            self.proj_v_g(f_g),
            self.temperature,
            heads=self.num_heads,
            f_d=f_d,
            f_g=f_g,
            gamma_d=self.gamma_d,
            gamma_g=self.gamma_g,
            normalize=self.normalize,
            backend=self.backend,
        )

    def extra_repr(self) -> str:
        return f"{self.channels}, num_heads={self.num_heads}, normalize={self.normalize}"
