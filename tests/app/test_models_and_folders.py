"""Which models the page offers, loading them once, and the folder mode's pairs and display copies."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch
from PIL import Image

from tests.data.images import write
from tests.recipes.checkpoints import save_tiny_model
from vqcnir import VQGAN, VQCNIRConfig, save_pretrained
from vqcnir.app.folders import full_size_copy, pair_folder, thumbnail
from vqcnir.app.models import ModelStore, model_choices
from vqcnir.data import read_rgb
from vqcnir.restoring.files import OverwriteError
from vqcnir.restoring.models import demo_experiment_dir, demo_model_folders


def test_the_demo_model_is_found_where_the_demo_config_puts_it(tmp_path):
    assert demo_experiment_dir() == os.path.join("experiments", "vqcnir_demo")
    experiment = tmp_path / "experiments" / "vqcnir_demo"
    save_tiny_model(str(experiment / "best"))
    (experiment / "final").mkdir()  # an interrupted save: no weights, not offered
    assert demo_model_folders([str(tmp_path)]) == [str(experiment / "best")]
    save_tiny_model(str(experiment / "final"))
    assert demo_model_folders([str(tmp_path), str(tmp_path)]) == [str(experiment / "final"), str(experiment / "best")]


def test_model_choices_put_the_given_model_first_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    save_tiny_model(str(tmp_path / "experiments" / "vqcnir_demo" / "final"))
    demo = os.path.join("experiments", "vqcnir_demo", "final")
    assert model_choices("mine")[:2] == ["mine", demo]  # then the checkout's demo model, if trained
    assert model_choices(demo).count(demo) == 1 and model_choices(demo)[0] == demo


def test_model_store_loads_once_and_again_after_the_files_change(tmp_path):
    folder = str(tmp_path / "model")
    save_tiny_model(folder)
    store = ModelStore(torch.device("cpu"))
    loaded = store.get(folder)
    assert store.get(f" {folder} ") is loaded
    assert loaded.description.startswith("VQCNIR, 0.") and folder in loaded.description
    later = time.time() + 5
    os.utime(os.path.join(folder, "model.safetensors"), (later, later))
    assert store.get(folder) is not loaded
    with pytest.raises(ValueError, match="no model chosen"):
        store.get("  ")
    with pytest.raises(ValueError, match="model not found: nowhere"):
        store.get("nowhere")
    save_pretrained(VQGAN(VQCNIRConfig.tiny()), str(tmp_path / "stage1"))
    with pytest.raises(ValueError, match="is a stage-1 VQGAN .* give a stage-2 VQCNIR checkpoint"):
        store.get(str(tmp_path / "stage1"))


def test_folder_pairs_follow_vqcnir_restore_names(tmp_path):
    rng = np.random.default_rng(0)
    inputs, restored = tmp_path / "in", tmp_path / "out"
    write(inputs / "a" / "1.jpg", rng.integers(0, 255, (20, 30, 3), dtype=np.uint8))
    write(inputs / "2.tif", rng.integers(0, 255, (20, 30, 3), dtype=np.uint8))
    write(inputs / "3.png", rng.integers(0, 255, (20, 30, 3), dtype=np.uint8))
    write(restored / "a" / "1.png", rng.integers(0, 255, (20, 30, 3), dtype=np.uint8))
    write(restored / "2.png", rng.integers(0, 255, (20, 30, 3), dtype=np.uint8))
    listing = pair_folder(str(inputs), str(restored))
    assert [(p.name, os.path.relpath(p.restored, restored)) for p in listing.pairs] == [
        ("2.tif", "2.png"),
        ("a/1.jpg", os.path.join("a", "1.png")),
    ]
    assert listing.unrestored == 1
    with pytest.raises(FileNotFoundError, match="restored folder not found"):
        pair_folder(str(inputs), str(tmp_path / "missing"))
    with pytest.raises(OverwriteError, match="inside it"):
        pair_folder(str(inputs), str(inputs / "a"))


def test_display_copies_are_viewable_and_made_once_per_file_version(tmp_path):
    rng = np.random.default_rng(1)
    tif = write(tmp_path / "photo.tif", rng.integers(0, 255, (300, 500, 3), dtype=np.uint8))
    png = write(tmp_path / "restored.png", rng.integers(0, 255, (30, 50, 3), dtype=np.uint8))
    copies = str(tmp_path / "copies")
    thumb = thumbnail(tif, copies, side=100)
    with Image.open(thumb) as image:
        assert image.format == "JPEG" and image.size == (100, 60)
    assert thumbnail(tif, copies, side=100) == thumb
    full = full_size_copy(tif, copies)
    np.testing.assert_array_equal(read_rgb(full), read_rgb(tif))
    copy = full_size_copy(png, copies)
    assert open(copy, "rb").read() == open(png, "rb").read()
    write(png, rng.integers(0, 255, (30, 50, 3), dtype=np.uint8))
    later = time.time() + 5
    os.utime(png, (later, later))
    assert full_size_copy(png, copies) != copy


class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))  # would create the marker file if unpickled without weights_only


def test_an_official_pth_is_read_weights_only(tmp_path):
    marker = tmp_path / "payload-ran"
    checkpoint = tmp_path / "VQCNIR_LOLBlur_G.pth"
    torch.save({"params": {"conv.weight": torch.zeros(1)}, "extra": _Payload(str(marker))}, checkpoint)
    with pytest.raises(Exception, match="[Ww]eights only load failed"):
        ModelStore(torch.device("cpu")).get(str(checkpoint))
    assert not marker.exists()
