"""VGG16 and AlexNet convolutional feature stacks, written here so that torchvision is never needed.

Layer indices match torchvision's ``vgg16().features`` and ``alexnet().features``, so a torchvision
state dict (``features.<i>.weight``) loads into either stack unchanged. Both return the ReLU outputs
that LPIPS compares (five taps each).
"""

from __future__ import annotations

import torch
from torch import nn

# torchvision's configuration "D": channels of each 3x3 conv, "M" = 2x2 max-pool with stride 2.
_VGG16_CFG: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
# Indices (in ``features``) of relu1_2, relu2_2, relu3_3, relu4_3, relu5_3.
VGG16_TAPS: tuple[int, ...] = (3, 8, 15, 22, 29)
VGG16_CHANNELS: tuple[int, ...] = (64, 128, 256, 512, 512)
# Indices of the ReLU after each of AlexNet's five convolutions.
ALEXNET_TAPS: tuple[int, ...] = (1, 4, 7, 9, 11)
ALEXNET_CHANNELS: tuple[int, ...] = (64, 192, 384, 256, 256)


class _TappedFeatures(nn.Module):
    """A ``features`` sequence that returns the activations at ``taps`` (and stops after the last)."""

    taps: tuple[int, ...]
    channels: tuple[int, ...]

    def __init__(self, layers: list[nn.Module], taps: tuple[int, ...], channels: tuple[int, ...]) -> None:
        super().__init__()
        self.features = nn.Sequential(*layers[: max(taps) + 1])
        self.taps, self.channels = taps, channels

    def conv_layers(self) -> list[nn.Conv2d]:
        """The convolutions in order (the layers that carry weights)."""
        return [m for m in self.features if isinstance(m, nn.Conv2d)]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``x`` ``[B, 3, H, W]`` -> one ``[B, C_k, H_k, W_k]`` activation per tap."""
        out = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in self.taps:
                out.append(x)
        return out


class VGG16Features(_TappedFeatures):
    """VGG16's 13 convolutions (3x3, padding 1, ReLU) with 4 max-pools; taps relu1_2 ... relu5_3.

    Example:
        >>> feats = VGG16Features()(torch.randn(1, 3, 32, 32))
        >>> [f.shape[1] for f in feats]
        [64, 128, 256, 512, 512]
    """

    def __init__(self) -> None:
        layers: list[nn.Module] = []
        in_channels = 3
        for item in _VGG16_CFG:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(in_channels, int(item), kernel_size=3, padding=1), nn.ReLU(inplace=False)]
                in_channels = int(item)
        super().__init__(layers, VGG16_TAPS, VGG16_CHANNELS)


class AlexNetFeatures(_TappedFeatures):
    """AlexNet's five convolutions as in torchvision (11x11/4, 5x5, 3x3 x3; 3x3/2 max-pools).

    Inputs must be at least 31 x 31 pixels (the third tap needs two pools to leave a pixel).

    Example:
        >>> feats = AlexNetFeatures()(torch.randn(1, 3, 64, 64))
        >>> [f.shape[1] for f in feats]
        [64, 192, 384, 256, 256]
    """

    def __init__(self) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(inplace=False),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(inplace=False),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=False),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=False),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=False),
        ]
        super().__init__(layers, ALEXNET_TAPS, ALEXNET_CHANNELS)
