"""vqcnir_ops._launch: targets, launch settings per target, torch's TF32 switch, and the launch rules."""

from __future__ import annotations

import dataclasses
import types

import pytest
import torch

import vqcnir_ops
from tests.backends import backend_params, device_for
from vqcnir_ops._launch import (
    GPU_TARGETS,
    INTERPRETER,
    LaunchRecord,
    Target,
    fp32_dot_precision,
    launch,
    launch_target,
    observe_launches,
    stages_that_fit,
    tf32_allowed,
    use_target,
)
from vqcnir_ops.deform.triton_backward import data_grad_config, weight_grad_config
from vqcnir_ops.deform.triton_kernels import forward_config
from vqcnir_ops.quantize.triton_kernels import _nearest_code_fwd_kernel

TRITON = [p for p in backend_params("deform_conv2d") if p.values[0] == "triton"]
NEW_API = hasattr(torch.backends.cuda.matmul, "fp32_precision")  # torch >= 2.9


@pytest.fixture
def restore_matmul_precision():
    """Put torch's float32-matmul settings back as they were (legacy and new API)."""
    legacy = torch.get_float32_matmul_precision()
    new = (torch.backends.cuda.matmul.fp32_precision, torch.backends.fp32_precision) if NEW_API else None
    yield
    torch.set_float32_matmul_precision(legacy)
    if new is not None:
        torch.backends.fp32_precision = new[1]
        torch.backends.cuda.matmul.fp32_precision = new[0]
    # Consistent again: torch itself reads the flag without complaining about mixed APIs (cuBLAS would).
    assert torch.backends.cuda.matmul.allow_tf32 == (legacy != "highest") == tf32_allowed()


def test_gpu_targets_have_the_documented_shared_memory():
    assert {a: t.shared_memory // 1024 for a, t in GPU_TARGETS.items()} == {80: 163, 86: 99, 89: 99, 90: 227}
    with pytest.raises(ValueError, match="must be positive"):
        Target("bad", 80, 0)


def test_launch_target_is_the_interpreter_on_cpu_unless_overridden():
    assert launch_target(torch.device("cpu")) is INTERPRETER
    with use_target(GPU_TARGETS[90]) as target:
        assert launch_target(torch.device("cpu")) is target
    assert launch_target(torch.device("cpu")) is INTERPRETER
    with pytest.raises(TypeError, match="Target"), use_target("sm_90"):
        pass


@pytest.mark.parametrize(
    ("per_stage", "fixed", "deepest", "expected"),
    [(65536, 8192, 3, {80: 3, 86: 2, 89: 2, 90: 3}), (200 * 1024, 0, 3, {80: 1, 86: 1, 89: 1, 90: 2}),
     (1024, 0, 2, {80: 2, 86: 2, 89: 2, 90: 2}), (1024, 0, 1, {80: 1, 86: 1, 89: 1, 90: 1})],
)  # fmt: skip
def test_stages_that_fit(per_stage, fixed, deepest, expected):
    assert {a: stages_that_fit(t, per_stage, fixed, deepest) for a, t in GPU_TARGETS.items()} == expected


def test_deform_settings_depend_on_the_target():
    # float32: a three-deep pipeline where shared memory allows (sm_80, sm_90), two deep on 99 KB cards
    stages = {a: forward_config(256, torch.float32, t)["num_stages"] for a, t in GPU_TARGETS.items()}
    assert stages == {80: 3, 86: 2, 89: 2, 90: 3}
    assert {forward_config(256, torch.bfloat16, t)["num_stages"] for t in GPU_TARGETS.values()} == {3}
    assert weight_grad_config(256, torch.float32, "ieee", GPU_TARGETS[90])["num_stages"] == 1  # FMA dot: no pipeline
    assert weight_grad_config(256, torch.float32, "tf32", GPU_TARGETS[86])["num_stages"] == 2
    assert data_grad_config(256, 64, GPU_TARGETS[86]) == dict(BLOCK_P=64, BLOCK_N=32, BLOCK_C=32, num_warps=8,
                                                              num_stages=2)  # fmt: skip


def test_tf32_follows_torch_like_cublas(restore_matmul_precision):
    torch.set_float32_matmul_precision("highest")
    assert not tf32_allowed() and fp32_dot_precision() == "ieee"
    torch.set_float32_matmul_precision("high")
    assert tf32_allowed() and fp32_dot_precision() == "tf32"
    torch.set_float32_matmul_precision("medium")
    assert tf32_allowed()
    torch.backends.cuda.matmul.allow_tf32 = False
    assert not tf32_allowed()
    torch.backends.cuda.matmul.allow_tf32 = True
    assert tf32_allowed()


@pytest.mark.skipif(not NEW_API, reason="torch < 2.9 has no fp32_precision API")
def test_tf32_follows_the_new_api_and_survives_mixed_settings(restore_matmul_precision):
    torch.backends.cuda.matmul.fp32_precision = "tf32"
    assert tf32_allowed()
    torch.backends.cuda.matmul.fp32_precision = "ieee"
    assert not tf32_allowed()
    # Legacy off, then the new API on: torch itself refuses to read allow_tf32; the new API wins.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.fp32_precision = "tf32"
    torch.backends.cuda.matmul.fp32_precision = "none"
    assert tf32_allowed()


@pytest.mark.parametrize("backend", TRITON)
@pytest.mark.parametrize("allow", [False, True])
def test_fp32_dots_follow_the_switch_and_nearest_code_stays_ieee(backend, allow, restore_matmul_precision):
    torch.backends.cuda.matmul.allow_tf32 = allow
    records: list[LaunchRecord] = []
    gen = torch.Generator().manual_seed(0)
    shapes = [(1, 4, 6, 6), (1, 18, 6, 6), (4, 4, 3, 3), (1, 2, 4, 20), (20, 8), (5, 8)]
    x, offset, weight, q, z, codes = (torch.randn(s, generator=gen).to(device_for(backend)) for s in shapes)
    with observe_launches(records.append):
        vqcnir_ops.deform_conv2d(x, offset, weight, padding=1, backend=backend)
        vqcnir_ops.bidirectional_channel_attention(q, q, q, q, torch.ones(2, device=q.device), backend=backend)
        vqcnir_ops.nearest_code(z, codes, backend=backend)
    precisions = {r.kernel.fn.__name__: r.kwargs.get("DOT_PRECISION") for r in records}
    expected = "tf32" if allow else "ieee"
    assert precisions == {"_deform_conv2d_fwd_kernel": expected, "_bca_gram_kernel": expected,
                          "_bca_mix_kernel": expected, "_nearest_code_fwd_kernel": None}  # fmt: skip
    assert "DOT_PRECISION" not in _nearest_code_fwd_kernel.arg_names  # its dot is IEEE in the kernel itself


class _Kernel:
    def __init__(self, arg_names: list[str]) -> None:
        self.arg_names, self.launched = arg_names, []
        self.fn = types.SimpleNamespace(__name__="_toy_kernel")

    def __getitem__(self, grid):
        return lambda *args, **kwargs: self.launched.append((grid, kwargs))


def test_launch_requires_grid_bases_for_multi_axis_kernels():
    with pytest.raises(TypeError, match=r"_toy_kernel is launched over 2 grid axes.*pid1_base"):
        launch(INTERPRETER, _Kernel(["x_ptr"]), (4, 2))
    one_axis = _Kernel(["x_ptr"])
    launch(INTERPRETER, one_axis, (4,), 1, BLOCK=16)
    assert one_axis.launched == [((4, 1, 1), {"BLOCK": 16, "enable_fp_fusion": True})]
    two_axes = _Kernel(["x_ptr", "pid1_base", "pid2_base"])
    launch(dataclasses.replace(INTERPRETER, max_grid=(10, 3, 3)), two_axes, (4, 5))
    assert [(g, k["pid1_base"], k["pid2_base"]) for g, k in two_axes.launched] == [((4, 3, 1), 0, 0), ((4, 2, 1), 3, 0)]
