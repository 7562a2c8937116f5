"""Deformable convolution layers: ``DeformConv2d``, ``DeformConv2dPack`` and VQCNIR's ``TextureWarp``."""

from __future__ import annotations

import math

import torch
from torch import nn

from vqcnir_ops.conv_geometry import IntPair, check_int_pair
from vqcnir_ops.deform.functional import deform_conv2d, geometry
from vqcnir_ops.depthwise.module import DepthwiseConv2d
from vqcnir_ops.validation import check_tensor


class DeformConv2d(nn.Module):
    """Modulated deformable convolution with offsets and mask given by the caller.

    Parameters ``weight [Cout, Cin / groups, kh, kw]`` and ``bias [Cout]`` (torchvision's
    ``DeformConv2d`` names and initialisation). ``forward(input, offset, mask=None)``: see
    :func:`vqcnir_ops.deform_conv2d` for the layouts.

    Example:
        >>> conv = DeformConv2d(8, 16, 3, padding=1)
        >>> x, offset = torch.randn(1, 8, 10, 10), torch.zeros(1, 18, 10, 10)
        >>> conv(x, offset).shape
        torch.Size([1, 16, 10, 10])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair,
        stride: IntPair = 1,
        padding: IntPair = 0,
        dilation: IntPair = 1,
        groups: int = 1,
        bias: bool = True,
        backend: str | None = None,
    ) -> None:
        super().__init__()
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(
                f"in_channels ({in_channels}) and out_channels ({out_channels}) must be divisible by groups ({groups})"
            )
        self.in_channels, self.out_channels, self.groups, self.backend = in_channels, out_channels, groups, backend
        self.kernel_size = check_int_pair("kernel_size", kernel_size, 1)
        self.stride, self.padding, self.dilation = geometry(stride, padding, dilation)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, *self.kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight.shape[1] * self.kernel_size[0] * self.kernel_size[1]
            nn.init.uniform_(self.bias, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))

    def forward(self, input: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return deform_conv2d(
            input, offset, self.weight, self.bias, self.stride, self.padding, self.dilation, mask, backend=self.backend
        )

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, dilation={self.dilation}, groups={self.groups}, bias={self.bias is not None}"
        )


class DeformConv2dPack(DeformConv2d):
    """DCNv2 that predicts its own offsets and mask from a conditioning feature.

    ``conv_offset`` (a plain conv with the same kernel, stride, padding and dilation, zero-initialised, so
    the layer starts as a plain convolution: zero offsets and mask ``sigmoid(0) = 0.5`` on every tap)
    maps the conditioning feature ``[B, cond_channels, H, W]``
    to ``3 * offset_groups * kh * kw`` channels: the first two thirds are the offsets in torchvision's
    layout, the last third the mask logits (sigmoid). Parameter names match BasicSR's
    ``ModulatedDeformConvPack`` (``weight``, ``bias``, ``conv_offset.weight``, ``conv_offset.bias``),
    which VQCNIR's ``DCNv2Pack`` extends.

    Example:
        >>> dcn = DeformConv2dPack(8, 8, 3, padding=1, offset_groups=4)
        >>> x = torch.randn(1, 8, 12, 12)
        >>> plain = torch.nn.functional.conv2d(x, 0.5 * dcn.weight, dcn.bias, padding=1)
        >>> torch.allclose(dcn(x), plain, atol=1e-5)
        True
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair,
        stride: IntPair = 1,
        padding: IntPair = 0,
        dilation: IntPair = 1,
        groups: int = 1,
        offset_groups: int = 1,
        bias: bool = True,
        cond_channels: int | None = None,
        backend: str | None = None,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, backend)
        if offset_groups < 1 or in_channels % offset_groups:
            raise ValueError(f"in_channels ({in_channels}) must be divisible by offset_groups ({offset_groups})")
        self.offset_groups = offset_groups
        self.cond_channels = in_channels if cond_channels is None else cond_channels
        taps = self.kernel_size[0] * self.kernel_size[1]
        self.conv_offset = nn.Conv2d(
            self.cond_channels, 3 * offset_groups * taps, self.kernel_size, self.stride, self.padding, self.dilation
        )
        nn.init.zeros_(self.conv_offset.weight)
        nn.init.zeros_(self.conv_offset.bias)

    def offsets_and_mask(self, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(offset [B, 2 * OG * K, Ho, Wo], mask [B, OG * K, Ho, Wo])`` predicted from ``cond``."""
        predicted = self.conv_offset(cond)
        split = 2 * predicted.shape[1] // 3
        return predicted[:, :split], torch.sigmoid(predicted[:, split:])

    def forward(self, input: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:  # type: ignore[override]
        """``input [B, in_channels, H, W]``; ``cond [B, cond_channels, H', W']`` (default: ``input``)."""
        offset, mask = self.offsets_and_mask(input if cond is None else cond)
        return super().forward(input, offset, mask)


class TextureWarp(nn.Module):
    """VQCNIR's texture warping: offsets from both decoders' features, then a deformable conv.

    ``forward(x_main, x_cond, previous_offset=None) -> (warped, offset_feature)``:

    - ``offset_conv1``: ``cat([x_cond, x_main])`` -> 1x1 conv -> GroupNorm -> SiLU -> depth-wise 7x7
      (``DepthwiseConv2d``) -> GroupNorm -> SiLU -> 1x1 conv (``channels`` wide);
    - ``offset_conv2``: ``cat([that, previous_offset])`` (the coarser level's offset feature, upsampled
      x2 and doubled by the caller) -> 3x3 conv -> GroupNorm -> SiLU: the ``offset_feature``;
    - ``dcn``: :class:`DeformConv2dPack` (3x3, padding 1, ``offset_groups`` = 4) on ``x_main``, with offsets
      and mask predicted from ``offset_feature``.

    Submodule and parameter names are the official ``TextureWarpingModule``'s (its weights load through
    ``vqcnir.official.texture_warp_state_dict_from_official``). ``channels`` must be divisible by
    ``norm_groups`` (32) and by ``offset_groups``.

    Example:
        >>> warp = TextureWarp(64)
        >>> warped, offset = warp(torch.randn(1, 64, 16, 16), torch.randn(1, 64, 16, 16))
        >>> warped.shape, offset.shape
        (torch.Size([1, 64, 16, 16]), torch.Size([1, 64, 16, 16]))
    """

    def __init__(
        self,
        channels: int,
        cond_channels: int | None = None,
        offset_groups: int = 4,
        previous_offset_channels: int = 0,
        norm_groups: int = 32,
        backend: str | None = None,
    ) -> None:
        super().__init__()
        cond_channels = channels if cond_channels is None else cond_channels
        self.channels, self.previous_offset_channels = channels, previous_offset_channels

        def norm() -> nn.GroupNorm:
            return nn.GroupNorm(norm_groups, channels, eps=1e-6, affine=True)

        self.offset_conv1 = nn.Sequential(
            nn.Conv2d(channels + cond_channels, channels, 1), norm(), nn.SiLU(),
            DepthwiseConv2d(channels, 7, padding=3), norm(), nn.SiLU(),
            nn.Conv2d(channels, channels, 1),
        )  # fmt: skip
        self.offset_conv2 = nn.Sequential(
            nn.Conv2d(channels + previous_offset_channels, channels, 3, padding=1), norm(), nn.SiLU()
        )
        self.dcn = DeformConv2dPack(channels, channels, 3, padding=1, offset_groups=offset_groups, backend=backend)

    def forward(
        self, x_main: torch.Tensor, x_cond: torch.Tensor, previous_offset: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        check_tensor("x_main", x_main, ndim=4)
        check_tensor("x_cond", x_cond, ndim=4)
        offset = self.offset_conv1(torch.cat([x_cond, x_main], dim=1))
        if (previous_offset is None) != (self.previous_offset_channels == 0):
            raise ValueError(
                f"argument 'previous_offset' must be given exactly when previous_offset_channels > 0 "
                f"(here {self.previous_offset_channels})"
            )
        if previous_offset is not None:
            offset = torch.cat([offset, previous_offset], dim=1)
        offset = self.offset_conv2(offset)
        return self.dcn(x_main, offset), offset
