"""vqcnir-restore under hostile or unlucky inputs (issue 19): no file replaced that it did not write, one bad
image never stops a folder, the memory budget holds from decoding on, one clear line per expected error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils._python_dispatch import TorchDispatchMode

import vqcnir.cli.restore as restore_cli
import vqcnir.restoring.files as files
from tests.data.images import write
from tests.recipes.checkpoints import save_tiny_model
from tests.recipes.images import blank_bilevel_png
from vqcnir import VQCNIR, VQCNIRConfig, inference, save_pretrained
from vqcnir.checkpoint import CONFIG_NAME, WEIGHTS_NAME
from vqcnir.cli.restore import main
from vqcnir.restoring.files import SOURCE_KEY, source_marker
from vqcnir.tiling import parse_memory

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(autouse=True)
def reference_ops(monkeypatch):
    """The ops' plain PyTorch references: these tests are about files and budgets, not kernels (fast)."""
    monkeypatch.setenv("VQCNIR_OPS_BACKEND", "reference")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("tiny") / "model")
    save_tiny_model(directory)
    return directory


def _photo(seed: int, height: int = 24, width: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _run(args: list[str], capsys) -> tuple[int, str]:
    """``vqcnir-restore ARGS`` -> (exit code, stderr); without a budget unless given (no planning) and with the
    least padding (24 x 32 stays 24 x 32): fast."""
    budget = [] if "--max-memory" in args else ["--max-memory", "none"]
    try:
        code = main([*args, *budget, "--padding", "reflect", "--quiet"])
    except SystemExit as exit_info:
        code = exit_info.code
    return code, capsys.readouterr().err


# 3. An unrelated photo is never overwritten.
def test_an_existing_file_restore_did_not_write_is_kept_unless_overwrite(tmp_path, tiny_dir, capsys):
    same = tmp_path / "same"
    same.mkdir()
    Image.fromarray(_photo(0)).save(same / "b.jpg", quality=95)
    unrelated = write(same / "b.png", _photo(1))
    before = open(unrelated, "rb").read()
    code, err = _run([str(same / "b.jpg"), "-o", str(same), "-m", tiny_dir], capsys)
    assert code == 2 and "already exists and is not a restoration" in err and "--overwrite" in err
    assert open(unrelated, "rb").read() == before
    assert _run([str(same / "b.jpg"), "-o", str(same), "-m", tiny_dir, "--overwrite"], capsys)[0] == 0
    with Image.open(unrelated) as restored:
        assert restored.info[SOURCE_KEY] == source_marker(str(same / "b.jpg"))
    assert _run([str(same / "b.jpg"), "-o", str(same), "-m", tiny_dir], capsys)[0] == 0  # its own output: replaced


def test_a_file_that_appears_during_the_run_is_kept(tmp_path, tiny_dir, capsys, monkeypatch):
    src = write(tmp_path / "a.png", _photo(9))
    target = tmp_path / "out" / "a.png"
    restore = files.restore_tensor

    def meanwhile(*args, **kwargs):  # another program writes the target while the image is restored
        write(target, _photo(10))
        return restore(*args, **kwargs)

    monkeypatch.setattr(files, "restore_tensor", meanwhile)
    code, err = _run([src, "-o", str(tmp_path / "out"), "-m", tiny_dir], capsys)
    assert code == 1 and "already exists and is not a restoration" in err
    assert not files.is_output_of(str(target), src)


def test_the_marker_is_in_16_bit_outputs_too_and_ties_output_to_input(tmp_path, tiny_dir, capsys):
    write(tmp_path / "in" / "a.png", _photo(2))
    write(tmp_path / "in" / "b.png", _photo(3))
    code, _ = _run([str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-m", tiny_dir, "--bit-depth", "16"], capsys)
    assert code == 0
    assert files.is_output_of(str(tmp_path / "out" / "a.png"), str(tmp_path / "in" / "a.png"))
    assert not files.is_output_of(str(tmp_path / "out" / "a.png"), str(tmp_path / "in" / "b.png"))


# 6. One bad image does not stop a folder; the exit code says some failed.
def test_a_bomb_and_an_image_over_the_budget_are_reported_and_the_others_restored(tmp_path, tiny_dir, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    blank_bilevel_png(str(folder / "a_bomb.png"), 20000, 20000)  # over Pillow's decompression-bomb limit
    blank_bilevel_png(str(folder / "b_large.png"), 3000, 3000)  # 9 MP: its copies alone exceed 200MB
    write(folder / "c.png", _photo(5))
    code, err = _run([str(folder), "-o", str(tmp_path / "out"), "-m", tiny_dir, "--max-memory", "200MB"], capsys)
    assert code == 1
    assert os.listdir(tmp_path / "out") == ["c.png"]
    lines = [line for line in err.splitlines() if line.startswith("not restored")]
    assert len(lines) == 2 and "Traceback" not in err
    assert "a_bomb.png" in lines[0] and "DecompressionBomb" in lines[0]
    assert "b_large.png" in lines[1] and "memory budget of 190.73 MiB" in lines[1]


# 5. The budget holds from decoding on.
def test_an_image_over_the_budget_is_refused_from_its_header_before_decoding(tmp_path, tiny_dir, capsys, monkeypatch):
    blank_bilevel_png(str(tmp_path / "big.png"), 2000, 1500)

    def no_decoding(path):
        raise AssertionError(f"{path} was decoded")

    monkeypatch.setattr(files, "read_rgb", no_decoding)
    code, err = _run([str(tmp_path / "big.png"), "-o", str(tmp_path / "out"), "-m", tiny_dir, "--max-memory", "100MiB"],
                     capsys)  # fmt: skip
    assert code == 1
    assert "big.png is 2000 x 1500" in err and "memory budget of 100.00 MiB" in err


class _Allocations(TorchDispatchMode):
    """Elements of every tensor an operation returns (views included: a view allocates nothing, so is skipped)."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if isinstance(out, torch.Tensor) and not func._schema.is_mutable and out._base is None:
            self.sizes.append(out.numel())
        return out


def test_official_padding_flips_only_the_strips_it_keeps():
    image = torch.rand(1, 3, 200, 300)
    with _Allocations() as mode:
        padded = inference.pad_official(image)
    assert padded.shape[-2:] == (256, 320)
    flipped_rows = torch.cat([image, image.flip(-2)], -2)[..., :256, :]
    expected = torch.cat([flipped_rows, flipped_rows.flip(-1)], -1)[..., :320]
    assert torch.equal(padded, expected)
    # no whole flipped copy: nothing larger than the padded image, and not much more than it in all
    assert max(mode.sizes) == padded.numel() and sum(mode.sizes) < 2.5 * padded.numel()
    small = torch.rand(1, 3, 5, 7)  # smaller than the padding: repeated doubling, as the authors would
    reference = small
    while reference.shape[-2] < 64:
        reference = torch.cat([reference, reference.flip(-2)], -2)
    while reference.shape[-1] < 64:
        reference = torch.cat([reference, reference.flip(-1)], -1)
    assert torch.equal(inference.pad_official(small), reference[..., :64, :64])


RSS_SCRIPT = """
import resource, sys
from vqcnir.cli.restore import main
for image, budget in zip(sys.argv[3::2], sys.argv[4::2]):
    code = main([image, "-o", sys.argv[2], "-m", sys.argv[1], "--max-memory", budget, "--quiet"])
    print("RESULT", code, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, flush=True)
"""
RSS_MARGIN = 768 * 2**20  # the interpreter, torch and the model: not part of --max-memory


def test_peak_memory_stays_within_the_budget_for_36_and_144_megapixel_inputs(tmp_path, tiny_dir):
    """The issue's cases: a 36 MP image with 2GB and a 144 MP one (17 KB on disk) with 3GB, in one process
    whose peak RSS is checked after each; a watchdog stops it the moment RSS passes the bound."""
    cases = [(str(tmp_path / "36mp.png"), "2GB", 6000, 6000), (str(tmp_path / "144mp.png"), "3GB", 12000, 12000)]
    for path, _, width, height in cases:
        blank_bilevel_png(path, width, height)
    argv = [sys.executable, "-c", RSS_SCRIPT, tiny_dir, str(tmp_path / "out")]
    argv += [item for path, budget, _, _ in cases for item in (path, budget)]
    bound = parse_memory("3GB") + RSS_MARGIN
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": ROOT})  # fmt: skip
    peak = 0
    while process.poll() is None:
        try:
            with open(f"/proc/{process.pid}/status") as status:
                rss = next((int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:")), 0)
        except (FileNotFoundError, ProcessLookupError):  # it has just exited
            break
        peak = max(peak, rss)
        if rss > bound:
            process.kill()
        time.sleep(0.05)
    out, err = process.communicate()
    assert peak <= bound, f"RSS reached {peak / 2**30:.2f} GiB"
    results = [line.split() for line in out.splitlines() if line.startswith("RESULT")]
    assert len(results) == 2, err
    for (path, budget, width, height), (_, code, maxrss) in zip(cases, results, strict=True):
        assert code == "1"
        assert int(maxrss) <= parse_memory(budget) + RSS_MARGIN
        assert f"{os.path.basename(path)} is {width} x {height}" in err and "over the memory budget" in err
    assert not os.path.exists(tmp_path / "out" / "36mp.png")


# 8. One clear line for every expected error.
def _model_folder(tmp_path, name: str, config: object = None, weights: bytes | None = None) -> str:
    folder = tmp_path / name
    folder.mkdir()
    if config is not None:
        (folder / CONFIG_NAME).write_text(config if isinstance(config, str) else json.dumps(config))
    if weights is not None:
        (folder / WEIGHTS_NAME).write_bytes(weights)
    return str(folder)


def test_bad_model_folders_are_one_line_each(tmp_path, tiny_dir, capsys):
    good = json.loads(open(os.path.join(tiny_dir, CONFIG_NAME)).read())
    weights = open(os.path.join(tiny_dir, WEIGHTS_NAME), "rb").read()
    undigested = {key: value for key, value in good.items() if key != "weights_sha256"}
    src = write(tmp_path / "a.png", _photo(6))
    cases = {
        _model_folder(tmp_path, "empty"): "config.json not found",
        _model_folder(tmp_path, "damaged", good, weights[: len(weights) // 2]): "truncated or damaged",
        _model_folder(tmp_path, "undigested", undigested, weights[: len(weights) // 2]): "truncated or damaged",
        _model_folder(tmp_path, "not_json", "{model", weights): "not valid JSON",
        _model_folder(tmp_path, "evil", {**good, "model": "Evil"}, weights): "unknown model type 'Evil'",
        _model_folder(tmp_path, "nested", "[" * 100_000 + "]" * 100_000, weights): "nested too deeply",
        _model_folder(tmp_path, "huge", {**good, "config": {**good["config"], "codebook_size": 10**12}}, weights):
            "'codebook_size' is 1000000000000, over the bound",
    }  # fmt: skip
    for folder, message in cases.items():
        code, err = _run([src, "-o", str(tmp_path / "out"), "-m", folder], capsys)
        assert code == 2, folder
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()[-1]) < 600, err


def test_ctrl_c_is_one_line(tmp_path, tiny_dir, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(restore_cli, "restore_all", interrupted)
    code, err = _run([write(tmp_path / "a.png", _photo(7)), "-o", str(tmp_path / "out"), "-m", tiny_dir], capsys)
    assert code == 130 and err.strip() == "vqcnir-restore: interrupted"


# 9. API edges.
@pytest.mark.parametrize("value", [float("inf"), float("nan"), 0.5, 0, -3, "0.5B"])
def test_max_memory_must_be_a_finite_number_of_at_least_one_byte(value):
    with pytest.raises(ValueError, match="finite number of bytes >= 1"):
        parse_memory(value)


def test_restore_refuses_tiny_tiles_and_meta_tensors_up_front():
    model = VQCNIR(VQCNIRConfig.tiny()).eval()
    with pytest.raises(ValueError, match="'tile' must be an int of at least 16"):
        model.restore(torch.rand(1, 3, 64, 80), tiling="exact", tile=3)
    with pytest.raises(ValueError, match="meta tensor"):
        model.restore(torch.empty(1, 3, 64, 80, device="meta"))


def test_a_killed_runs_temporary_file_is_removed_by_the_next_run(tmp_path, tiny_dir, capsys):
    out = tmp_path / "out"
    out.mkdir()
    stale = out / ".tmp-0badc0de-a.png"
    stale.write_bytes(b"half a PNG")
    old = time.time() - 60
    os.utime(stale, (old, old))
    assert _run([write(tmp_path / "a.png", _photo(8)), "-o", str(out), "-m", tiny_dir], capsys)[0] == 0
    assert sorted(os.listdir(out)) == ["a.png"]


def test_model_types_are_named_as_such_by_save_and_load(tmp_path):
    model = VQCNIR(VQCNIRConfig.tiny())
    save_pretrained(model, str(tmp_path / "m"))
    payload = json.loads((tmp_path / "m" / CONFIG_NAME).read_text())
    assert payload["model"] == "VQCNIR" and len(payload["weights_sha256"]) == 64


def test_a_self_ensemble_sets_aside_its_copy_and_sum(tmp_path):
    from vqcnir.restoring.budget import (
        ENSEMBLE_BYTES_PER_PIXEL,
        IMAGE_BYTES_PER_PIXEL,
        ImageBudgetError,
        check_image_budget,
        image_bytes,
    )

    assert image_bytes(64, 64, "reflect", 8) == (IMAGE_BYTES_PER_PIXEL + ENSEMBLE_BYTES_PER_PIXEL) * 64 * 64
    assert image_bytes(64, 64, "reflect", 1) == IMAGE_BYTES_PER_PIXEL * 64 * 64
    path = write(tmp_path / "p.png", np.zeros((64, 64, 3), np.uint8))
    model = VQCNIR(VQCNIRConfig.tiny())
    between = (image_bytes(64, 64, "reflect") + image_bytes(64, 64, "reflect", 8)) // 2
    check_image_budget(model, path, "reflect", max_memory=between, tiling="whole")  # fits in one pass
    with pytest.raises(ImageBudgetError, match="holding it and its copies"):
        check_image_budget(model, path, "reflect", max_memory=between, tiling="whole", self_ensemble=8)
