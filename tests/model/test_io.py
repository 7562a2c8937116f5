"""vqcnir.io: atomic writes with the umask's permissions, PNG 8/16-bit, to_uint8/16, stale temporaries."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

from tests.data.images import read_png16
from vqcnir import io


@pytest.fixture
def umask():
    """Set the process umask for one test (restored after)."""
    previous = os.umask(0o022)
    yield os.umask
    os.umask(previous)


def _mode(path) -> int:
    return os.stat(path).st_mode & 0o777


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "a" / "b.txt"
    io.write_text(target, "old")

    def crash(tmp):
        with open(tmp, "w") as out:
            out.write("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        io.atomic_write(target, crash)
    assert target.read_text() == "old" and os.listdir(target.parent) == ["b.txt"]
    io.write_json(target, {"x": [1, 2]})
    assert target.read_text() == '{\n  "x": [\n    1,\n    2\n  ]\n}\n'
    with pytest.raises(TypeError, match="'text' must be a str"):
        io.write_text(target, b"bytes")


@pytest.mark.parametrize(("mask", "file_mode", "folder_mode"), [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)])
def test_files_and_folders_follow_the_umask(tmp_path, umask, mask, file_mode, folder_mode):
    umask(mask)
    io.write_text(tmp_path / "t.txt", "x")
    io.write_png(tmp_path / "i.png", np.zeros((2, 2, 3), np.uint8))
    with io.StagingFolder(tmp_path) as staging:
        io.write_text(os.path.join(staging.path, "inner.txt"), "y")
        staging.publish(tmp_path / "published")
    assert _mode(tmp_path / "t.txt") == _mode(tmp_path / "i.png") == file_mode
    assert _mode(tmp_path / "published") == folder_mode and _mode(tmp_path / "published" / "inner.txt") == file_mode
    assert os.listdir(tmp_path / "published") == ["inner.txt"]  # no lock file travels with it


def test_png_8bit_grey_rgb_and_alpha_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    rgb, alpha = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8), rng.integers(0, 256, (5, 7), dtype=np.uint8)
    io.write_png(tmp_path / "rgb.png", rgb)
    io.write_png(tmp_path / "rgba.png", rgb, alpha)
    io.write_png(tmp_path / "grey.png", rgb[..., 0])
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "rgb.png")), rgb)
    with Image.open(tmp_path / "rgba.png") as image:
        assert image.mode == "RGBA"
        np.testing.assert_array_equal(np.asarray(image), np.dstack([rgb, alpha]))
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "grey.png")), rgb[..., 0])


def test_png_16bit_rgb_and_grey(tmp_path):
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 65536, (4, 6, 3), dtype=np.uint16)
    io.write_png(tmp_path / "rgb16.png", rgb)
    header, samples = read_png16(tmp_path / "rgb16.png")
    assert header == (6, 4, 16, 2)
    np.testing.assert_array_equal(samples, rgb)
    with Image.open(tmp_path / "rgb16.png") as image:  # Pillow decodes 16-bit colour to its high byte
        np.testing.assert_array_equal(np.asarray(image.convert("RGB")), (rgb >> 8).astype(np.uint8))
    alpha = rng.integers(0, 65536, (4, 6), dtype=np.uint16)
    io.write_png(tmp_path / "rgba16.png", rgb, alpha)
    header, samples = read_png16(tmp_path / "rgba16.png")
    assert header[3] == 6 and np.array_equal(samples, np.dstack([rgb, alpha]))
    io.write_png(tmp_path / "grey16.png", rgb[..., 1])
    with Image.open(tmp_path / "grey16.png") as image:
        np.testing.assert_array_equal(np.asarray(image).astype(np.uint16), rgb[..., 1])


@pytest.mark.parametrize(
    ("image", "alpha", "message"),
    [
        (np.zeros((2, 2, 3), np.float32), None, "uint8 or uint16"),
        (np.zeros((2, 2, 2), np.uint8), None, r"\[H, W\] or \[H, W, 3\]"),
        (np.zeros((0, 2), np.uint8), None, "H, W >= 1"),
        (np.zeros((2, 2, 3), np.uint8), np.zeros((2, 2), np.uint16), "'alpha' must be a uint8 array of shape"),
    ],
)
def test_png_bad_arguments(tmp_path, image, alpha, message):
    with pytest.raises((TypeError, ValueError), match=message):
        io.write_png(tmp_path / "x.png", image, alpha)
    assert not os.listdir(tmp_path)


def test_to_uint8_and_uint16_round_clamp_and_move_channels_last():
    values = torch.tensor([-0.5, 0.0, 0.3, 0.5, 1.0, 2.0])
    image = torch.stack([values, values / 2, 1 - values])[:, :, None].expand(3, 6, 2)  # [3, H=6, W=2]
    out = io.to_uint8(image)
    assert out.shape == (6, 2, 3) and out.dtype == np.uint8
    assert out[:, 0, 0].tolist() == [0, 0, 76, 128, 255, 255]  # clamped, rounded (127.5 -> 128: half to even)
    assert out[2, 1].tolist() == [76, 38, 178]  # channels last: R, G, B of one pixel
    batch = io.to_uint16(torch.rand(2, 3, 4, 5, dtype=torch.float64))
    assert batch.shape == (2, 4, 5, 3) and batch.dtype == np.uint16
    assert io.to_uint16(torch.ones(1, 1, 1))[0, 0, 0] == 65535
    with pytest.raises(ValueError, match=r"float tensor \[..., C, H, W\]"):
        io.to_uint8(torch.zeros(3, 4, dtype=torch.uint8))


def test_remove_stale_spares_live_writers_and_unrelated_files(tmp_path):
    (tmp_path / "checkpoint.txt").write_text("keep")
    (tmp_path / ".hidden").write_text("keep")
    with io.StagingFolder(tmp_path) as live:
        dead = tmp_path / f"{io.STAGING_PREFIX}dead"  # what a SIGKILLed writer leaves: a lock nobody holds
        dead.mkdir()
        (dead / io.LOCK_NAME).touch()
        (dead / "model.safetensors").write_bytes(b"weights")
        lockless = tmp_path / f"{io.STAGING_PREFIX}old"  # an older vqcnir's staging folder
        lockless.mkdir()
        old = time.time() - 7200
        os.utime(lockless, (old, old))
        young = tmp_path / f"{io.STAGING_PREFIX}young"  # no lock yet: its writer may be about to make one
        young.mkdir()
        temp = tmp_path / f"{io.TEMP_PREFIX}abcd-latest"  # a torn file whose writer died a while ago
        temp.write_text("torn")
        os.utime(temp, (old, old))
        fresh = tmp_path / f"{io.TEMP_PREFIX}ef01-latest"  # just written: maybe replaced by a live writer
        fresh.write_text("new")
        removed = io.remove_stale(tmp_path)
        assert sorted(removed) == sorted(str(p) for p in (dead, lockless, temp))
        assert os.path.isdir(live.path) and young.is_dir() and fresh.is_file()
    assert sorted(os.listdir(tmp_path)) == sorted([".hidden", "checkpoint.txt", young.name, fresh.name])
    assert io.remove_stale(tmp_path / "missing") == []


_WRITER = """
import sys, time
from vqcnir.io import StagingFolder, atomic_write
folder = sys.argv[1]
with StagingFolder(folder) as staging:
    def write(tmp):
        open(tmp, "w").write("partial")
        print(staging.path, tmp, flush=True)
        time.sleep(60)
    atomic_write(folder + "/latest", write)
"""


def test_a_killed_writer_leaves_temporaries_that_only_then_count_as_stale(tmp_path):
    """A real SIGKILL: while the writer lives nothing is removed; once it is dead, both are."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        staging, temp = writer.stdout.readline().split()
        old = time.time() - 60
        os.utime(temp, (old, old))  # only the lock tells the live writer's files apart
        assert io.remove_stale(tmp_path) == [] and os.path.isdir(staging) and os.path.isfile(temp)
    finally:
        writer.kill()
        writer.wait()
    assert sorted(io.remove_stale(tmp_path)) == sorted([staging, temp])
    assert os.listdir(tmp_path) == []
