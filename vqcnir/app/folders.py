"""The folder mode: a ``vqcnir-restore`` output folder shown beside the inputs it was restored from.

Inputs and outputs are paired by :func:`vqcnir.restoring.files.plan_jobs`, the mapping the restore command
itself uses (``IN/a/b.jpg`` -> ``OUT/a/b.png``), so each restored image sits beside its own input. The
page shows display copies made in the app's work folder: small JPEG thumbnails for the galleries and,
for the pair being compared, full-size PNGs (the input as ``read_rgb`` decodes it, which also makes TIFF
or 16-bit inputs viewable in a browser). The folders themselves are only read.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass

from PIL import Image

from vqcnir.data import read_rgb
from vqcnir.io import atomic_write, write_png
from vqcnir.restoring.files import plan_jobs

THUMBNAIL_SIDE = 320
MAX_GALLERY = 200  # pairs shown at once: thumbnails of a larger folder would take minutes to make


@dataclass(frozen=True)
class FolderPair:
    """An input image (``name`` relative to the inputs folder) and the restored PNG made from it."""

    name: str
    source: str
    restored: str


@dataclass(frozen=True)
class FolderListing:
    """The pairs found, and how many inputs have no restored image in the output folder yet."""

    pairs: list[FolderPair]
    unrestored: int


def pair_folder(inputs: str, restored: str) -> FolderListing:
    """Pair every image under ``inputs`` with its restoration under ``restored``, as ``vqcnir-restore`` names it.

    Raises FileNotFoundError for a missing folder and ValueError (naming the argument) when ``restored``
    is inside ``inputs`` or ``inputs`` holds no image.
    """
    for argument, folder in (("inputs", inputs), ("restored", restored)):
        if not folder or not os.path.isdir(folder):
            raise FileNotFoundError(f"{argument} folder not found: {folder!r}")
    jobs = plan_jobs(inputs, restored)
    pairs = [
        FolderPair(os.path.relpath(job.source, inputs).replace(os.sep, "/"), job.source, job.target)
        for job in jobs
        if os.path.isfile(job.target)
    ]
    return FolderListing(pairs, len(jobs) - len(pairs))


def _copy_name(path: str, kind: str) -> str:
    # named after the file's identity and age, so a display copy is reused until the file changes
    stat = os.stat(path)
    key = f"{os.path.realpath(path)}|{stat.st_mtime_ns}|{stat.st_size}|{kind}"
    return hashlib.sha1(key.encode()).hexdigest()[:20]


def thumbnail(path: str, folder: str, side: int = THUMBNAIL_SIDE) -> str:
    """A JPEG of ``path`` at most ``side`` pixels wide and high, in ``folder`` (made once per file version)."""
    target = os.path.join(folder, _copy_name(path, f"thumb{side}") + ".jpg")
    if not os.path.isfile(target):
        image = Image.fromarray(read_rgb(path))
        image.thumbnail((side, side))
        atomic_write(target, lambda tmp: image.save(tmp, format="JPEG", quality=90))
    return target


def full_size_copy(path: str, folder: str) -> str:
    """A browser-viewable full-size copy of ``path`` in ``folder``: PNGs copied, other formats decoded to PNG."""
    target = os.path.join(folder, _copy_name(path, "full") + ".png")
    if not os.path.isfile(target):
        if path.lower().endswith(".png"):
            atomic_write(target, lambda tmp: shutil.copyfile(path, tmp))
        else:
            write_png(target, read_rgb(path))
    return target
