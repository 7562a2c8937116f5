"""vqcnir-restore: outputs equal the model's whole-image output, structure kept, inputs never overwritten."""

from __future__ import annotations

import os
from importlib.metadata import entry_points

import numpy as np
import pytest
from PIL import Image

from tests.data.images import write
from tests.recipes.checkpoints import save_tiny_model, whole_image_output
from vqcnir.cli.restore import OverwriteError, main, plan_jobs
from vqcnir.data import read_rgb


@pytest.fixture
def model_dir(tmp_path, monkeypatch):
    directory = str(tmp_path / "ckpt")
    return directory, save_tiny_model(directory, monkeypatch)


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


def test_tiles_and_reflect_padding_reach_the_model(tmp_path, model_dir):
    directory, model = model_dir
    image = _photo(np.random.default_rng(1), 40, 60)
    src = write(tmp_path / "x.png", image)
    out = tmp_path / "r" / "x.png"
    main([src, "-o", str(out), "-m", directory, "--tile", "32", "--overlap", "4", "--padding", "reflect", "--quiet"])
    np.testing.assert_array_equal(read_rgb(out), whole_image_output(model, image, "reflect", tile=32, overlap=4))


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
        (["--tile", "64", "--overlap", "32"], "--overlap: must be smaller than half"),
        (["--tile", "-1"], "--tile: must be >= 0"),
        (["--padding", "zeros"], "--padding: invalid choice"),
    ],
)
def test_cli_argument_errors(tmp_path, args, message, capsys):
    src = write(tmp_path / "a.png", np.zeros((8, 8, 3), dtype=np.uint8))
    with pytest.raises(SystemExit) as exit_info:
        main([src, "-o", str(tmp_path / "o"), "-m", str(tmp_path), *args])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_missing_arguments_and_checkpoint(tmp_path, capsys):
    src = write(tmp_path / "a.png", np.zeros((8, 8, 3), dtype=np.uint8))
    with pytest.raises(SystemExit):
        main([src, "-o", str(tmp_path / "o")])
    assert "--model" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        main([src, "-o", str(tmp_path / "o"), "-m", str(tmp_path / "nope"), "--quiet"])
    with pytest.raises(ValueError, match="neither a folder"):
        main([src, "-o", str(tmp_path / "o"), "-m", src, "--quiet"])


def test_console_scripts_are_installed():
    scripts = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert scripts.get("vqcnir-restore") == "vqcnir.cli.restore:main"
    assert scripts.get("vqcnir-evaluate") == "vqcnir.cli.evaluate:main"
