"""``BidirectionalChannelAttention``: the attention half of VQCNIR's DBCA block (the official ``TWAM``)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from vqcnir_ops._validate import check_tensor
from vqcnir_ops.attention.functional import MAX_CHANNELS_PER_HEAD, bidirectional_channel_attention
from vqcnir_ops.norm import LayerNorm2d

# Official TWAM name -> ours, for the module's own keys (the prefix in front is kept).
TWAM_KEY_MAP: dict[str, str] = {
    "scale": "temperature",  # [heads, 1, 1] -> [heads]
    "beta": "gamma_d",  # [1, C, 1, 1] -> [C]: out_d = f_d + gamma_d * a_g
    "gamma": "gamma_g",  # [1, C, 1, 1] -> [C]: out_g = f_g + gamma_g * a_d
    "norm_d.weight": "norm_d.weight",
    "norm_d.bias": "norm_d.bias",
    "norm_g.weight": "norm_g.weight",
    "norm_g.bias": "norm_g.bias",
    "d_proj1.weight": "proj_q_d.weight",
    "d_proj1.bias": "proj_q_d.bias",
    "g_proj1.weight": "proj_q_g.weight",
    "g_proj1.bias": "proj_q_g.bias",
    "d_proj2.weight": "proj_v_d.weight",
    "d_proj2.bias": "proj_v_d.bias",
    "g_proj2.weight": "proj_v_g.weight",
    "g_proj2.bias": "proj_v_g.bias",
}
_FLATTENED = {"temperature", "gamma_d", "gamma_g"}


def convert_twam_state_dict(state_dict: Mapping[str, torch.Tensor], prefix: str = "") -> dict[str, torch.Tensor]:
    """Rename and reshape the official ``TWAM`` weights under ``prefix`` for :class:`BidirectionalChannelAttention`.

    Keys of the official ``models/main_decode.py`` (``{prefix}scale``, ``beta``, ``gamma``, ``norm_d.*``,
    ``norm_g.*``, ``d_proj1.*``, ``g_proj1.*``, ``d_proj2.*``, ``g_proj2.*``; see ``TWAM_KEY_MAP``) become
    ours under the same prefix; ``scale`` ``[heads, 1, 1]`` and ``beta``/``gamma`` ``[1, C, 1, 1]`` are
    flattened. Keys outside ``prefix`` or not of TWAM pass through unchanged, so a whole decoder's state
    dict can be converted one block at a time.

    Example:
        >>> ours = convert_twam_state_dict(official["params"], prefix="main_decoder.attn.Level_1.")
    """
    converted: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        local = key[len(prefix) :] if key.startswith(prefix) else None
        if local not in TWAM_KEY_MAP:
            converted[key] = value
            continue
        ours = TWAM_KEY_MAP[local]
        converted[prefix + ours] = value.reshape(-1) if ours in _FLATTENED else value
    return converted


class BidirectionalChannelAttention(nn.Module):
    """Bi-directional channel cross-attention between decoder features ``F_D`` and codebook features ``F_G``.

    ``Q_D = proj_q_d(norm_d(F_D))``, ``Q_G = proj_q_g(norm_g(F_G))``, ``V_D = proj_v_d(F_D)``,
    ``V_G = proj_v_g(F_G)`` (1x1 convolutions), one shared map ``softmax(norm(Q_D) norm(Q_G)^T *
    temperature)`` per head, and ``F_D' = F_D + gamma_d * (attn @ V_G)``, ``F_G' = F_G + gamma_g *
    (attn @ V_D)`` through the fused :func:`bidirectional_channel_attention`. ``temperature`` starts at 1,
    the gammas at 0 (the block starts as the identity). Same parameters as the official ``TWAM``: load
    its weights with :func:`convert_twam_state_dict`.

    Args:
        channels: C of both inputs.
        num_heads: heads; must divide ``channels``, with at most 128 channels per head.
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
        if channels // num_heads > MAX_CHANNELS_PER_HEAD:
            raise ValueError(
                f"channels per head ({channels // num_heads}) must be at most {MAX_CHANNELS_PER_HEAD}: use more heads"
            )
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
