"""Restoring image files: input -> output paths, what may be replaced, and restoring one file or a folder.

Outputs are PNGs (8 or 16 bits per channel) named after the inputs (``a/b.jpg`` -> ``OUT/a/b.png``),
with the input folder's structure and each input's size, upright (EXIF orientation applied). Nothing is
written into the input folder (or a folder inside it) or onto an input file, and an existing file is
replaced only when it is a previous output of the same input: every output carries the marker
:data:`SOURCE_KEY` in its PNG text chunk, a digest of the real path of the input it was restored from
(:func:`source_marker`; a digest, so that shared PNGs do not reveal folder names). Anything else needs
``overwrite`` (``--overwrite``). Inputs are read as :func:`vqcnir.data.read_rgb` does (grayscale repeated
to RGB, 16-bit scaled to 8 bits: the model works on 8-bit images); an alpha channel passes through
unchanged to the output PNG. Each image is sized from its header and checked against the memory budget
before it is decoded (:mod:`vqcnir.restoring.budget`). In a folder, a file that cannot be restored is
reported and the run goes on.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from vqcnir.data import IMAGE_EXTENSIONS, UnreadableImageError, list_images, read_rgb
from vqcnir.data.folders import to_tensor
from vqcnir.inference import check_self_ensemble
from vqcnir.io import remove_stale, to_uint8, to_uint16, write_png
from vqcnir.progress import Progress
from vqcnir.restoring.budget import check_image_budget
from vqcnir.restoring.models import AUTO_OVERLAP, restore_tensor
from vqcnir.tiling import TilingError

SOURCE_KEY = "vqcnir-restored-from"  # PNG text key of the marker that ties an output to its input
BIT_DEPTHS = (8, 16)
# EXIF orientation -> the PIL transposition that makes the pixels upright (as PIL.ImageOps.exif_transpose).
ORIENTATIONS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


class OverwriteError(ValueError):
    """Restoring would write into the input folder or onto an input file."""


@dataclass(frozen=True)
class Job:
    source: str
    target: str


def _inside(path: str, folder: str) -> bool:
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def plan_jobs(source: str, output: str) -> list[Job]:
    """Input -> output paths; raises OverwriteError before anything is written if an input could be hit.

    ``source`` is an image file or a folder (searched recursively). For a folder, ``output`` is a folder
    that must not be the input folder or inside it. For a file, ``output`` is a ``.png`` path or a folder.
    """
    if os.path.isdir(source):
        if _inside(output, source):
            raise OverwriteError(
                f"output folder {output!r} is the input folder {source!r} or inside it: choose a folder outside "
                "the input so that inputs are never overwritten"
            )
        files = list_images(source)
        if not files:
            raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {source!r}")
        jobs = [
            Job(os.path.join(source, rel), os.path.join(output, os.path.splitext(rel)[0] + ".png")) for rel in files
        ]
    elif os.path.isfile(source):
        if not source.lower().endswith(IMAGE_EXTENSIONS):
            raise ValueError(f"input {source!r} is not an image file ({', '.join(IMAGE_EXTENSIONS)})")
        if output.lower().endswith(IMAGE_EXTENSIONS):
            if not output.lower().endswith(".png"):
                raise ValueError(f"output {output!r} must be a .png file (restored images are written as PNG)")
            target = output
        else:
            target = os.path.join(output, os.path.splitext(os.path.basename(source))[0] + ".png")
        jobs = [Job(source, target)]
    else:
        raise FileNotFoundError(f"input not found: {source}")
    inputs = {os.path.realpath(job.source) for job in jobs}
    seen: dict[str, str] = {}
    for job in jobs:
        real = os.path.realpath(job.target)
        if real in inputs or (os.path.exists(real) and os.path.samefile(real, job.source)):
            raise OverwriteError(f"output {job.target!r} is an input file: refusing to overwrite it")
        if real in seen:
            raise ValueError(f"inputs {seen[real]!r} and {job.source!r} would both be written to {job.target!r}")
        seen[real] = job.source
    return jobs


def check_writable(jobs: Sequence[Job]) -> None:
    """Raise PermissionError / NotADirectoryError naming the folder when an output cannot be written.

    For each output folder, its nearest existing ancestor must be a writable folder (tested by creating
    and removing a temporary file there, which also catches read-only file systems).
    """
    checked: set[str] = set()
    for job in jobs:
        folder = os.path.dirname(os.path.abspath(job.target))
        existing = folder
        while not os.path.exists(existing):
            existing = os.path.dirname(existing)
        if existing in checked:
            continue
        if not os.path.isdir(existing):
            raise NotADirectoryError(f"output folder {folder!r} cannot be created: {existing!r} is a file")
        try:
            with tempfile.TemporaryFile(dir=existing):
                pass
        except OSError as error:
            raise PermissionError(f"output folder {folder!r} is not writable ({existing!r}: {error})") from error
        checked.add(existing)


def source_marker(source: str) -> str:
    """The marker written into the output of ``source``: SHA-256 (hex, 32 digits) of its real path."""
    return hashlib.sha256(os.path.realpath(source).encode("utf-8", "surrogateescape")).hexdigest()[:32]


def is_output_of(target: str, source: str) -> bool:
    """True when ``target`` is a PNG that ``vqcnir-restore`` wrote from ``source`` (its marker matches)."""
    try:
        with Image.open(target) as image:  # text chunks before the pixels are read with the header
            return image.format == "PNG" and image.info.get(SOURCE_KEY) == source_marker(source)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return False


def check_targets(jobs: Sequence[Job], overwrite: bool = False) -> None:
    """Raise :class:`OverwriteError` when an output exists that is not a previous output of its input.

    With ``overwrite``, every existing output may be replaced (inputs never are: :func:`plan_jobs`).
    """
    if overwrite:
        return
    foreign = [job for job in jobs if os.path.lexists(job.target) and not is_output_of(job.target, job.source)]
    if foreign:
        job = foreign[0]
        others = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
        raise OverwriteError(
            f"output {job.target!r}{others} already exists and is not a restoration of {job.source!r}: refusing "
            "to replace it (give --overwrite to replace, or choose another output)"
        )


def orientation(path: str) -> int:
    """The EXIF orientation tag of an image file (1 = upright, also when absent or unreadable)."""
    try:
        with Image.open(path) as image:
            return int(image.getexif().get(0x0112, 1))
    except (OSError, ValueError, TypeError, SyntaxError, Image.DecompressionBombError):
        return 1


def upright(array: np.ndarray, tag: int) -> np.ndarray:
    """``array`` ``[H, W(, C)]`` uint8 turned as EXIF orientation ``tag`` says."""
    if tag not in ORIENTATIONS:
        return array
    return np.asarray(Image.fromarray(array).transpose(ORIENTATIONS[tag])).copy()


def read_alpha(path: str) -> np.ndarray | None:
    """The ``[H, W]`` uint8 alpha channel of an image file, or None when it has none."""
    with Image.open(path) as image:
        if image.mode == "P" and "transparency" in image.info:
            image = image.convert("RGBA")
        if image.mode in ("RGBA", "LA", "PA"):
            return np.asarray(image.getchannel("A"), dtype=np.uint8).copy()
    return None


@dataclass(frozen=True)
class Options:
    """How each image is restored (see ``vqcnir-restore --help``)."""

    padding: str = "official"
    tile: int | None = None
    overlap: int = AUTO_OVERLAP
    max_memory: int | str | None = "auto"
    tiling: str = "auto"
    offload: str | None = None
    bit_depth: int = 8
    overwrite: bool = True  # False: an output that appeared since check_targets is kept (a failure instead)
    self_ensemble: int = 1  # restorations of flipped / transposed copies averaged (vqcnir.inference)


@dataclass(frozen=True)
class Failure:
    """An input that was not restored, and why (one line)."""

    source: str
    reason: str

    def __str__(self) -> str:
        return f"{self.source}: {self.reason}"


# What one image can fail with while the others still restore: an undecodable or oversized file, a
# budget its tiles do not fit, a network exact tiling cannot run, the device running out of memory.
IMAGE_ERRORS = (UnreadableImageError, MemoryError, TilingError, torch.OutOfMemoryError, OverwriteError)


def tile_progress(name: str, enabled: bool) -> Callable[[int, int, str], None]:
    """A progress callback drawing a bar over one image's tiles (nothing for whole-image inference)."""
    bars: list[Progress] = []

    def update(done: int, total: int, description: str) -> None:
        if total <= 1:
            return
        if not bars:
            bars.append(Progress(total, f"  {name}", enabled=enabled, unit="tile"))
        bars[0].update(description.split(": ")[-1])
        if done == total:
            bars[0].close()

    return update


def restore_file(
    model: torch.nn.Module, job: Job, device: torch.device, options: Options = Options(), progress: bool = False
) -> None:
    """Restore one file: checked against the budget from its header, EXIF orientation applied, the input's
    size kept, alpha passed through, the marker of its input written into the PNG."""
    budget = check_image_budget(model, job.source, options.padding, max_memory=options.max_memory,
                                tiling=options.tiling, tile=options.tile, offload=options.offload,
                                self_ensemble=options.self_ensemble)  # fmt: skip
    tag = orientation(job.source)
    rgb = upright(read_rgb(job.source), tag)
    alpha = read_alpha(job.source)
    image = to_tensor(rgb).unsqueeze(0)
    del rgb
    restored = restore_tensor(
        model, image.to(device), options.padding, options.tile, options.overlap, max_memory=budget.network,
        tiling=options.tiling, progress=tile_progress(os.path.basename(job.source), progress), offload=options.offload,
        self_ensemble=options.self_ensemble,
    )  # fmt: skip
    del image
    rgb = to_uint8(restored[0]) if options.bit_depth == 8 else to_uint16(restored[0])
    del restored
    if alpha is not None:  # 8-bit alpha scaled to the colour's depth (x 257 maps 255 to 65535)
        alpha = upright(alpha, tag).astype(rgb.dtype) * (1 if options.bit_depth == 8 else 257)
    if not options.overwrite:  # checked again just before writing: a file may have appeared meanwhile
        check_targets([job])
    write_png(job.target, rgb, alpha, text={SOURCE_KEY: source_marker(job.source)})


def restore_all(
    model: torch.nn.Module,
    jobs: Sequence[Job],
    device: torch.device,
    padding: str = "official",
    tile: int | None = None,
    overlap: int = AUTO_OVERLAP,
    progress: bool = True,
    *,
    max_memory: int | str | None = "auto",
    tiling: str = "auto",
    offload: str | None = None,
    bit_depth: int = 8,
    overwrite: bool = True,
    self_ensemble: int = 1,
) -> list[Failure]:
    """Restore every job; an input that cannot be restored is reported on stderr (one line naming it and
    why) and the others go on. Returns the failures.

    ``tile=0``: whole images; ``tile=N``: exact tiles of N pixels (approximate with ``tiling="approximate"``,
    which alone uses ``overlap``). ``max_memory`` (default ``"auto"``): exact tiling for images that would
    not fit, a refusal for images whose smallest tiles do not fit. ``bit_depth``: 8 or 16 bits per channel.
    ``overwrite=False``: an output that is not an earlier restoration of its input (see :func:`check_targets`,
    which callers run first) is kept and reported, also when it appeared during the run. ``self_ensemble``: 1, 2,
    4 or 8 restorations of flipped / transposed copies averaged (:func:`vqcnir.inference.restore`).
    Temporary files that a killed earlier run left in the output folders are removed first.
    """
    check_self_ensemble(self_ensemble)  # before any file is touched
    options = Options(padding, tile, overlap, max_memory, tiling, offload, bit_depth, overwrite, self_ensemble)
    for folder in sorted({os.path.dirname(os.path.abspath(job.target)) for job in jobs}):
        remove_stale(folder)
    failures = []
    with Progress(len(jobs), "restoring", enabled=progress) as bar:
        for job in jobs:
            try:
                restore_file(model, job, device, options, progress)
            except IMAGE_ERRORS as error:
                failure = Failure(job.source, _reason(job.source, error))
                print(f"not restored: {failure}", file=sys.stderr, flush=True)
                failures.append(failure)
            bar.update(os.path.basename(job.source))
    return failures


def _reason(source: str, error: BaseException) -> str:
    reason = error.reason if isinstance(error, UnreadableImageError) else str(error)
    reason = " ".join(reason.replace(f"{os.path.basename(source)}: ", "", 1).split())  # the name is said once
    return reason or type(error).__name__
