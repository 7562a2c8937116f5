"""Writing files: every file vqcnir writes goes through here.

- :func:`atomic_write` (and :func:`write_text`, :func:`write_json`, :func:`write_png`): the file is written
  under a hidden temporary name beside its destination and renamed over it, so a reader (or a process
  killed mid-write) sees the old file or the new one, never a torn one. Crash-safe, not power-loss-safe
  (no fsync).
- :class:`StagingFolder`: a hidden folder in which a set of files is assembled, then renamed into place.
- :func:`remove_stale`: removes the temporaries and staging folders that killed writers left behind, and
  never one that a live process is still writing.
- :func:`to_uint8` / :func:`to_uint16`: float images in [0, 1] to integer arrays, channels last.

Permissions: files are created with mode ``0o666`` and folders with ``0o777``, minus the umask, as a
plain ``open()`` / ``mkdir`` gives (``tempfile.mkstemp`` / ``mkdtemp`` would give 0600 / 0700, and a
model folder shared with other users would be unreadable to them).

Liveness: a writer holds an exclusive ``flock`` on its temporary file, or on the ``.lock`` file inside
its staging folder, for as long as it writes. The kernel drops the lock when the process ends, even on
SIGKILL, so a temporary whose lock can be taken was left by a writer that died. Temporary files must
also be a few seconds old (some writers, like safetensors, replace the file they are given, which
drops the lock for the moment before the rename). A staging folder without a lock file (made by an
older vqcnir, or by a writer killed between ``mkdir`` and creating the lock) is removed only once it
has not changed for ``unlocked_age`` seconds. Where ``fcntl`` is missing (Windows), nothing is ever
judged stale.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import struct
import time
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; remove_stale then removes nothing
    fcntl = None  # type: ignore[assignment]

TEMP_PREFIX = ".tmp-"
STAGING_PREFIX = ".staging-"
LOCK_NAME = ".lock"
TEMP_MIN_AGE = 5.0  # seconds a temporary file must be unchanged before remove_stale may take it
_MAX_NAME = 200  # keeps the temporary's name under NAME_MAX (255) for any destination name


def atomic_write(path: str | os.PathLike, write: Callable[[str], Any]) -> None:
    """Call ``write(tmp_path)`` to write a temporary file beside ``path``, then rename it onto ``path``.

    The temporary keeps ``path``'s extension (for writers that pick a format from it), is created with
    the umask's permissions, and is removed if ``write`` raises. Parent folders are created.

    Example:
        >>> atomic_write("out/weights.safetensors", lambda tmp: save_file(tensors, tmp))  # doctest: +SKIP
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    name = os.path.basename(path)
    descriptor, tmp = _create_unique(directory, lambda: f"{TEMP_PREFIX}{secrets.token_hex(4)}-{name[-_MAX_NAME:]}")
    try:
        _lock(descriptor)
        mode = os.fstat(descriptor).st_mode & 0o777  # 0o666 minus the umask
        write(tmp)
        if os.stat(tmp).st_mode & 0o777 != mode:  # a writer that made its own file (safetensors: 0600)
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    finally:
        os.close(descriptor)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8, line endings as given) to ``path`` atomically."""
    if not isinstance(text, str):
        raise TypeError(f"argument 'text' must be a str, got {type(text).__name__}")

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8", newline="") as out:
            out.write(text)

    atomic_write(path, write)


def write_json(path: str | os.PathLike, payload: Any) -> None:
    """Write ``payload`` as indented JSON to ``path`` atomically (raises before writing if it cannot be encoded)."""
    write_text(path, json.dumps(payload, indent=2) + "\n")


def write_png(
    path: str | os.PathLike, image: np.ndarray, alpha: np.ndarray | None = None, text: dict[str, str] | None = None
) -> None:
    """Write an 8- or 16-bit image as a PNG, atomically (folders created).

    Args:
        path: destination (any name; the file is PNG whatever its extension).
        image: ``[H, W]`` (grey) or ``[H, W, 3]`` (RGB) ``uint8`` or ``uint16`` array (see :func:`to_uint8`).
        alpha: optional ``[H, W]`` alpha channel of the same dtype, stored as a fourth (or second) channel.
        text: Latin-1 ``key: value`` pairs stored as ``tEXt`` chunks before the pixels (read back by
            ``PIL.Image.open(path).info`` without decoding the image).

    Example:
        >>> write_png("restored/a.png", to_uint8(restored[0]))  # doctest: +SKIP
    """
    if not isinstance(image, np.ndarray) or image.dtype not in (np.uint8, np.uint16):
        kind = image.dtype if isinstance(image, np.ndarray) else type(image).__name__
        raise TypeError(f"argument 'image' must be a uint8 or uint16 numpy array, got {kind}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)) or 0 in image.shape:
        raise ValueError(f"argument 'image' must be [H, W] or [H, W, 3] with H, W >= 1, got {image.shape}")
    if alpha is not None:
        if not isinstance(alpha, np.ndarray) or alpha.dtype != image.dtype or alpha.shape != image.shape[:2]:
            shape = getattr(alpha, "shape", type(alpha).__name__)
            raise ValueError(
                f"argument 'alpha' must be a {image.dtype} array of shape {image.shape[:2]}, "
                f"got {getattr(alpha, 'dtype', '')} {shape}"
            )
        image = np.concatenate([image.reshape(*image.shape[:2], -1), alpha[..., None]], axis=-1)
    text = dict(text or {})
    for key, value in text.items():
        if not (isinstance(key, str) and isinstance(value, str) and 1 <= len(key) <= 79):
            raise ValueError(f"argument 'text' must map keys of 1 to 79 characters to strings, got {key!r}: {value!r}")
    image = np.ascontiguousarray(image)
    if image.dtype == np.uint8:
        info = PngInfo()
        for key, value in text.items():
            info.add_text(key, value)
        atomic_write(path, lambda tmp: Image.fromarray(image).save(tmp, format="PNG", pnginfo=info))
    else:  # Pillow cannot write 16-bit colour PNGs: encode them here
        data = _png_16bit(image, text)
        atomic_write(path, lambda tmp: _write_bytes(tmp, data))


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """Float image(s) in [0, 1] ``[..., C, H, W]`` -> ``uint8`` array ``[..., H, W, C]`` (clamped, rounded).

    Example:
        >>> to_uint8(torch.ones(3, 2, 2))[0, 0]
        array([255, 255, 255], dtype=uint8)
    """
    return _quantize(image, 255, torch.uint8).numpy()


def to_uint16(image: torch.Tensor) -> np.ndarray:
    """Float image(s) in [0, 1] ``[..., C, H, W]`` -> ``uint16`` array ``[..., H, W, C]`` (clamped, rounded)."""
    return _quantize(image, 65535, torch.int32).numpy().astype(np.uint16)


def _quantize(image: torch.Tensor, peak: int, dtype: torch.dtype) -> torch.Tensor:
    if not isinstance(image, torch.Tensor) or image.dim() < 3 or not image.is_floating_point():
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"argument 'image' must be a float tensor [..., C, H, W] in [0, 1], got {shape}")
    scaled = image.detach().float().clamp(0, 1).mul(peak).round().to(dtype)  # on the image's device
    return scaled.movedim(-3, -1).contiguous().cpu()


def _write_bytes(path: str, data: bytes) -> None:
    with open(path, "wb") as out:
        out.write(data)


def _png_16bit(image: np.ndarray, text: dict[str, str]) -> bytes:
    """PNG bytes of a ``uint16`` ``[H, W]`` or ``[H, W, C]`` (C = 2, 3, 4) array (PNG spec, filter 'Sub')."""
    height, width = image.shape[:2]
    channels = 1 if image.ndim == 2 else image.shape[2]
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]  # grey, grey + alpha, RGB, RGBA
    step = 2 * channels  # bytes per pixel
    rows = image.astype(">u2").view(np.uint8).reshape(height, width * step)
    filtered = rows.copy()
    filtered[:, step:] -= rows[:, :-step]  # 'Sub': difference to the same byte of the pixel on the left
    scanlines = np.concatenate([np.ones((height, 1), np.uint8), filtered], axis=1)  # filter type 1 per row

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + b"".join(chunk(b"tEXt", f"{key}\0{value}".encode("latin-1")) for key, value in text.items())
        + chunk(b"IDAT", zlib.compress(scanlines.tobytes(), 6))
        + chunk(b"IEND", b"")
    )


class StagingFolder:
    """A hidden, locked folder under ``parent`` to assemble files in, then :meth:`publish` into place.

    On leaving the ``with`` block, a folder that was not published is removed (also after an exception).

    Example:
        >>> with StagingFolder("checkpoints") as staging:  # doctest: +SKIP
        ...     write_text(os.path.join(staging.path, "a.txt"), "a")
        ...     staging.publish("checkpoints/iter_00000010")
    """

    def __init__(self, parent: str | os.PathLike) -> None:
        parent = os.fspath(parent)
        os.makedirs(parent, exist_ok=True)
        self.path = _make_unique_folder(parent)
        self.published = False
        self._lock_path = os.path.join(self.path, LOCK_NAME)
        self._descriptor: int | None = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        _lock(self._descriptor)

    def publish(self, final: str | os.PathLike) -> bool:
        """Rename the folder to ``final``; False (nothing moved) when ``final`` exists and is not empty."""
        os.remove(self._lock_path)  # the published folder carries no lock file (we still hold the lock)
        try:
            os.rename(self.path, os.fspath(final))
        except OSError:
            if not os.path.isdir(final):
                raise
            return False
        self.published = True
        return True

    def close(self) -> None:
        """Remove the folder unless published; release the lock."""
        if not self.published:
            shutil.rmtree(self.path, ignore_errors=True)
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None

    def __enter__(self) -> StagingFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def remove_stale(folder: str | os.PathLike, unlocked_age: float = 3600.0) -> list[str]:
    """Remove the temporary files and staging folders under ``folder`` (not recursive) whose writer died.

    A temporary or staging folder that a live process holds is never removed (see the module docstring).
    Returns the removed paths; a missing ``folder`` gives ``[]``.
    """
    folder = os.fspath(folder)
    if fcntl is None or not os.path.isdir(folder):
        return []
    removed = []
    for entry in os.scandir(folder):
        if entry.name.startswith(TEMP_PREFIX) and entry.is_file(follow_symlinks=False):
            if _age(entry.path) < TEMP_MIN_AGE:
                continue
            lock_path, is_folder = entry.path, False
        elif entry.name.startswith(STAGING_PREFIX) and entry.is_dir(follow_symlinks=False):
            lock_path, is_folder = os.path.join(entry.path, LOCK_NAME), True
        else:
            continue
        try:
            descriptor = os.open(lock_path, os.O_RDWR)
        except FileNotFoundError:
            if is_folder and _age(entry.path) > unlocked_age:
                shutil.rmtree(entry.path, ignore_errors=True)
                removed.append(entry.path)
            continue
        except OSError:  # not ours to open (another user's, read-only): cannot tell, leave it
            continue
        try:
            if _try_lock(descriptor):  # nobody holds it: its writer is gone
                if is_folder:
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(entry.path)
                removed.append(entry.path)
        finally:
            os.close(descriptor)
    return removed


def _age(path: str) -> float:
    try:
        return time.time() - os.stat(path).st_mtime
    except FileNotFoundError:
        return 0.0


def _lock(descriptor: int) -> None:
    if fcntl is not None:
        with contextlib.suppress(OSError):  # a filesystem without locks: the write still goes ahead
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _try_lock(descriptor: int) -> bool:
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # held by a live process (or locks unsupported: then never judged stale)
        return False
    return True


def _create_unique(directory: str, name: Callable[[], str]) -> tuple[int, str]:
    for _ in range(100):
        path = os.path.join(directory, name())
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666), path
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a unique temporary file in {directory}")


def _make_unique_folder(parent: str) -> str:
    for _ in range(100):
        path = os.path.join(parent, f"{STAGING_PREFIX}{secrets.token_hex(6)}")
        try:
            os.mkdir(path, 0o777)
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a unique staging folder in {parent}")
