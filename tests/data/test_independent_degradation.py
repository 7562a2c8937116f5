"""The independent night degradation (tests/data/independent_degradation.py): deterministic, dark, blurred,
noisy, and sharing no code with vqcnir.data.degrade."""

from __future__ import annotations

import ast
import inspect

import numpy as np
import pytest

from tests.data import independent_degradation as independent
from tests.data.images import write
from tests.model.photos import photo_uint8


def _gradient_energy(image):
    x = image.astype(np.float64)
    return np.mean(np.diff(x, axis=0) ** 2) + np.mean(np.diff(x, axis=1) ** 2)


def test_imports_nothing_from_vqcnir():
    tree = ast.parse(inspect.getsource(independent))
    imported = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    imported += [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert "numpy" in imported and not [name for name in imported if name.split(".")[0] == "vqcnir"]


def test_same_seed_same_bytes_other_seed_other_image():
    sharp = photo_uint8("astronaut", 48)
    first = independent.degrade_independent(sharp, seed=7)
    np.testing.assert_array_equal(first, independent.degrade_independent(sharp.copy(), seed=7))
    assert not np.array_equal(first, independent.degrade_independent(sharp, seed=8))
    assert first.dtype == np.uint8 and first.shape == sharp.shape


def test_darkens_to_a_few_percent_of_the_light():
    sharp = photo_uint8("coffee", 48)
    params = independent.IndependentNightParams()
    for seed in range(3):
        night = independent.degrade_independent(sharp, seed)
        light_ratio = ((night / 255.0) ** 2.2).mean() / ((sharp / 255.0) ** 2.2).mean()
        assert params.exposure[0] * 0.5 < light_ratio < params.exposure[1] * 1.5  # noise clipped at 0 adds a little


def test_blurs_along_a_line_without_noise():
    sharp = photo_uint8("chelsea", 48)
    clean = independent.IndependentNightParams(
        exposure=(1.0, 1.0), motion_length=(6.0, 6.0), full_well=(1e12, 1e12), read_noise=(0.0, 0.0)
    )
    blurred = independent.degrade_independent(sharp, 0, clean)
    assert abs(blurred.astype(float).mean() - sharp.mean()) < 2.0  # blur alone keeps the brightness
    assert _gradient_energy(blurred) < 0.5 * _gradient_energy(sharp)


@pytest.mark.parametrize("angle", [0.0, np.pi / 3])
def test_kernel_is_a_normalised_centred_line(angle):
    kernel = independent.line_defocus_kernel(8.0, angle, 0.5)
    assert kernel.shape[0] == kernel.shape[1] and kernel.shape[0] % 2 == 1
    assert kernel.sum() == pytest.approx(1.0) and kernel.min() >= 0
    radius = kernel.shape[0] // 2
    ys, xs = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    along = xs * np.cos(angle) + ys * np.sin(angle)
    across = -xs * np.sin(angle) + ys * np.cos(angle)
    assert abs((kernel * xs).sum()) < 1e-9 and abs((kernel * ys).sum()) < 1e-9
    assert (kernel * along**2).sum() > 10 * (kernel * across**2).sum()
    point = np.zeros((2 * radius + 5, 2 * radius + 5, 1))
    point[radius + 2, radius + 2] = 1.0  # a point spreads into the (flipped) kernel around itself
    spread = independent.convolve_reflect(point, kernel)[2:-2, 2:-2, 0]
    np.testing.assert_allclose(spread, kernel[::-1, ::-1], atol=1e-12)


def test_degrade_folder_writes_every_png_deterministically(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        write(tmp_path / "gt" / f"{name}.png", rng.integers(0, 256, (12, 16, 3), dtype=np.uint8))
    names = independent.degrade_folder(str(tmp_path / "gt"), str(tmp_path / "lq"), seed=1)
    assert names == ["a.png", "b.png"]
    first = (tmp_path / "lq" / "a.png").read_bytes()
    independent.degrade_folder(str(tmp_path / "gt"), str(tmp_path / "lq2"), seed=1)
    assert (tmp_path / "lq2" / "a.png").read_bytes() == first
    assert (tmp_path / "lq" / "b.png").read_bytes() != first
