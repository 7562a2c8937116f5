"""Each vqcnir_ops op exported with torch.onnx.export(dynamo=True) and run in ONNX Runtime (CPU) equals the
``reference`` backend within 1e-4 relative (of the largest output), on odd sizes, groups, masks, geometry and
edge values; the graph is standard ONNX (``onnx.checker``, no custom domain) and uses the op's ONNX form.

Many cases of one op share one exported graph (``Calls``): the export, not the run, is what takes time.
"""

from __future__ import annotations

import functools

import pytest
import torch

from tests.export.onnx_check import Calls, check_standard, export, run, session
from vqcnir_ops import bidirectional_channel_attention, curve_map, deform_conv2d, depthwise_conv2d, nearest_code
from vqcnir_ops._testing import assert_max_rel_close, check_nearest_code, deform_offsets
from vqcnir_ops.deform.reference import Geometry
from vqcnir_ops.to_onnx import ONNX_FORMS, exporting

REL = 1e-4


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _check(calls, inputs, op: str) -> list[torch.Tensor]:
    """Export the calls, check the graph, and compare ONNX Runtime with the reference backend."""
    model = export(Calls(calls), inputs)
    ops = check_standard(model)
    missing = [name for name in ONNX_FORMS[op].onnx_ops if ops[name] == 0]
    assert not missing, f"{op} exported without {missing}: {dict(ops)}"
    got = run(session(model), inputs)
    with torch.no_grad():
        want = Calls(calls, backend="reference")(*inputs)
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g.shape == w.shape, (i, g.shape, w.shape)
        if w.is_floating_point():
            assert_max_rel_close(g, w, REL, name=f"{op} output {i}")
    return got


# --- deform_conv2d ---------------------------------------------------------------------------------------


def _deform_case(gen, x_shape, w_shape, offset_groups, kind, mask, bias, **geometry):
    batch, _, height, width = x_shape
    _, _, kh, kw = w_shape
    out_h, out_w = Geometry(**geometry).output_size(height, width, (kh, kw))
    taps = offset_groups * kh * kw
    tensors = [
        torch.randn(x_shape, generator=gen),
        deform_offsets((batch, 2 * taps, out_h, out_w), kind, gen).float(),
        torch.randn(w_shape, generator=gen),
    ]
    names = ["input", "offset", "weight"]
    if mask:
        tensors.append(torch.rand(batch, taps, out_h, out_w, generator=gen).round(decimals=1))  # 0 and 1 included
        names.append("mask")
    if bias:
        tensors.append(torch.randn(w_shape[0], generator=gen))
        names.append("bias")

    def call(*args, backend):
        return deform_conv2d(**dict(zip(names, args, strict=True)), **geometry, backend=backend)

    return (call, len(tensors)), tensors


def test_deform_conv2d_matches_reference_in_onnx_runtime():
    gen = _generator(0)
    cases = [
        # conv groups 2, offset groups 3, mask and bias, padding 1, odd sizes
        _deform_case(gen, (2, 6, 7, 9), (4, 3, 3, 3), 3, "mixed", True, True, padding=(1, 1)),
        # no mask, no bias, stride, padding and dilation per axis, rectangular kernel
        _deform_case(gen, (1, 4, 11, 6), (5, 4, 3, 2), 1, "fractional", False, False,
                     stride=(2, 1), padding=(0, 2), dilation=(2, 1)),
        # samples exactly on pixel rows/columns and just either side of them (the bilinear kinks at borders)
        _deform_case(gen, (1, 2, 5, 5), (2, 2, 3, 3), 2, "near_border", True, False, padding=(1, 1)),
        _deform_case(gen, (1, 2, 5, 5), (3, 2, 3, 3), 1, "integer", True, True, padding=(2, 1), dilation=(1, 2)),
        # a one-pixel-high image, depthwise (groups = channels = offset groups), 1 x 3 kernel
        _deform_case(gen, (2, 3, 1, 4), (3, 1, 1, 3), 3, "mixed", True, True, padding=(0, 1), dilation=(1, 2)),
    ]  # fmt: skip
    # far-away samples (finite): they read zero
    far_offset = cases[0][1][1].clone()
    far_offset[:, ::7] = 1e4
    far_offset[:, 3::11] = -3e3
    cases.append((cases[0][0], [cases[0][1][0], far_offset, *cases[0][1][2:]]))
    _check([c for c, _ in cases], [t for _, ts in cases for t in ts], "deform_conv2d")


def test_deform_conv2d_exports_as_one_deform_conv_per_call():
    gen = _generator(1)
    (call, _), tensors = _deform_case(gen, (1, 4, 6, 5), (4, 4, 3, 3), 2, "fractional", True, True, padding=(1, 1))
    model = export(Calls([(call, len(tensors))]), tensors)
    node = next(n for n in model.graph.node if n.op_type == "DeformConv")
    attrs = {a.name: list(a.ints) if a.ints else a.i for a in node.attribute}
    assert attrs["offset_group"] == 2 and attrs["group"] == 1 and attrs["pads"] == [1, 1, 1, 1]
    assert [n.op_type for n in model.graph.node].count("DeformConv") == 1


# --- bidirectional_channel_attention --------------------------------------------------------------------


def _attention_case(gen, shape, *, heads=None, epilogue=False, normalize=True, edge=False):
    q_d, q_g, v_d, v_g = (torch.randn(shape, generator=gen) for _ in range(4))
    if edge:  # a zero query row (its norm is clamped to eps) and large values that saturate the softmax
        q_d[:, :, 0] = 0.0
        q_g = q_g * 1e3
        v_d[:, :, -1] = 1e3
    n_heads = heads or shape[1]
    channels = shape[1] * (1 if heads is None else 1) if heads else shape[2]
    temperature = torch.rand(n_heads, generator=gen) + 0.5
    tensors = [q_d, q_g, v_d, v_g, temperature]
    if epilogue:
        gammas = channels * (n_heads if heads is None else 1)
        tensors += [torch.randn(shape, generator=gen), torch.randn(shape, generator=gen)]
        tensors += [torch.randn(gammas, generator=gen), torch.randn(gammas, generator=gen)]

    def call(q_d, q_g, v_d, v_g, temperature, *rest, backend):
        extra = dict(zip(("f_d", "f_g", "gamma_d", "gamma_g"), rest, strict=True)) if rest else {}
        return bidirectional_channel_attention(
            q_d, q_g, v_d, v_g, temperature, heads=heads, normalize=normalize, backend=backend, **extra
        )

    return (call, len(tensors)), tensors


def test_channel_attention_matches_reference_in_onnx_runtime():
    gen = _generator(2)
    cases = [
        _attention_case(gen, (2, 2, 5, 13)),
        _attention_case(gen, (1, 6, 3, 7), heads=2, epilogue=True),  # [B, heads * C, H, W] with the DBCA epilogue
        _attention_case(gen, (1, 1, 4, 9), normalize=False),  # the paper's formula: scale 1 / sqrt(C)
        _attention_case(gen, (1, 2, 3, 10), epilogue=True, edge=True),
    ]
    _check([c for c, _ in cases], [t for _, ts in cases for t in ts], "bidirectional_channel_attention")


# --- curve_map ------------------------------------------------------------------------------------------


def _curve_case(gen, x_shape, a_shape, splits=None, edge=False):
    x = torch.rand(x_shape, generator=gen) * 2 - 0.5
    x.view(-1)[::5] = 0.0
    x.view(-1)[1::7] = 1.0
    a = torch.rand(a_shape, generator=gen) * 2 - 0.5  # outside (0, 1) too
    if edge:
        x.view(-1)[2::3] = 1e6
        x.view(-1)[::4] = -1e6
        a = a.sign()
    return (functools.partial(curve_map, splits=splits), 2), [x, a]


def test_curve_map_matches_reference_in_onnx_runtime():
    gen = _generator(3)
    cases = [
        _curve_case(gen, (2, 3, 4, 5, 7), (2, 3, 2, 5, 7)),
        _curve_case(gen, (1, 8, 3, 5), (1, 4, 3, 5), splits=4),  # flat layout, one curve map per split
        _curve_case(gen, (1, 2, 3, 3, 4), (1, 2, 3, 3, 4), edge=True),
    ]
    _check([c for c, _ in cases], [t for _, ts in cases for t in ts], "curve_map")


# --- depthwise_conv2d -----------------------------------------------------------------------------------


def test_depthwise_conv2d_matches_reference_in_onnx_runtime():
    gen = _generator(4)
    cases = []
    for shape, kernel, padding, dilation, bias in (
        ((2, 5, 11, 13), (7, 7), (3, 3), (1, 1), True),  # texture warping's 7 x 7
        ((1, 3, 20, 17), (7, 7), (9, 9), (3, 3), True),  # the large-kernel attention's dilated 7 x 7
        ((1, 4, 6, 9), (3, 2), (2, 0), (1, 2), False),  # odd geometry, no bias
    ):
        tensors = [torch.randn(shape, generator=gen), torch.randn(shape[1], 1, *kernel, generator=gen)]
        if bias:
            tensors.append(torch.randn(shape[1], generator=gen))
        call = functools.partial(depthwise_conv2d, padding=padding, dilation=dilation)
        cases.append(((call, len(tensors)), tensors))
    _check([c for c, _ in cases], [t for _, ts in cases for t in ts], "depthwise_conv2d")


# --- nearest_code ---------------------------------------------------------------------------------------


def test_nearest_code_matches_reference_in_onnx_runtime():
    gen = _generator(4)
    codebook = torch.randn(23, 16, generator=gen)
    codebook[5] = codebook[2]  # an exact duplicate: the first copy wins
    z = torch.randn(37, 16, generator=gen)
    z[:4] = codebook[[0, 2, 5, 22]]  # distance exactly 0
    shifted_book = 1000.0 + 0.01 * torch.randn(9, 8, generator=gen)  # a common offset: the centring case
    shifted_z = 1000.0 + 0.01 * torch.randn(11, 8, generator=gen)
    calls = [(nearest_code, 2), (nearest_code, 2)]
    got = _check(calls, [z, codebook, shifted_z, shifted_book], "nearest_code")
    for (index, dist), (rows, book) in zip((got[:2], got[2:]), ((z, codebook), (shifted_z, shifted_book)), strict=True):
        check_nearest_code(rows, book, index, dist, torch.float32)
    assert got[0][:4].tolist() == [0, 2, 2, 22]


# --- the switch -----------------------------------------------------------------------------------------


def test_forms_are_used_only_while_exporting():
    assert not exporting()
    x, a = torch.rand(1, 2, 1, 3, 3), torch.rand(1, 2, 1, 3, 3)
    torch.testing.assert_close(curve_map(x, a), curve_map(x, a, backend="reference"))


@pytest.mark.parametrize("op", sorted(ONNX_FORMS))
def test_every_registered_form_imports(op):
    from vqcnir_ops.to_onnx import onnx_form

    assert callable(onnx_form(op))
