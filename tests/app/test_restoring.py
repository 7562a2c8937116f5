"""The page's restoration job: upload checks, the restoration (whole or exact tiles), files written."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

import vqcnir.app.restoring as restoring
from tests.data.images import write
from tests.recipes.checkpoints import save_tiny_model, whole_image_output
from vqcnir.app.restoring import (
    UploadLimits,
    UploadRejected,
    check_upload,
    restore_uploads,
)
from vqcnir.data import read_rgb


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return save_tiny_model(str(tmp_path_factory.mktemp("tiny")))


def _photo(seed: int, height: int, width: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows, cols = np.meshgrid(np.linspace(0, 1, height), np.linspace(0, 1, width), indexing="ij")
    base = np.stack([rows, cols, (rows + cols) / 2], -1) * 120
    return np.clip(base + rng.normal(0, 15, (height, width, 3)), 0, 255).astype(np.uint8)


def test_a_photo_over_the_budget_is_restored_tile_by_tile_to_the_whole_image_result(tmp_path, tiny):
    photo = _photo(0, 256, 256)
    fractions = []
    report = restore_uploads(
        tiny, [write(tmp_path / "big.png", photo)], str(tmp_path / "job"), max_memory="200MB",
        progress=lambda fraction, text: fractions.append((fraction, text)),
    )  # fmt: skip
    assert report.rejected == []
    restored = read_rgb(report.restored[0].output_png).astype(int)
    assert np.abs(restored - whole_image_output(tiny, photo).astype(int)).max() <= 1  # exact up to float rounding
    values = [fraction for fraction, _ in fractions]
    assert len(values) > 2 and values == sorted(set(values)) and values[-1] == 1.0, fractions  # one step per tile
    assert all(text.startswith("big.png (1/1): pass ") and ": tile " in text for _, text in fractions), fractions


def test_self_ensemble_reaches_the_model_and_bad_values_are_refused(tmp_path, tiny):
    photo = _photo(5, 24, 40)
    report = restore_uploads(tiny, [write(tmp_path / "p.png", photo)], str(tmp_path / "job"), self_ensemble=2)
    expected = whole_image_output(tiny, photo, self_ensemble=2)
    np.testing.assert_array_equal(read_rgb(report.restored[0].output_png), expected)
    with pytest.raises(ValueError, match="'self_ensemble' must be one of"):
        restore_uploads(tiny, [], str(tmp_path / "job2"), self_ensemble=3)


def test_check_upload_refuses_with_the_reason_and_the_option(tmp_path):
    limits = UploadLimits(max_bytes=20_000, max_pixels=50 * 50)
    good = write(tmp_path / "ok.png", _photo(1, 40, 50))
    assert check_upload(good, limits) == (50, 40)
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(UploadRejected, match=r"notes.png is not an image that can be read"):
        check_upload(str(text), limits)
    with pytest.raises(UploadRejected, match=r"notes.txt is not an image file: expected one of .png"):
        check_upload(str(text), limits, name="notes.txt")
    wide = write(tmp_path / "wide.png", np.zeros((10, 300, 3), np.uint8))
    with pytest.raises(UploadRejected, match=r"wide.png is 300 x 10 = 0.003 megapixels, over .* --max-megapixels"):
        check_upload(wide, limits)
    noisy = write(tmp_path / "noisy.png", np.random.default_rng(0).integers(0, 256, (45, 50, 3), dtype=np.uint8))
    with pytest.raises(
        UploadRejected, match=r"noisy.png is [0-9.]+ KB, over the upload limit of 2.0 KB .*--max-upload-mb"
    ):
        check_upload(noisy, UploadLimits(max_bytes=2048))
    with pytest.raises(ValueError, match="must be positive"):
        UploadLimits(max_bytes=0)


def test_restore_uploads_writes_each_restoration_and_reports_the_refused(tmp_path, tiny):
    first, second = _photo(2, 30, 41), _photo(3, 25, 33)
    rgba = np.concatenate([second, np.full((25, 33, 1), 77, np.uint8)], -1)
    uploads = [
        write(tmp_path / "a" / "night.png", first),
        str(tmp_path / "notes.png"),
        write(tmp_path / "b" / "night.png", rgba),  # same name: written as night-2.png, alpha kept
    ]
    (tmp_path / "notes.png").write_text("text")
    fractions = []
    report = restore_uploads(
        tiny, uploads, str(tmp_path / "job"), progress=lambda fraction, text: fractions.append((fraction, text))
    )
    assert [photo.name for photo in report.restored] == ["night.png", "night.png"]
    assert [os.path.basename(photo.output_png) for photo in report.restored] == ["night.png", "night-2.png"]
    assert len(report.rejected) == 1 and report.rejected[0].startswith("notes.png is not an image")
    np.testing.assert_array_equal(read_rgb(report.restored[0].output_png), whole_image_output(tiny, first))
    np.testing.assert_array_equal(read_rgb(report.restored[0].input_png), first)
    with Image.open(report.restored[1].output_png) as output:
        assert output.mode == "RGBA" and output.size == (33, 25)
        assert np.all(np.asarray(output)[..., 3] == 77)
    assert (report.restored[1].width, report.restored[1].height) == (33, 25)
    assert fractions == [(1 / 3, "night.png (1/3): whole image"), (1.0, "night.png (3/3): whole image")]


def test_a_restoration_that_fails_is_a_message(tmp_path, tiny, monkeypatch):
    def out_of_memory(*args, **kwargs):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 99 GB\nmore detail")

    monkeypatch.setattr(restoring, "restore_tensor", out_of_memory)
    report = restore_uploads(tiny, [write(tmp_path / "x.png", _photo(4, 16, 16))], str(tmp_path / "job"))
    assert report.restored == []
    assert report.rejected == [
        "x.png could not be restored: DefaultCPUAllocator: can't allocate memory: you tried to allocate 99 GB"
    ]
