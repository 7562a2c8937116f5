"""LOL-Blur and Real-LOL-Blur on a generated copy of the released layout."""

from __future__ import annotations

import numpy as np
import pytest

from tests.data.images import write
from vqcnir.data import LOLBLUR_FOLDERS, AugmentConfig, LOLBlurDataset, RealLOLBlurDataset
from vqcnir.io import to_uint8

# one grey level per folder, so a sample shows which folders were paired
LEVEL = {folder: 20 * (i + 1) for i, folder in enumerate(LOLBLUR_FOLDERS)}


@pytest.fixture(scope="module")
def lolblur(tmp_path_factory):
    root = tmp_path_factory.mktemp("LOL-Blur")
    for split, videos in (("train", ["0012", "0003"]), ("test", ["0201"])):
        for folder in LOLBLUR_FOLDERS:
            for video in videos:
                for frame in ("0059", "0001", "0010"):
                    value = LEVEL[folder] + int(video) % 7 + int(frame) % 5
                    write(root / split / folder / video / f"{frame}.png", np.full((20, 24, 3), value, np.uint8))
    return root


def test_default_pairs_low_blur_noise_with_high_sharp_scaled(lolblur):
    ds = LOLBlurDataset(lolblur, "train")
    assert len(ds) == 6
    relative = [s[0].split("low_blur_noise/")[1] for s in ds.samples]
    assert relative == sorted(relative) and relative[0] == "0003/0001.png"
    for sample in (ds[i] for i in range(len(ds))):
        assert "low_blur_noise" in sample["lq_path"] and "high_sharp_scaled" in sample["gt_path"]
        assert sample["lq_path"].split("low_blur_noise")[1] == sample["gt_path"].split("high_sharp_scaled")[1]
        lq, gt = to_uint8(sample["lq"]), to_uint8(sample["gt"])
        assert int(lq[0, 0, 0]) - LEVEL["low_blur_noise"] == int(gt[0, 0, 0]) - LEVEL["high_sharp_scaled"]


def test_folders_are_configurable_and_augmented(lolblur):
    ds = LOLBlurDataset(
        lolblur, "test", lq_folder="low_blur", gt_folder="high_sharp_original", augment=AugmentConfig(16)
    )
    sample = ds[2]
    assert len(ds) == 3 and sample["lq"].shape == (3, 16, 16)
    assert (
        to_uint8(sample["lq"])[0, 0, 0] - LEVEL["low_blur"]
        == to_uint8(sample["gt"])[0, 0, 0] - LEVEL["high_sharp_original"]
    )


def test_bad_names_and_missing_folders(lolblur, tmp_path):
    with pytest.raises(ValueError, match="argument 'split'"):
        LOLBlurDataset(lolblur, "val")
    with pytest.raises(ValueError, match="argument 'lq_folder'"):
        LOLBlurDataset(lolblur, lq_folder="low")
    (tmp_path / "train" / "low_blur_noise").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"high_sharp_scaled not found.*holds \['low_blur_noise'\]"):
        LOLBlurDataset(tmp_path)


def test_real_lolblur_reads_inputs_only(lolblur):
    ds = RealLOLBlurDataset(lolblur / "test" / "low_blur")
    assert len(ds) == 3 and set(ds[0]) == {"lq", "lq_path"}
