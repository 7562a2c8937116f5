"""A small real-photo demo set for running the recipes with no dataset: night-blur pairs in a cache folder.

The photographs come from installed packages only (scikit-image's bundled samples; SPORCO's Kodak and
Waterloo images when SPORCO is installed), never from the network; their licences are listed in
``vqcnir/data/NOTICE``, which is copied next to the pairs. Each photo is resized so that its short
side is two tiles, cut into non-overlapping ``tile`` x ``tile`` tiles, and degraded with
:func:`~vqcnir.data.degrade.degrade` (blur lengths scaled down for the small tiles). Whole photos are
held out for the test split, so test tiles show scenes the model never saw.

The cache folder is named after a digest of the set's manifest (tile, seed, degradation parameters and the
photos found), so environments with different photos (with and without SPORCO) use different folders. A
set is built in a staging folder and renamed into place in one step; a published set is never modified or
deleted by vqcnir, so any number of processes can build and read sets at the same time.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass

import numpy as np
from PIL import Image

from vqcnir.io import StagingFolder, remove_stale, write_json

from .degrade import NightBlurParams
from .io import read_rgb
from .photos import package_folder
from .synthetic import synthesize_pairs

FORMAT_VERSION = 1
NOTICE_PATH = os.path.join(os.path.dirname(__file__), "NOTICE")

# (package, file under the package's data/ folder); test photos are held out whole.
DEMO_SOURCES = (
    ("skimage", "astronaut.png"),
    ("skimage", "chelsea.png"),
    ("skimage", "coffee.png"),
    ("skimage", "rocket.jpg"),
    ("skimage", "camera.png"),
    ("skimage", "coins.png"),
    ("skimage", "brick.png"),
    ("skimage", "grass.png"),
    ("skimage", "gravel.png"),
    ("sporco", "kodim23.png"),
    ("sporco", "monarch.png"),
    ("sporco", "sail.png"),
    ("sporco", "tulips.png"),
)
TEST_PHOTOS = ("chelsea.png", "coffee.png")
REQUIRED_PACKAGE, OPTIONAL_PACKAGE = "skimage", "sporco"
PIP_NAMES = {"skimage": "scikit-image", "sporco": "sporco"}

# Tiles are ~4x smaller than LOL-Blur frames: shorter shakes; the rest as in NightBlurParams.
DEMO_PARAMS = NightBlurParams(blur_length=(3.0, 12.0))


@dataclass(frozen=True)
class DemoSet:
    """Where the demo pairs are: ``train`` and ``test`` each hold ``lq/`` and ``gt/`` folders of PNGs."""

    root: str
    train: str
    test: str
    num_train: int
    num_test: int
    sources: tuple[str, ...]


def default_cache_dir() -> str:
    """``$VQCNIR_CACHE_DIR``, else ``$XDG_CACHE_HOME/vqcnir``, else ``~/.cache/vqcnir``."""
    if os.environ.get("VQCNIR_CACHE_DIR"):
        return os.environ["VQCNIR_CACHE_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "vqcnir")


def _package_data_dir(package: str) -> str | None:
    folder = package_folder(package)
    return os.path.join(folder, "data") if folder else None


def available_sources() -> list[tuple[str, str, str]]:
    """``(package, file name, path)`` of the demo photos installed here; ImportError if scikit-image is absent."""
    found, missing = [], set()
    for package, filename in DEMO_SOURCES:
        folder = _package_data_dir(package)
        path = os.path.join(folder, filename) if folder else ""
        if folder and os.path.isfile(path):
            found.append((package, filename, path))
        else:
            missing.add(package)
    if REQUIRED_PACKAGE in missing:
        raise ImportError(
            "the demo image set needs scikit-image's bundled sample photos: "
            "pip install scikit-image (or pip install 'vqcnir[demo]')"
        )
    return found


def tile_photo(image: np.ndarray, tile: int) -> list[np.ndarray]:
    """Resize ``[H, W, 3]`` so the short side is ``2 * tile`` and cut the centred grid of whole tiles."""
    height, width = image.shape[:2]
    scale = 2 * tile / min(height, width)
    size = (max(2 * tile, round(width * scale)), max(2 * tile, round(height * scale)))
    resized = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))
    rows, cols = resized.shape[0] // tile, resized.shape[1] // tile
    top, left = (resized.shape[0] - rows * tile) // 2, (resized.shape[1] - cols * tile) // 2
    return [
        resized[top + r * tile : top + (r + 1) * tile, left + c * tile : left + (c + 1) * tile]
        for r in range(rows)
        for c in range(cols)
    ]


def build_demo_set(
    cache_dir: str | None = None,
    *,
    tile: int = 128,
    seed: int = 0,
    params: NightBlurParams = DEMO_PARAMS,
) -> DemoSet:
    """Write (or reuse) the demo night-blur pairs and return where they are.

    Args:
        cache_dir: parent folder (default :func:`default_cache_dir`); the set goes in a subfolder named
            after ``tile``, ``seed`` and a digest of its manifest, reused when it exists.
        tile: tile side in pixels (default 128).
        seed: seed of the degradations (default 0).
        params: degradation parameters (default :data:`DEMO_PARAMS`).

    Example:
        >>> demo = build_demo_set()  # doctest: +SKIP
        >>> PairedFolderDataset(f"{demo.train}/lq", f"{demo.train}/gt")  # doctest: +SKIP
    """
    if isinstance(tile, bool) or not isinstance(tile, int) or tile < 8:
        raise ValueError(f"argument 'tile' must be an integer >= 8, got {tile!r}")
    sources = available_sources()
    if OPTIONAL_PACKAGE not in {package for package, _, _ in sources}:
        print(
            f"vqcnir demo set: {PIP_NAMES[OPTIONAL_PACKAGE]} is not installed, using scikit-image's photos only "
            f"(pip install {PIP_NAMES[OPTIONAL_PACKAGE]} adds four Kodak/Waterloo photos)"
        )
    manifest = {
        "format_version": FORMAT_VERSION,
        "tile": tile,
        "seed": seed,
        "params": params.to_dict(),
        "sources": [filename for _, filename, _ in sources],
    }
    digest = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:12]
    parent = cache_dir or default_cache_dir()
    root = os.path.join(parent, f"demo-nightblur-t{tile}-s{seed}-{digest}")
    if not os.path.isdir(root):
        remove_stale(parent)  # staging folders of builds that were killed
        with StagingFolder(parent) as staging:
            manifest.update(_write_demo_set(staging.path, sources, tile, seed, params))
            write_json(os.path.join(staging.path, "manifest.json"), manifest)
            staging.publish(root)  # False: another process published the same set first; use that one
    return _demo_set(root, manifest)


def _write_demo_set(
    folder: str, sources: list[tuple[str, str, str]], tile: int, seed: int, params: NightBlurParams
) -> dict[str, int]:
    """Tiles of every photo, degraded, as ``folder/{train,test}/{lq,gt}/*.png`` plus the NOTICE."""
    splits: dict[str, list[tuple[str, np.ndarray]]] = {"train": [], "test": []}
    for _, filename, path in sources:
        split = "test" if filename in TEST_PHOTOS else "train"
        stem = os.path.splitext(filename)[0]
        splits[split].extend((f"{stem}_{i:02d}", t) for i, t in enumerate(tile_photo(read_rgb(path), tile)))
    for stream, split in enumerate(("train", "test")):
        synthesize_pairs(splits[split], os.path.join(folder, split), params, seed, stream=stream)
    shutil.copyfile(NOTICE_PATH, os.path.join(folder, "NOTICE"))
    return {"num_train": len(splits["train"]), "num_test": len(splits["test"])}


def _demo_set(root: str, expected: dict) -> DemoSet:
    """The set published at ``root``; ValueError when its manifest is not the ``expected`` one."""
    path = os.path.join(root, "manifest.json")
    try:
        with open(path, encoding="utf-8") as handle:
            manifest = json.load(handle)
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(
            f"{path}: cannot read the demo set's manifest ({error}); remove {root} to rebuild it"
        ) from error
    if not isinstance(manifest, dict) or any(manifest.get(k) != v for k, v in expected.items()):
        raise ValueError(f"{root} holds another demo set than its name says (manifest differs): remove it to rebuild")
    return DemoSet(
        root=root,
        train=os.path.join(root, "train"),
        test=os.path.join(root, "test"),
        num_train=int(manifest["num_train"]),
        num_test=int(manifest["num_test"]),
        sources=tuple(manifest["sources"]),
    )
