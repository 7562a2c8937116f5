"""Stage 1: the VQGAN whose codebook and decoder G become VQCNIR's high-quality prior.

Encoder (4x4 conv, three stride-2 levels) -> 1x1 conv to the code dim -> nearest-code quantization
-> 3x3 conv back -> decoder G (three x2 levels) -> RGB conv. The attribute names are shared with
:class:`vqcnir.model.VQCNIR`, so a stage-1 state dict loads into stage 2 as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn

from vqcnir import inference
from vqcnir.blocks import down_block, up_block
from vqcnir.config import VQCNIRConfig
from vqcnir_ops import VectorQuantizer


class Encoder(nn.Module):
    """Image ``[B, 3, H, W]`` (H, W multiples of 8) -> features at levels 2, 4 and 8.

    ``enhance`` (stage 2's AIEM stack, built by the caller) runs on the level-8 feature when given.
    """

    def __init__(self, config: VQCNIRConfig, enhance: nn.Module | None = None) -> None:
        super().__init__()
        channels = config.encoder_channels
        # A 4x4 conv with padding 1 (official): H -> H - 1, and the stride-2 convs then give H/2, H/4, H/8.
        self.in_conv = nn.Conv2d(config.in_channels, channels[0], 4, padding=1)
        self.blocks = nn.ModuleList(
            down_block(channels[i], channels[i + 1], config.norm_groups) for i in range(len(channels) - 1)
        )
        self.enhance = enhance

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        x = self.in_conv(image)
        features = []
        for block in self.blocks:
            x = block(x)
            features.append(x)
        if self.enhance is not None:
            features[-1] = self.enhance(features[-1])
        return features


class CodebookDecoder(nn.Module):
    """Decoder G: level-8 feature -> features at levels 8, 4, 2, 1 (``{level: feature}``)."""

    def __init__(self, config: VQCNIRConfig) -> None:
        super().__init__()
        channels = config.decoder_channels
        self.blocks = nn.ModuleList(
            up_block(channels[i], channels[i + 1], config.norm_groups) for i in range(len(channels) - 1)
        )

    def forward(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        level = 8
        features = {level: x}
        for block in self.blocks:
            x = block(x)
            level //= 2
            features[level] = x
        return features


class VQGANOutput(NamedTuple):
    image: torch.Tensor  # [B, 3, H, W] reconstruction
    quant_loss: torch.Tensor  # codebook + beta * commitment (or code alignment with gt_indices)
    indices: torch.Tensor  # [B, H/8, W/8]
    latent: torch.Tensor  # [B, code_dim, H/8, W/8] before quantization


class VQGAN(nn.Module):
    """The stage-1 model, trained on clean well-lit images.

    Args:
        config: the network's sizes.
        enhance: stage 2's AIEM stack, run on the encoder's level-8 feature (None in stage 1).
        backend: ``vqcnir_ops`` backend of the nearest-code lookup (default: automatic).

    Example:
        >>> model = VQGAN(VQCNIRConfig.tiny())
        >>> out = model(torch.rand(1, 3, 64, 64))
        >>> out.image.shape, out.indices.shape
        (torch.Size([1, 3, 64, 64]), torch.Size([1, 8, 8]))
    """

    def __init__(self, config: VQCNIRConfig, enhance: nn.Module | None = None, backend: str | None = None) -> None:
        super().__init__()
        if not isinstance(config, VQCNIRConfig):
            raise TypeError(f"argument 'config' must be a VQCNIRConfig, got {type(config).__name__}")
        self.config = config
        self.encoder = Encoder(config, enhance)
        self.quant_conv = nn.Conv2d(config.encoder_channels[-1], config.code_dim, 1)
        self.quantizer = VectorQuantizer(config.codebook_size, config.code_dim, beta=config.beta, backend=backend)
        self.post_quant_conv = nn.Conv2d(config.code_dim, config.decoder_channels[0], 3, padding=1)
        self.decoder_g = CodebookDecoder(config)
        self.to_rgb = nn.Conv2d(config.decoder_channels[-1], config.in_channels, 3, padding=1)

    def encode(self, image: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Encoder features and the pre-quantization latent ``[B, code_dim, H/8, W/8]``."""
        check_image(image, self.config.in_channels)
        features = self.encoder(image)
        return features, self.quant_conv(features[-1])

    @torch.no_grad()
    def encode_indices(self, image: torch.Tensor) -> torch.Tensor:
        """Code indices ``[B, H/8, W/8]`` of a clean image: the targets of stage 2's code alignment."""
        return self.quantizer(self.encode(image)[1]).indices

    def forward(self, image: torch.Tensor) -> VQGANOutput:
        _, latent = self.encode(image)
        quant = self.quantizer(latent)
        features = self.decoder_g(self.post_quant_conv(quant.quantized))
        return VQGANOutput(self.to_rgb(features[1]), quant.loss, quant.indices, latent)

    @torch.no_grad()
    def restore(
        self,
        image: torch.Tensor,
        padding: str = "official",
        tile: int | None = None,
        overlap: int | None = None,
        *,
        max_memory: int | str | None = None,
        tiling: str = "auto",
        progress: Callable[[int, int, str], None] | None = None,
        offload: str | None = None,
        self_ensemble: int = 1,
    ) -> torch.Tensor:
        """The network's output image for ``image`` of any size (a stage-1 VQGAN: its reconstruction
        through the codebook; :class:`vqcnir.model.VQCNIR`: the restored night photo).

        ``image``: ``[B, 3, H, W]`` or ``[3, H, W]`` float in [0, 1] (any float dtype and device); returned with
        the same shape, dtype and device, not clamped. ``tiling``: ``"auto"`` (whole image unless
        ``max_memory`` needs exact tiles), ``"whole"``, ``"exact"`` (equal to the whole image up to rounding,
        in memory bounded by ``tile``/``max_memory``) or ``"approximate"`` (the old overlapping tiles, with
        ``tile`` and ``overlap``). ``max_memory``: bytes, ``"4GB"``, or ``"auto"``. ``progress(done, total,
        description)`` is called after each tile. ``offload``: a folder for the full-resolution
        activations of exact tiling. ``self_ensemble``: 1, 2, 4 or 8 restorations of flipped / transposed
        copies averaged (more time, a little more PSNR and SSIM). Details: :mod:`vqcnir.inference`.

        Example:
            >>> out = model.restore(night, max_memory="4GB", progress=print)  # doctest: +SKIP
        """
        return inference.restore(
            lambda x: self(x).image, image, padding, module=self, channels=self.config.in_channels,
            max_memory=max_memory, tiling=tiling, tile=tile, overlap=overlap, progress=progress, offload=offload,
            self_ensemble=self_ensemble,
        )  # fmt: skip


def check_image(image: torch.Tensor, channels: int) -> None:
    """The networks take ``[B, C, H, W]`` float images with H, W multiples of 8 (see vqcnir.inference)."""
    if not isinstance(image, torch.Tensor) or image.dim() != 4 or image.shape[1] != channels:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"argument 'image' must be a [B, {channels}, H, W] tensor, got {shape}")
    if not image.is_floating_point():
        raise TypeError(f"argument 'image' must be a float tensor in [0, 1], got {image.dtype}")
    if image.shape[2] % 8 or image.shape[3] % 8:
        raise ValueError(
            f"argument 'image' must have H and W divisible by 8, got {tuple(image.shape[2:])}; "
            "use model.restore or vqcnir.inference.padded (they pad, run and crop back) for other sizes"
        )
