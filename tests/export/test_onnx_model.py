"""Whole models exported by ``vqcnir.export_onnx`` run in ONNX Runtime (CPU) and equal the PyTorch model
(reference backend) within 1e-4 relative, at two image sizes (and batch sizes) from one exported file."""

from __future__ import annotations

import onnx
import pytest
import torch

from tests.export.onnx_check import check_standard, run, session
from vqcnir.export import DEFAULT_OPSET, INPUT_NAME, OUTPUT_NAME, export_onnx
from vqcnir_ops._testing import assert_max_rel_close

REL = 1e-4
# Odd sizes with the padding in the graph; multiples of 8 for the bare network.
SIZES = {"official": [(1, 37, 50), (2, 72, 64)], "none": [(1, 16, 24), (2, 32, 16)]}


def test_exported_model_matches_pytorch_at_two_sizes(exported):
    model, file = exported
    proto = onnx.load(file.path)
    ops = check_standard(proto)
    assert ops["ArgMin"] == 1 and ops["DeformConv"] == (4 if file.model == "VQCNIR" else 0), dict(ops)
    assert file.opset == DEFAULT_OPSET and {o.domain: o.version for o in proto.opset_import}[""] == DEFAULT_OPSET
    assert [i.name for i in proto.graph.input] == [INPUT_NAME] and [o.name for o in proto.graph.output] == [OUTPUT_NAME]
    sess = session(file.path)
    generator = torch.Generator().manual_seed(0)
    for batch, height, width in SIZES[file.padding]:
        image = torch.rand(batch, 3, height, width, generator=generator)
        (got,) = run(sess, [image])
        with torch.no_grad():
            want = model.restore(image, tiling="whole") if file.padding == "official" else model(image).image
        assert got.shape == want.shape
        assert_max_rel_close(got, want, REL, name=f"{file.model} at {tuple(image.shape)}")


def test_export_refuses_what_it_cannot_export(tmp_path):
    from vqcnir import VQGAN, VQCNIRConfig

    model = VQGAN(VQCNIRConfig.tiny())
    with pytest.raises(TypeError, match="VQCNIR or VQGAN"):
        export_onnx(torch.nn.Conv2d(3, 3, 1), str(tmp_path / "x.onnx"))
    with pytest.raises(ValueError, match="opset"):
        export_onnx(model, str(tmp_path / "x.onnx"), opset=18)
    with pytest.raises(ValueError, match="padding"):
        export_onnx(model, str(tmp_path / "x.onnx"), padding="reflect")
    with pytest.raises(ValueError, match="float32"):
        export_onnx(model.double(), str(tmp_path / "x.onnx"))
    assert not (tmp_path / "x.onnx").exists()


def test_export_command_refuses_clearly(tmp_path, capsys):
    from vqcnir.cli import export as export_cli

    for argv, message in (
        ([str(tmp_path / "missing"), "--onnx", str(tmp_path / "x.onnx")], "checkpoint not found"),
        ([str(tmp_path), "--onnx", str(tmp_path / "x.onnx"), "--opset", "18"], "must be >= 19"),
        ([str(tmp_path), "--onnx", str(tmp_path / "no" / "x.onnx")], "folder not found"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            export_cli.main(argv)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
