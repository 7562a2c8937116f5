"""``DBCA``: VQCNIR's decoder-bridging block = bi-directional channel attention, then texture warping.

One block per decoder level of the official ``MainDecoder``: ``attn['Level_<s>']`` (TWAM) followed by
``align_func_dict['Level_<s>']`` (TextureWarpingModule). Official weights load through
``vqcnir.official.dbca_state_dict_from_official``.
"""

from __future__ import annotations

import torch
from torch import nn

from vqcnir_ops.attention import BidirectionalChannelAttention
from vqcnir_ops.deform import TextureWarp


class DBCA(nn.Module):
    """Fuses codebook-decoder features ``F_G`` into main-decoder features ``F_D`` and warps ``F_D``.

    ``forward(f_d, f_g, previous_offset=None) -> (f_d', warped, offset_feature)``:
    ``(f_d', f_g') = BidirectionalChannelAttention(f_d, f_g)``, then
    ``(warped, offset_feature) = TextureWarp(f_d', f_g', previous_offset)``.

    Args:
        channels: C of both features. num_heads: attention heads (C divisible by it).
        offset_groups: deformable offset groups (4). previous_offset_channels: channels of the coarser
            level's offset feature (0 at the coarsest level). norm_groups: GroupNorm groups (32).
        backend: backend for the attention and deformable-convolution ops (default automatic).

    Example:
        >>> block = DBCA(64, num_heads=1)
        >>> f_d, warped, offset = block(torch.randn(1, 64, 16, 16), torch.randn(1, 64, 16, 16))
    """

    def __init__(
        self,
        channels: int,
        num_heads: int,
        offset_groups: int = 4,
        previous_offset_channels: int = 0,
        norm_groups: int = 32,
        backend: str | None = None,
    ) -> None:
        super().__init__()
        self.attn = BidirectionalChannelAttention(channels, num_heads, backend=backend)
        self.warp = TextureWarp(
            channels,
            offset_groups=offset_groups,
            previous_offset_channels=previous_offset_channels,
            norm_groups=norm_groups,
            backend=backend,
        )

    def forward(
        self, f_d: torch.Tensor, f_g: torch.Tensor, previous_offset: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f_d, f_g = self.attn(f_d, f_g)
        warped, offset = self.warp(f_d, f_g, previous_offset)
        return f_d, warped, offset
