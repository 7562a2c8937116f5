"""Restoring uploaded photos for the page: checks on each upload, the call into the model, the files written.

Every restoration is one call of :func:`vqcnir.restoring.models.restore_tensor`, as in ``vqcnir-restore``:
the whole image within ``max_memory``, exact tiles above it, progress after each tile. Uploads are
checked before anything is decoded: extension, file size, pixel count and the memory budget (from the
header, :func:`vqcnir.restoring.budget.check_image_budget`), then decoded as :func:`vqcnir.data.read_rgb`
reads them, as ``vqcnir-restore`` does. A rejected upload becomes
a message for the page, never an exception.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from PIL import Image

from vqcnir.data import IMAGE_EXTENSIONS, UnreadableImageError, read_rgb
from vqcnir.data.folders import to_tensor
from vqcnir.inference import check_self_ensemble
from vqcnir.io import to_uint8, write_png
from vqcnir.restoring.budget import ImageBudgetError, check_image_budget
from vqcnir.restoring.files import read_alpha
from vqcnir.restoring.models import restore_tensor

JobProgress = Callable[[float, str], None]
"""``progress(fraction, description)`` over a whole job of several photos."""

DEFAULT_MAX_UPLOAD_MB = 200
DEFAULT_MAX_MEGAPIXELS = 64.0


class UploadRejected(ValueError):
    """An upload the page does not restore; the message is shown on the page."""


@dataclass(frozen=True)
class UploadLimits:
    """The largest upload accepted: ``max_bytes`` of file and ``max_pixels`` of image (width x height)."""

    max_bytes: int = DEFAULT_MAX_UPLOAD_MB * 2**20
    max_pixels: int = int(DEFAULT_MAX_MEGAPIXELS * 1e6)

    def __post_init__(self) -> None:
        if self.max_bytes <= 0 or self.max_pixels <= 0:
            raise ValueError(f"upload limits must be positive, got {self.max_bytes} bytes and {self.max_pixels} pixels")


def _file_size(size: int) -> str:
    return f"{size / 2**20:.1f} MB" if size >= 2**20 else f"{size / 2**10:.1f} KB"


def check_upload(path: str, limits: UploadLimits, name: str | None = None) -> tuple[int, int]:
    """``(width, height)`` of the image file ``path``; raises :class:`UploadRejected` saying why it is refused.

    Checks the extension, the file size and the pixel count from the header, before decoding anything.
    ``name`` is the file name shown in messages (default: the base name of ``path``).
    """
    name = name or os.path.basename(path)
    if not name.lower().endswith(IMAGE_EXTENSIONS):
        raise UploadRejected(f"{name} is not an image file: expected one of {', '.join(IMAGE_EXTENSIONS)}")
    size = os.path.getsize(path)
    if size > limits.max_bytes:
        raise UploadRejected(
            f"{name} is {_file_size(size)}, over the upload limit of {_file_size(limits.max_bytes)} "
            "(vqcnir-app --max-upload-mb)"
        )
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        reason = str(error).replace(repr(path), repr(name)).replace(path, name)  # no server paths on the page
        raise UploadRejected(f"{name} is not an image that can be read ({type(error).__name__}: {reason})") from error
    if width * height > limits.max_pixels:
        raise UploadRejected(
            f"{name} is {width} x {height} = {width * height / 1e6:.3g} megapixels, over the limit of "
            f"{limits.max_pixels / 1e6:g} megapixels (vqcnir-app --max-megapixels)"
        )
    return width, height


@dataclass(frozen=True)
class RestoredPhoto:
    """One restored upload: ``input_png`` is the photo as the model read it, ``output_png`` the restoration."""

    name: str
    input_png: str
    output_png: str
    width: int
    height: int
    seconds: float


@dataclass
class RestoreReport:
    """What a job restored, and one message per upload it refused or could not restore."""

    restored: list[RestoredPhoto] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)


def _unique_stem(name: str, taken: set[str]) -> str:
    stem = os.path.splitext(name)[0] or "photo"
    candidate, count = stem, 1
    while candidate in taken:
        count += 1
        candidate = f"{stem}-{count}"
    taken.add(candidate)
    return candidate


def restore_uploads(
    model: torch.nn.Module,
    uploads: Sequence[str],
    folder: str,
    *,
    padding: str = "official",
    max_memory: int | str | None = "auto",
    limits: UploadLimits | None = None,
    progress: JobProgress | None = None,
    self_ensemble: int = 1,
) -> RestoreReport:
    """Restore each uploaded file into ``folder`` (``<name>.png`` and ``<name>.input.png``), in order.

    Refused uploads (not an image, too large, undecodable) and restorations that fail (out of memory)
    are reported in :attr:`RestoreReport.rejected` and the job goes on with the next upload.
    ``max_memory``: bytes, ``"auto"`` (80% of the memory free as each restoration starts) or None (no
    limit); photos that would need more go through exact tiles (or are refused with the reason when even
    those do not fit). ``progress(fraction, description)`` follows the whole job, tile by tile.
    ``self_ensemble``: 1, 2, 4 or 8 restorations of flipped / transposed copies averaged per photo.
    """
    check_self_ensemble(self_ensemble)
    limits = limits or UploadLimits()
    os.makedirs(folder, exist_ok=True)
    device = next(model.parameters()).device
    report, taken = RestoreReport(), set()
    count = len(uploads)
    for index, path in enumerate(uploads):
        name = os.path.basename(path)

        def step(done: int, total: int, description: str, index: int = index, name: str = name) -> None:
            if progress is not None:
                fraction = (index + done / max(total, 1)) / count
                progress(fraction, f"{name} ({index + 1}/{count}): {description}")

        try:
            check_upload(path, limits, name)
            budget = check_image_budget(model, path, padding, max_memory=max_memory, self_ensemble=self_ensemble)
            rgb = read_rgb(path)
        except (UploadRejected, ImageBudgetError) as error:
            report.rejected.append(str(error).replace(path, name))
            continue
        except UnreadableImageError as error:
            reason = error.reason.replace(path, name)
            report.rejected.append(f"{name} is not an image that can be read ({reason})")
            continue
        start = time.perf_counter()
        try:
            image = to_tensor(rgb).unsqueeze(0).to(device)
            restored = restore_tensor(
                model, image, padding, max_memory=budget.network, progress=step, self_ensemble=self_ensemble
            )
        except (RuntimeError, MemoryError) as error:  # the allocator's out-of-memory errors are RuntimeErrors
            first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
            report.rejected.append(f"{name} could not be restored: {first_line}")
            continue
        seconds = time.perf_counter() - start
        stem = _unique_stem(name, taken)
        output_png = os.path.join(folder, f"{stem}.png")
        input_png = os.path.join(folder, f"{stem}.input.png")
        write_png(output_png, to_uint8(restored[0]), read_alpha(path))
        write_png(input_png, rgb)
        height, width = rgb.shape[:2]
        report.restored.append(RestoredPhoto(name, input_png, output_png, width, height, seconds))
    return report
