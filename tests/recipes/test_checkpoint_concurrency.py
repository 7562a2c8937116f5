"""save_pretrained while another process loads (issue 19, failure 4): a load gets one save's config with
that same save's weights (or a clear error), never one save's config with the other's weights."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from vqcnir import VQCNIR, VQCNIRConfig, load_pretrained, save_pretrained
from vqcnir.checkpoint import CONFIG_NAME, CheckpointError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAVES = 30
LOADS = 10  # loads enough to see a mix (about half of them mixed before the digest), then the writer is stopped
# Two models of the same shapes that differ in config (beta) and in every weight: save A, save B, A, B, ...
WRITER = """
import sys, torch
from vqcnir import VQCNIR, VQCNIRConfig, save_pretrained
models = []
for seed, beta in ((0, 0.25), (1, 0.5)):
    torch.manual_seed(seed)
    models.append(VQCNIR(VQCNIRConfig(**{**VQCNIRConfig.tiny().to_dict(), "beta": beta})))
print("ready", flush=True)
for index in range(int(sys.argv[2])):
    save_pretrained(models[index % 2], sys.argv[1])
"""


def _tiny(seed: int, beta: float) -> VQCNIR:
    torch.manual_seed(seed)
    return VQCNIR(VQCNIRConfig(**{**VQCNIRConfig.tiny().to_dict(), "beta": beta}))


def test_a_load_during_saves_never_mixes_one_saves_config_with_the_others_weights(tmp_path):
    folder = str(tmp_path / "model")
    first = next(iter(_tiny(0, 0.25).state_dict().values()))
    second = next(iter(_tiny(1, 0.5).state_dict().values()))
    assert not torch.equal(first, second)
    save_pretrained(_tiny(0, 0.25), folder)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, folder, str(SAVES)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": ROOT})  # fmt: skip
    assert writer.stdout.readline().strip() == "ready"
    loads = errors = 0
    while writer.poll() is None and loads + errors < LOADS:
        try:
            model = load_pretrained(folder)
        except CheckpointError as error:  # allowed: a clear error, never a silent mix
            assert "being rewritten" in str(error)
            errors += 1
            continue
        weights = next(iter(model.state_dict().values()))
        expected = {0.25: first, 0.5: second}[model.config.beta]
        assert torch.equal(weights, expected), f"config of beta={model.config.beta} loaded with the other weights"
        loads += 1
    finished = writer.poll() is not None
    writer.kill()
    writer.wait()
    assert not finished or writer.returncode == 0
    assert loads >= LOADS // 2, f"only {loads} loads completed ({errors} errors) while the saves ran"


def test_a_config_that_does_not_match_its_weights_is_refused(tmp_path):
    save_pretrained(_tiny(0, 0.25), str(tmp_path / "a"))
    save_pretrained(_tiny(1, 0.5), str(tmp_path / "b"))
    os.replace(tmp_path / "b" / CONFIG_NAME, tmp_path / "a" / CONFIG_NAME)  # b's config, a's weights
    with pytest.raises(CheckpointError, match="not the file config.json was saved with"):
        load_pretrained(str(tmp_path / "a"))
