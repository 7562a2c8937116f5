"""Synthetic pairs on the fly and on disk, reproducible across workers; the demo image set."""

from __future__ import annotations

import filecmp
import os
import warnings

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from tests.data.images import random_rgb, write, write_corrupt
from vqcnir import io
from vqcnir.data import (
    AugmentConfig,
    PairedFolderDataset,
    SyntheticNightBlurDataset,
    UnreadableImageWarning,
    build_demo_set,
    synthesize_folder,
)
from vqcnir.data import demo as demo_module


@pytest.fixture
def photos(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(5):
        write(
            tmp_path / "photos" / f"p{i}.jpg" if i % 2 else tmp_path / "photos" / "sub" / f"p{i}.png",
            random_rgb(rng, 40, 48),
        )
    return tmp_path / "photos"


def test_on_the_fly_pairs_are_reproducible_across_workers_and_epochs(photos):
    ds = SyntheticNightBlurDataset(photos, augment=AugmentConfig(crop_size=32), seed=3)
    sample = ds[1]
    assert sample["lq"].shape == sample["gt"].shape == (3, 32, 32)
    assert sample["lq"].mean() < sample["gt"].mean()
    single = next(iter(DataLoader(ds, batch_size=5)))
    workers = next(iter(DataLoader(ds, batch_size=5, num_workers=2)))
    assert torch.equal(single["lq"], workers["lq"]) and torch.equal(single["gt"], workers["gt"])
    ds.set_epoch(1)
    assert not torch.equal(ds[1]["lq"], sample["lq"])
    ds.set_epoch(0)
    assert torch.equal(ds[1]["lq"], sample["lq"])


def test_folder_synthesis_is_byte_identical_and_skips_corrupt(photos, tmp_path):
    write_corrupt(photos / "broken.png")
    with pytest.warns(UnreadableImageWarning, match="broken.png"):
        names, skipped = synthesize_folder(str(photos), str(tmp_path / "a"), seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnreadableImageWarning)
        synthesize_folder(str(photos), str(tmp_path / "b"), seed=1)
    assert len(names) == 5 and skipped == [os.path.join(photos, "broken.png")]
    assert "sub/p0" in names
    for name in names:
        for side in ("lq", "gt"):
            assert filecmp.cmp(
                tmp_path / "a" / side / f"{name}.png", tmp_path / "b" / side / f"{name}.png", shallow=False
            )
    pairs = PairedFolderDataset(tmp_path / "a" / "lq", tmp_path / "a" / "gt")
    assert len(pairs) == 5 and pairs[0]["lq"].mean() < pairs[0]["gt"].mean()


def test_demo_set_from_installed_photos(tmp_path):
    pytest.importorskip("skimage", reason="the demo set needs scikit-image (test extra)")
    demo = build_demo_set(str(tmp_path), tile=32)
    with open(os.path.join(demo.root, "NOTICE")) as handle:
        notice = handle.read()
    assert all(name in notice for name in demo.sources)
    test_names = {name.rsplit("_", 1)[0] for name in os.listdir(os.path.join(demo.test, "gt"))}
    assert test_names == {os.path.splitext(name)[0] for name in demo_module.TEST_PHOTOS}
    train = PairedFolderDataset(os.path.join(demo.train, "lq"), os.path.join(demo.train, "gt"))
    assert len(train) == demo.num_train >= 30 and demo.num_test >= 10
    assert train[0]["lq"].shape == (3, 32, 32)
    mtime = os.path.getmtime(os.path.join(demo.root, "manifest.json"))
    assert build_demo_set(str(tmp_path), tile=32) == demo  # reused, not rebuilt
    assert os.path.getmtime(os.path.join(demo.root, "manifest.json")) == mtime
    rebuilt = build_demo_set(str(tmp_path / "again"), tile=32)
    sample = os.path.join("lq", sorted(os.listdir(os.path.join(demo.train, "lq")))[0])
    assert filecmp.cmp(os.path.join(demo.train, sample), os.path.join(rebuilt.train, sample), shallow=False)


def test_every_demo_source_is_attributed():
    with open(demo_module.NOTICE_PATH) as handle:
        notice = handle.read()
    assert all(filename in notice for _, filename in demo_module.DEMO_SOURCES)


def test_demo_set_names_the_missing_package(monkeypatch, tmp_path):
    monkeypatch.setattr(demo_module, "_package_data_dir", lambda package: None)
    with pytest.raises(ImportError, match="pip install scikit-image"):
        build_demo_set(str(tmp_path))


@pytest.fixture
def fake_sources(tmp_path, monkeypatch):
    """Small generated stand-ins for the bundled photos; returns a setter choosing which are 'installed'."""
    rng = np.random.default_rng(7)
    photos = {
        name: write(tmp_path / "photos" / name, random_rgb(rng, 40, 56))
        for name in ("chelsea.png", "astronaut.png", "kodim23.png")
    }

    def install(*names):
        found = [("sporco" if n.startswith("kodim") else "skimage", n, photos[n]) for n in names]
        monkeypatch.setattr(demo_module, "available_sources", lambda: found)

    return install


def test_demo_sets_of_different_photos_never_touch_each_other(tmp_path, fake_sources):
    """With and without SPORCO (different photos), each environment has its own folder, left intact."""
    cache = str(tmp_path / "cache")
    fake_sources("chelsea.png", "astronaut.png")
    without = build_demo_set(cache, tile=16)
    files = {
        name: os.path.getmtime(os.path.join(without.train, "lq", name)) for name in os.listdir(without.train + "/lq")
    }
    fake_sources("chelsea.png", "astronaut.png", "kodim23.png")
    with_sporco = build_demo_set(cache, tile=16)
    assert with_sporco.root != without.root and with_sporco.num_train == 2 * without.num_train == 8
    fake_sources("chelsea.png", "astronaut.png")
    assert build_demo_set(cache, tile=16) == without  # reused
    assert {n: os.path.getmtime(os.path.join(without.train, "lq", n)) for n in files} == files
    assert sorted(os.listdir(cache)) == sorted(os.path.basename(s.root) for s in (without, with_sporco))


def test_a_set_published_by_another_process_first_wins_and_dead_builds_are_cleared(tmp_path, fake_sources, monkeypatch):
    cache = tmp_path / "cache"
    dead = cache / f"{io.STAGING_PREFIX}killed"  # a build killed by SIGKILL: its lock is held by nobody
    dead.mkdir(parents=True)
    (dead / io.LOCK_NAME).touch()
    fake_sources("chelsea.png", "astronaut.png")
    original = demo_module._write_demo_set
    other: dict = {}

    def racing(folder, *args):  # while this build runs, another process builds and publishes the same set
        if not other:
            monkeypatch.setattr(demo_module, "_write_demo_set", original)
            other["set"] = build_demo_set(str(cache), tile=16)
            other["files"] = sorted(os.listdir(os.path.join(other["set"].train, "gt")))
        return original(folder, *args)

    monkeypatch.setattr(demo_module, "_write_demo_set", racing)
    demo = build_demo_set(str(cache), tile=16)
    assert demo == other["set"] and sorted(os.listdir(os.path.join(demo.train, "gt"))) == other["files"]
    assert os.listdir(cache) == [os.path.basename(demo.root)]  # our staging copy and the dead one are gone
