"""vqcnir-restore: outputs equal the model's whole-image output (also through exact tiles), upright, in 8 or 16
bits, structure kept, inputs never overwritten, wrong models and outputs refused before loading."""

from __future__ import annotations

import os
import re
from importlib.metadata import entry_points

import numpy as np
import pytest
from PIL import Image, ImageOps

import vqcnir.cli.restore as restore_cli
from tests.data.images import read_png16, write
from tests.recipes.checkpoints import save_tiny_model, whole_image_output
from vqcnir import VQGAN, VQCNIRConfig, save_pretrained
from vqcnir.cli.restore import main
from vqcnir.data import read_rgb
from vqcnir.restoring.files import OverwriteError, plan_jobs


@pytest.fixture
def model_dir(tmp_path):
    directory = str(tmp_path / "ckpt")
    return directory, save_tiny_model(directory)


def _photo(rng, h, w):
    # smooth content plus texture, so that the restorer's output varies across the image
    rows, cols = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    base = np.stack([rows, cols, (rows + cols) / 2], -1) * 200
    return np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)


def test_restored_folder_equals_whole_image_outputs_and_keeps_structure(tmp_path, model_dir):
    directory, model = model_dir
    rng = np.random.default_rng(0)
    odd = _photo(rng, 45, 67)
    write(tmp_path / "in" / "video1" / "0001.png", odd)
    write(tmp_path / "in" / "b.bmp", _photo(rng, 24, 40))
    out = tmp_path / "out"
    assert main([str(tmp_path / "in"), "-o", str(out), "-m", directory, "--quiet"]) == 0
    assert sorted(os.listdir(out)) == ["b.png", "video1"]
    restored = read_rgb(out / "video1" / "0001.png")
    assert restored.shape == odd.shape
    np.testing.assert_array_equal(restored, whole_image_output(model, odd))
    assert np.ptp(restored.astype(int)) > 0
    b = read_rgb(tmp_path / "in" / "b.bmp")
    np.testing.assert_array_equal(read_rgb(out / "b.png"), whole_image_output(model, b))


def test_approximate_tiles_and_reflect_padding_reach_the_model(tmp_path, model_dir):
    directory, model = model_dir
    image = _photo(np.random.default_rng(1), 40, 60)
    src = write(tmp_path / "x.png", image)
    out = tmp_path / "r" / "x.png"
    args = ["--tiling", "approximate", "--tile", "32", "--overlap", "4", "--padding", "reflect", "--quiet"]
    main([src, "-o", str(out), "-m", directory, *args])
    expected = whole_image_output(model, image, "reflect", tiling="approximate", tile=32, overlap=4)
    np.testing.assert_array_equal(read_rgb(out), expected)


def test_self_ensemble_reaches_the_model(tmp_path, model_dir):
    directory, model = model_dir
    image = _photo(np.random.default_rng(2), 30, 44)
    src = write(tmp_path / "x.png", image)
    out = tmp_path / "r" / "x.png"
    assert main([src, "-o", str(out), "-m", directory, "--self-ensemble", "4", "--quiet"]) == 0
    np.testing.assert_array_equal(read_rgb(out), whole_image_output(model, image, self_ensemble=4))
    assert not np.array_equal(read_rgb(out), whole_image_output(model, image))


def test_max_memory_gives_exact_tiles_with_a_progress_bar(tmp_path, model_dir, capsys):
    directory, model = model_dir
    image = _photo(np.random.default_rng(7), 200, 150)
    src = write(tmp_path / "big.png", image)
    out = tmp_path / "o" / "big.png"
    assert main([src, "-o", str(out), "-m", directory, "--max-memory", "170MB", "--bit-depth", "16"]) == 0
    err = capsys.readouterr().err
    assert "tile/s" in err or "s/tile" in err  # the bar over the tiles of each pass
    assert re.search(r"big.png \[#+\] (\d+)/\1 ", err), err  # ... to its last tile
    with Image.open(out) as saved:
        assert saved.size == (150, 200)
    _, restored16 = read_png16(out)
    expected = whole_image_output(model, image, bits=16)
    assert np.abs(restored16.astype(int) - expected.astype(int)).max() <= 1  # exact up to float rounding


def test_sixteen_bit_png_reads_back_in_pillow_with_alpha(tmp_path, model_dir):
    directory, model = model_dir
    rng = np.random.default_rng(8)
    rgba = np.concatenate([_photo(rng, 24, 40), rng.integers(0, 256, (24, 40, 1), dtype=np.uint8)], -1)
    src = write(tmp_path / "a.png", rgba)
    main([src, "-o", str(tmp_path / "o"), "-m", directory, "--bit-depth", "16", "--quiet"])
    _, decoded = read_png16(tmp_path / "o" / "a.png")
    np.testing.assert_array_equal(decoded[..., 3], rgba[..., 3].astype(np.uint16) * 257)
    np.testing.assert_array_equal(decoded[..., :3], whole_image_output(model, rgba[..., :3], bits=16))
    with Image.open(tmp_path / "o" / "a.png") as saved:  # a standard PNG: Pillow reads it (as 8 bits)
        assert saved.size == (40, 24) and saved.mode == "RGBA"


@pytest.mark.parametrize("tag", [3, 6, 8])
def test_exif_orientation_is_applied(tmp_path, model_dir, tag):
    directory, model = model_dir
    stored = _photo(np.random.default_rng(9), 24, 40)
    exif = Image.Exif()
    exif[0x0112] = tag
    src = tmp_path / "photo.jpg"
    Image.fromarray(stored).save(src, exif=exif, quality=100)
    main([str(src), "-o", str(tmp_path / "o"), "-m", directory, "--quiet"])
    with Image.open(src) as original:
        upright = np.array(ImageOps.exif_transpose(original).convert("RGB"))
    restored = read_rgb(tmp_path / "o" / "photo.png")
    assert restored.shape == upright.shape
    assert upright.shape[:2] == (stored.shape[:2] if tag == 3 else stored.shape[1::-1])
    np.testing.assert_array_equal(restored, whole_image_output(model, upright))


def test_stage1_models_and_unwritable_outputs_are_refused_before_loading(tmp_path, capsys):
    src = write(tmp_path / "a.png", _photo(np.random.default_rng(10), 16, 16))
    stage1 = tmp_path / "vqgan"
    save_pretrained(VQGAN(VQCNIRConfig.tiny()), str(stage1))
    with pytest.raises(SystemExit) as exit_info:
        main([src, "-o", str(tmp_path / "out"), "-m", str(stage1), "--quiet"])
    assert exit_info.value.code == 2
    assert "stage-1 VQGAN" in capsys.readouterr().err and not (tmp_path / "out").exists()
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    with pytest.raises(SystemExit):  # the model does not exist: the output is checked first
        main([src, "-o", str(blocker / "out"), "-m", str(tmp_path / "missing"), "--quiet"])
    assert "is a file" in capsys.readouterr().err
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(SystemExit):
            main([src, "-o", str(locked / "out"), "-m", str(tmp_path / "missing"), "--quiet"])
        assert "not writable" in capsys.readouterr().err


def test_alpha_passes_through_and_16_bit_gray_is_read(tmp_path, model_dir):
    directory, model = model_dir
    rng = np.random.default_rng(2)
    rgba = np.concatenate([_photo(rng, 32, 24), rng.integers(0, 256, (32, 24, 1), dtype=np.uint8)], -1)
    write(tmp_path / "in" / "rgba.png", rgba)
    gray16 = (rng.integers(0, 65536, (16, 40))).astype(np.uint16)
    Image.fromarray(gray16).save(tmp_path / "in" / "gray16.png")
    main([str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-m", directory, "--quiet"])
    with Image.open(tmp_path / "out" / "rgba.png") as saved:
        assert saved.mode == "RGBA"
        np.testing.assert_array_equal(np.asarray(saved)[..., 3], rgba[..., 3])
        np.testing.assert_array_equal(np.asarray(saved)[..., :3], whole_image_output(model, rgba[..., :3]))
    with Image.open(tmp_path / "out" / "gray16.png") as saved:
        assert saved.mode == "RGB" and saved.size == (40, 16)


def test_refuses_to_overwrite_inputs(tmp_path, model_dir, capsys):
    directory, _ = model_dir
    src = tmp_path / "in"
    png = write(src / "a.png", _photo(np.random.default_rng(3), 16, 16))
    write(src / "sub" / "c.png", _photo(np.random.default_rng(4), 16, 16))
    for output in (src, src / "sub", src / "new"):
        with pytest.raises(OverwriteError, match="inside it"):
            plan_jobs(str(src), str(output))
    with pytest.raises(OverwriteError, match="is an input file"):
        plan_jobs(png, png)
    with pytest.raises(OverwriteError, match="is an input file"):
        plan_jobs(png, str(src))  # a folder output that puts a.png onto itself
    os.symlink(src, tmp_path / "link")
    with pytest.raises(OverwriteError):
        plan_jobs(str(tmp_path / "link"), str(src / "x"))  # through a symlink
    before = {p: os.path.getmtime(p) for p in (png,)}
    with pytest.raises(SystemExit) as exit_info:
        main([str(src), "-o", str(src / "restored"), "-m", directory, "--quiet"])
    assert exit_info.value.code == 2
    assert "inside it" in capsys.readouterr().err
    assert not os.path.exists(src / "restored") and os.path.getmtime(png) == before[png]


def test_output_name_collisions_and_formats_are_rejected(tmp_path):
    rng = np.random.default_rng(5)
    write(tmp_path / "in" / "a.png", _photo(rng, 8, 8))
    write(tmp_path / "in" / "a.bmp", _photo(rng, 8, 8))
    with pytest.raises(ValueError, match="would both be written"):
        plan_jobs(str(tmp_path / "in"), str(tmp_path / "out"))
    with pytest.raises(ValueError, match="must be a .png"):
        plan_jobs(str(tmp_path / "in" / "a.png"), str(tmp_path / "out.jpg"))
    with pytest.raises(FileNotFoundError, match="input not found"):
        plan_jobs(str(tmp_path / "missing"), str(tmp_path / "out"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tile", "8"], "--tile: must be 0 or at least 16"),
        (["--tile", "64", "--overlap", "32", "--tiling", "approximate"], "--overlap: must be smaller than half"),
        (["--max-memory", "lots"], "argument --max-memory: expected a size such as 4GB, 512MiB, auto or none"),
        (["--tiling", "approximate", "--max-memory", "1GB"], "--max-memory: does not apply"),
        (["--tile", "0", "--tiling", "exact"], "--tile: 0 (the whole image) contradicts"),
        (["--bit-depth", "12"], "--bit-depth: invalid choice"),
        (["--tile", "-1"], "--tile: must be >= 0"),
        (["--padding", "zeros"], "--padding: invalid choice"),
        (["--self-ensemble", "3"], "--self-ensemble: invalid choice"),
        (["--device", "tpu"], "option 'device' must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'tpu'"),
        (["--device", "cuda:99"], "option 'device' is 'cuda:99'"),  # no CUDA, or no 100th GPU
    ],
)
def test_cli_argument_errors(tmp_path, args, message, capsys):
    src = write(tmp_path / "a.png", np.zeros((8, 8, 3), dtype=np.uint8))
    with pytest.raises(SystemExit) as exit_info:
        main([src, "-o", str(tmp_path / "o"), "-m", str(tmp_path), *args])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_missing_arguments_and_checkpoint(tmp_path, capsys, monkeypatch):
    src = write(tmp_path / "a.png", np.zeros((8, 8, 3), dtype=np.uint8))
    monkeypatch.setattr(restore_cli, "resolve_model", lambda given: given)  # as if no demo model were trained
    for model, message in ([], "--model: none given"), (["-m", str(tmp_path / "nope")], "model not found"), (
        ["-m", src], "neither a folder"
    ):
        with pytest.raises(SystemExit) as exit_info:
            main([src, "-o", str(tmp_path / "o"), "--quiet", *model])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err


def test_console_scripts_are_installed():
    scripts = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert scripts.get("vqcnir-restore") == "vqcnir.cli.restore:main"
    assert scripts.get("vqcnir-evaluate") == "vqcnir.cli.evaluate:main"
