"""Folder datasets: pairing by relative path, unreadable files, colour modes, pickling, workers."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from tests.data.images import random_rgb, write, write_corrupt
from vqcnir.data import (
    ImageFolderDataset,
    PairedFolderDataset,
    UnreadableImageWarning,
    pair_by_relative_path,
    read_rgb,
)
from vqcnir.io import to_uint8


def _pairs(root, names, rng):
    """Write lq = 255 - gt for each relative name; returns the gt arrays by name."""
    gts = {}
    for name in names:
        gt = random_rgb(rng)
        gts[name] = gt
        write(root / "gt" / f"{name}.png", gt)
        write(root / "lq" / f"{name}.png", 255 - gt)
    return gts


def test_pairs_by_relative_path_sorted_not_listing_order(tmp_path):
    rng = np.random.default_rng(0)
    names = ["v2/0003", "v1/0010", "v1/0002", "v10/0001"]  # written out of order, nested
    gts = _pairs(tmp_path, names, rng)
    ds = PairedFolderDataset(tmp_path / "lq", tmp_path / "gt")
    assert [p[0].split("lq/")[1] for p in ds.samples] == sorted(f"{n}.png" for n in names)
    for i, name in enumerate(sorted(names)):
        sample = ds[i]
        assert sample["lq_path"].endswith(f"lq/{name}.png") and sample["gt_path"].endswith(f"gt/{name}.png")
        np.testing.assert_array_equal(to_uint8(sample["gt"]), gts[name])
        np.testing.assert_array_equal(to_uint8(sample["lq"]), 255 - gts[name])
        assert sample["lq"].dtype == torch.float32 and sample["lq"].shape == (3, 24, 32)


def test_pairing_ignores_extension(tmp_path):
    rng = np.random.default_rng(1)
    write(tmp_path / "lq" / "a.png", random_rgb(rng))
    write(tmp_path / "gt" / "a.bmp", random_rgb(rng))
    assert len(pair_by_relative_path(str(tmp_path / "lq"), str(tmp_path / "gt"))) == 1


def test_unmatched_files_are_listed(tmp_path):
    rng = np.random.default_rng(2)
    _pairs(tmp_path, ["v1/0001", "v1/0002"], rng)
    for i in range(7):
        write(tmp_path / "lq" / "v9" / f"extra{i}.png", random_rgb(rng))
    write(tmp_path / "gt" / "v1" / "0003.png", random_rgb(rng))
    with pytest.raises(ValueError) as info:
        PairedFolderDataset(tmp_path / "lq", tmp_path / "gt")
    message = str(info.value)
    assert "7 input file(s)" in message and "v9/extra0.png" in message and "(+2 more)" in message
    assert "1 target file(s)" in message and "v1/0003.png" in message


def test_ambiguous_extensions_and_empty_folders(tmp_path):
    rng = np.random.default_rng(3)
    write(tmp_path / "lq" / "a.png", random_rgb(rng))
    write(tmp_path / "lq" / "a.jpg", random_rgb(rng))
    write(tmp_path / "gt" / "a.png", random_rgb(rng))
    with pytest.raises(ValueError, match="differ only in extension"):
        PairedFolderDataset(tmp_path / "lq", tmp_path / "gt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="argument 'root': no images"):
        ImageFolderDataset(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="nope"):
        ImageFolderDataset(tmp_path / "nope")


@pytest.mark.parametrize(
    ("mode", "check"),
    [
        ("L", lambda out, src: np.array_equal(out[..., 0], out[..., 2])),
        ("RGBA", lambda out, src: np.array_equal(out, src)),
        ("LA", lambda out, src: np.array_equal(out[..., 0], out[..., 1])),
        ("P", lambda out, src: out.shape == src.shape),
        ("I;16", lambda out, src: np.array_equal(out[..., 0], out[..., 1])),
    ],
)
def test_colour_modes_become_rgb(tmp_path, mode, check):
    src = random_rgb(np.random.default_rng(4))
    if mode == "RGBA":
        path = write(tmp_path / "x.png", np.concatenate([src, np.full(src.shape[:2] + (1,), 10, np.uint8)], -1))
    elif mode == "I;16":
        path = write(tmp_path / "x.png", (src[..., 0].astype(np.uint16) * 257), mode=None)
    else:
        path = write(tmp_path / "x.png", src, mode=mode)
    out = read_rgb(path)
    assert out.dtype == np.uint8 and out.shape == src.shape
    assert check(out, src)
    if mode == "I;16":
        np.testing.assert_array_equal(out[..., 0], src[..., 0])
    sample = ImageFolderDataset(tmp_path)[0]
    assert sample["lq"].shape == (3, *src.shape[:2])


def test_corrupt_and_mismatched_files_are_skipped_and_counted(tmp_path):
    rng = np.random.default_rng(5)
    _pairs(tmp_path, ["a", "c", "d"], rng)
    bad = write_corrupt(tmp_path / "lq" / "b.png")
    write(tmp_path / "gt" / "b.png", random_rgb(rng))
    write(tmp_path / "lq" / "e.png", random_rgb(rng, 10, 10))  # size differs from its target
    write(tmp_path / "gt" / "e.png", random_rgb(rng))
    ds = PairedFolderDataset(tmp_path / "lq", tmp_path / "gt")
    with pytest.warns(UnreadableImageWarning, match="b.png"):
        sample = ds[1]
    assert sample["lq_path"].endswith("c.png")  # replaced by the next readable sample
    with pytest.warns(UnreadableImageWarning, match="e.png"):
        assert ds[4]["lq_path"].endswith("a.png")  # wraps around
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds[1]  # a known-bad sample is skipped silently the second time
    assert ds.num_skipped == 2
    assert bad in ds.skipped_paths


def test_all_unreadable_raises(tmp_path):
    write_corrupt(tmp_path / "x.png")
    ds = ImageFolderDataset(tmp_path)
    with pytest.warns(UnreadableImageWarning), pytest.raises(RuntimeError, match="no readable sample"):
        ds[0]


def test_pickle_keeps_samples_and_skips(tmp_path):
    rng = np.random.default_rng(6)
    _pairs(tmp_path, ["a", "b"], rng)
    write_corrupt(tmp_path / "lq" / "c.png")
    write(tmp_path / "gt" / "c.png", random_rgb(rng))
    ds = PairedFolderDataset(tmp_path / "lq", tmp_path / "gt")
    with pytest.warns(UnreadableImageWarning):
        ds[2]
    clone = pickle.loads(pickle.dumps(ds))
    assert clone.samples == ds.samples and clone.num_skipped == 1
    assert torch.equal(clone[0]["lq"], ds[0]["lq"])


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_dataloader_workers_report_skips_to_main_process(tmp_path, context):
    rng = np.random.default_rng(7)
    _pairs(tmp_path, [f"{i:02d}" for i in range(6)], rng)
    write_corrupt(tmp_path / "lq" / "03x.png")
    write(tmp_path / "gt" / "03x.png", random_rgb(rng))
    ds = PairedFolderDataset(tmp_path / "lq", tmp_path / "gt")
    loader = DataLoader(ds, batch_size=7, num_workers=2, multiprocessing_context=context)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnreadableImageWarning)
        (batch,) = list(loader)
    assert batch["lq"].shape == (7, 3, 24, 32)
    np.testing.assert_array_equal(to_uint8(batch["lq"]), 255 - to_uint8(batch["gt"]))
    assert ds.num_skipped == 1 and ds.skipped_paths[0].endswith("03x.png")
