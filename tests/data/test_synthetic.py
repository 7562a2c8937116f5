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
