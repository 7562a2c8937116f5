"""The memory budget from decoding on: an image is sized from its header and checked before it is decoded.

The budget (``--max-memory``) covers the image as well as the network: on the CPU, :data:`IMAGE_BYTES_PER_PIXEL`
bytes per pixel of the padded image are set aside for the decoded image and its copies (the decoder's
buffers, the 8-bit array, the float input, the padded input, the output and its 8-bit version), and the
network gets what is left (exact tiles when the whole image does not fit). An image whose copies alone, or
whose smallest tiles, do not fit is refused with :class:`ImageBudgetError` naming the file and the budget,
before a pixel is decoded. Only the planner traces the network here (shapes, no data).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import torch
from PIL import Image
from torch import nn

from vqcnir.data import UnreadableImageError
from vqcnir.inference import padded_size, resolve_budget
from vqcnir.restoring.models import forward_of, whole_image_tile
from vqcnir.tiling import MemoryBudgetError, format_bytes, plan_exact

# Held at once around the network, per pixel of the padded image: the float input (12), the padded input
# (12), the output (12), the 8-bit image (3) and the decoder's RGBX buffer (4), rounded up.
IMAGE_BYTES_PER_PIXEL = 48
# Added with a self-ensemble (vqcnir.inference): the flipped / transposed copy (12) and the float sum (12).
ENSEMBLE_BYTES_PER_PIXEL = 24


class ImageBudgetError(MemoryBudgetError):
    """An image that does not fit the memory budget; the message names the file, its size and the budget."""


@dataclass(frozen=True)
class Budget:
    """What a restoration may use: ``total`` bytes (None: no limit), of which ``network`` go to the model
    (None: the whole image was found to fit, or there is no limit)."""

    total: int | None
    network: int | None


def image_size(path: str) -> tuple[int, int]:
    """``(width, height)`` from the header of the image file ``path``, without decoding its pixels.

    Raises :class:`~vqcnir.data.UnreadableImageError` (one line) when the header cannot be read.
    """
    try:
        with warnings.catch_warnings():  # the budget decides about large images, not Pillow's warning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                return image.size
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise UnreadableImageError(path, f"{type(error).__name__}: {error}") from error


def image_bytes(height: int, width: int, padding: str = "official", self_ensemble: int = 1) -> int:
    """Bytes set aside for an ``H x W`` image and its copies (see :data:`IMAGE_BYTES_PER_PIXEL`), plus
    :data:`ENSEMBLE_BYTES_PER_PIXEL` when a self-ensemble averages several restorations."""
    padded_h, padded_w = padded_size(height, width, padding)
    per_pixel = IMAGE_BYTES_PER_PIXEL + (ENSEMBLE_BYTES_PER_PIXEL if self_ensemble > 1 else 0)
    return per_pixel * padded_h * padded_w


def check_image_budget(
    model: nn.Module,
    path: str,
    padding: str = "official",
    *,
    max_memory: int | str | None = "auto",
    tiling: str = "auto",
    tile: int | None = None,
    offload: str | None = None,
    self_ensemble: int = 1,
) -> Budget:
    """Check that the image file ``path`` can be restored within ``max_memory``, before decoding it.

    Reads the size from the header, sets aside the image's copies (on the CPU) and plans the network on
    what is left (shapes only). Returns the :class:`Budget`, whose ``network`` part is the ``max_memory``
    to give :func:`~vqcnir.restoring.models.restore_tensor`. Raises :class:`ImageBudgetError` naming the
    file and the budget, or :class:`~vqcnir.data.UnreadableImageError` for a header that cannot be read.
    ``self_ensemble`` > 1 sets aside the flipped copy and the sum of the restorations as well.
    """
    width, height = image_size(path)
    parameter = next(iter(model.parameters()), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    dtype = parameter.dtype if parameter is not None else torch.float32
    total = resolve_budget(max_memory, device)
    if total is None or tiling == "approximate":
        return Budget(total, total)
    name = os.path.basename(path)
    image = image_bytes(height, width, padding, self_ensemble) if device.type == "cpu" else 0
    if image >= total:
        raise ImageBudgetError(
            f"{name} is {width} x {height} ({width * height / 1e6:.3g} megapixels): holding it and its copies needs "
            f"{format_bytes(image)}, over the memory budget of {format_bytes(total)} (--max-memory)"
        )
    network = total - image
    tiling, tile = whole_image_tile(tile, tiling)
    if tiling == "whole":
        return Budget(total, None)
    padded_h, padded_w = padded_size(height, width, padding)
    try:
        plan = plan_exact(forward_of(model), (1, 3, padded_h, padded_w), dtype, device, model, network, tile, offload,
                          whole_if_fits=tiling == "auto" and tile is None)  # fmt: skip
    except MemoryBudgetError as error:
        raise ImageBudgetError(
            f"{name} is {width} x {height} ({width * height / 1e6:.3g} megapixels): it does not fit the memory "
            f"budget of {format_bytes(total)} (--max-memory), {format_bytes(image)} of it for the image: "
            f"{' '.join(str(error).split())}"
        ) from error
    # the whole image fits: no limit left to check, and the restoration need not trace the network again
    return Budget(total, None if plan.whole else network)
