"""Fixtures of the ONNX export tests: the exported models, written once per session.

torch.onnx.export rebuilds its table of ONNX translations (onnxscript's torchlib, ~500 functions parsed from
their source) on every call, which is most of the time of exporting a small graph. The tests reuse one
table per opset (a test-only speed-up of a private function; without it the tests are slower, not wrong).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io

import pytest
import torch

import vqcnir
from vqcnir.cli import export as export_cli
from vqcnir.export import DEFAULT_OPSET, ExportedFile, export_onnx


@pytest.fixture(scope="session", autouse=True)
def _reuse_onnx_registry():
    try:
        from torch.onnx._internal.exporter._registration import ONNXRegistry
    except ImportError:  # another torch: nothing to speed up
        yield
        return
    original = ONNXRegistry.__dict__["from_torchlib"]
    cached = functools.lru_cache(maxsize=None)(original.__func__)
    ONNXRegistry.from_torchlib = classmethod(lambda cls, *args, **kwargs: cached(cls, *args, **kwargs))
    try:
        yield
    finally:
        ONNXRegistry.from_torchlib = original


def _model(kind: str, preset: str, seed: int) -> vqcnir.VQGAN:
    torch.manual_seed(seed)
    model_class = vqcnir.VQCNIR if kind == "VQCNIR" else vqcnir.VQGAN
    # The reference backend: the tests compare ONNX Runtime with it.
    return model_class(CONFIGS[preset](), backend="reference").eval()


# "paper_2aiem": the paper preset's widths, heads, codebook and groups with 2 of its 12 AIEM blocks. The 12
# blocks are one block repeated; each costs seconds of export, and the full preset's export (55-80 s) was the
# largest single cost of CI's time budget.
CONFIGS = {
    "tiny": vqcnir.VQCNIRConfig.tiny,
    "paper_2aiem": lambda: dataclasses.replace(vqcnir.VQCNIRConfig.paper(), num_aiem=2),
}


# (model, preset, padding): the official padding in the graph for the tiny VQCNIR; the bare network (the caller
# pads) for the others, whose export is then about twice as fast (simpler symbolic sizes). The VQGAN goes
# through the command line (vqcnir-export on a saved checkpoint).
EXPORTS = [("VQCNIR", "tiny", "official"), ("VQCNIR", "paper_2aiem", "none"), ("VQGAN", "tiny", "none")]


@pytest.fixture(scope="session", params=EXPORTS, ids="-".join)
def exported(request, tmp_path_factory, _reuse_onnx_registry):
    """``(model, ExportedFile)``: a model with random weights (reference backend) and its exported file."""
    kind, preset, padding = request.param
    model = _model(kind, preset, seed=len(kind) + len(preset))
    folder = tmp_path_factory.mktemp("onnx")
    path = str(folder / f"{kind}_{preset}.onnx")
    if kind == "VQCNIR":
        return model, export_onnx(model, path, padding=padding)
    vqcnir.save_pretrained(model, str(folder / "checkpoint"))
    with contextlib.redirect_stdout(io.StringIO()) as printed_to:
        assert export_cli.main([str(folder / "checkpoint"), "--onnx", path, "--padding", padding]) == 0
    printed = printed_to.getvalue()
    assert f"opset {DEFAULT_OPSET}" in printed and f"wrote {path}" in printed, printed
    return model, ExportedFile(path, DEFAULT_OPSET, padding, kind)
