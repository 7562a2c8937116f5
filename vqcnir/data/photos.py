"""The photographs the project may learn from: colour photos shipped inside installed packages.

Nothing is downloaded: each source is a file inside a package's installed data folder, found without
importing the package. Licences and credits are in ``vqcnir/data/NOTICE``. Only colour photographs of real
scenes are listed: scikit-image's grey photos and textures, its microscopy/astronomy/medical images, and
every picture of Debian's ``ukui-wallpapers`` (digital art, no photographs) are left out.

Photos are split by photo, never by crop: ``HELD_OUT`` photos are never seen in training; scenes shot
twice (scikit-image's stereo motorcycle) count as one photo.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass

# (package, path under the package's folder, scene). Scenes group shots of one subject for the split.
PHOTO_SOURCES = (
    ("skimage", "data/astronaut.png", "astronaut"),
    ("skimage", "data/chelsea.png", "chelsea"),
    ("skimage", "data/coffee.png", "coffee"),
    ("skimage", "data/rocket.jpg", "rocket"),
    ("skimage", "data/motorcycle_left.png", "motorcycle"),
    ("skimage", "data/motorcycle_right.png", "motorcycle"),
    ("sporco", "data/kodim23.png", "kodim23"),
    ("sporco", "data/monarch.png", "monarch"),
    ("sporco", "data/sail.png", "sail"),
    ("sporco", "data/tulips.png", "tulips"),
    ("sklearn", "datasets/images/china.jpg", "china"),
    ("sklearn", "datasets/images/flower.jpg", "flower"),
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg", "grace_hopper"),
)
HELD_OUT = ("chelsea", "coffee")  # as in the demo set: comparable numbers
PIP_NAMES = {"skimage": "scikit-image", "sporco": "sporco", "sklearn": "scikit-learn", "matplotlib": "matplotlib"}
REQUIRED_PACKAGE = "skimage"


@dataclass(frozen=True)
class Photo:
    """One photograph: a unique ``name`` (file stem), its ``scene``, ``split`` and ``path`` on this machine."""

    name: str
    scene: str
    split: str  # "train" or "test"
    path: str
    package: str


def package_folder(package: str) -> str | None:
    """The installed folder of ``package`` (found without importing it), or None."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return list(spec.submodule_search_locations)[0]


def find_photos() -> list[Photo]:
    """The photographs of :data:`PHOTO_SOURCES` installed here, in that order.

    Raises ImportError when scikit-image (whose photos include the held-out ones) is missing; the other
    packages are optional (``missing_packages`` names them).
    """
    photos = []
    for package, relative, scene in PHOTO_SOURCES:
        folder = package_folder(package)
        path = os.path.join(folder, relative) if folder else ""
        if folder and os.path.isfile(path):
            split = "test" if scene in HELD_OUT else "train"
            name = os.path.splitext(os.path.basename(relative))[0]
            photos.append(Photo(name=name, scene=scene, split=split, path=path, package=package))
    if not any(photo.package == REQUIRED_PACKAGE for photo in photos):
        raise ImportError(
            "the night photo set needs scikit-image's bundled photos: pip install scikit-image "
            "(or pip install 'vqcnir[demo]')"
        )
    return photos


def missing_packages() -> list[str]:
    """pip names of the optional photo packages that are not installed (fewer training photos)."""
    return sorted({PIP_NAMES[package] for package, _, _ in PHOTO_SOURCES if package_folder(package) is None})
