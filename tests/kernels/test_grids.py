"""Grids within CUDA's limits for any input size: vqcnir_ops._launch.split_grid and every launcher.

Three levels, none of which allocates gigabytes:
- ``split_grid`` itself, on grids far beyond the limits;
- every launcher on real inputs whose grid passes 65,535 programs on an axis (an image above 16.7 MP per
  plane, or batch x heads / batch x groups / batch past 65,535), with the kernels replaced by recorders:
  every launch it makes is within CUDA's limits and the launches tile the grid it asked for exactly once;
- every op run for real in Triton's interpreter with the grid limits lowered to a few programs, so the
  launches are split and the results must still match the reference (forward and backward).
Executing a real above-limit grid in the interpreter is out of reach: 65,536 programs at ~2.7 ms each.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools

import pytest
import torch

import vqcnir_ops.attention.triton_kernels as attention_tk
import vqcnir_ops.curve.triton_kernels as curve_tk
import vqcnir_ops.deform.triton_backward as deform_bwd
import vqcnir_ops.deform.triton_kernels as deform_tk
from tests.backends import GPU, backend_params, device_for
from vqcnir_ops import bidirectional_channel_attention, curve_map, deform_conv2d
from vqcnir_ops._launch import (
    CUDA_MAX_GRID,
    GPU_TARGETS,
    INTERPRETER,
    GridTooLargeError,
    LaunchRecord,
    observe_launches,
    split_grid,
    use_target,
)
from vqcnir_ops._testing import assert_close
from vqcnir_ops.attention.reference import bidirectional_channel_attention_ref
from vqcnir_ops.curve.reference import curve_map_ref
from vqcnir_ops.deform.reference import Geometry, deform_conv2d_ref

TRITON = [p for p in backend_params("curve_map") if p.values[0] == "triton"]
DEVICE = device_for("triton")  # a GPU where there is one, else the CPU under Triton's interpreter


def _covered(chunks: list[tuple[tuple[int, int, int], int, int]]) -> list[tuple[int, int, int]]:
    """Every logical program id (axis 0, 1, 2) the chunks launch, with repeats."""
    ids = []
    for (g0, g1, g2), base1, base2 in chunks:
        ids += [(i, base1 + j, base2 + k) for i, j, k in itertools.product(range(g0), range(g1), range(g2))]
    return ids


@pytest.mark.parametrize(
    ("grid", "limits", "launches"),
    [((5,), CUDA_MAX_GRID, 1), ((3, 7, 5), (10, 3, 2), 9), ((2, 6, 4), (2, 3, 2), 4), ((1, 1, 1), (1, 1, 1), 1)],
)
def test_split_grid_covers_every_program_once(grid, limits, launches):
    chunks = split_grid(grid, limits)
    assert len(chunks) == launches
    assert all(c.grid[axis] <= limits[axis] for c in chunks for axis in range(3))
    ids = _covered([(c.grid, c.pid1_base, c.pid2_base) for c in chunks])
    full = (*grid, 1, 1)[:3]
    assert sorted(ids) == list(itertools.product(*(range(g) for g in full)))


def test_split_grid_beyond_cuda_limits():
    chunks = split_grid((7, 3 * 65535 + 2, 65536))
    assert len(chunks) == 4 * 2 and max(c.grid[1] for c in chunks) == 65535 and max(c.grid[2] for c in chunks) == 65535
    assert sorted({c.pid1_base for c in chunks}) == [0, 65535, 2 * 65535, 3 * 65535]
    assert sum(c.grid[1] for c in chunks if c.pid2_base == 0) == 3 * 65535 + 2
    assert split_grid((0, 5, 5)) == [] and split_grid((4, 0)) == []


def test_split_grid_refuses_what_it_cannot_split():
    with pytest.raises(GridTooLargeError, match="2147483648 programs on grid axis 0"):
        split_grid((2**31, 1, 1))
    with pytest.raises(ValueError, match="1 to 3 non-negative ints"):
        split_grid((1, 2, 3, 4))
    with pytest.raises(ValueError, match="1 to 3 non-negative ints"):
        split_grid((-1,))


class _Recorder:
    """Stands in for a Triton kernel: records each launch instead of running it."""

    def __init__(self, kernel: object, calls: list) -> None:
        self.fn, self.arg_names, self.calls = kernel.fn, kernel.arg_names, calls

    def __getitem__(self, grid: tuple[int, int, int]):
        def record(*args: object, **kwargs: object) -> None:
            self.calls.append((self.fn.__name__, grid, kwargs.get("pid1_base", 0), kwargs.get("pid2_base", 0)))

        return record


@contextlib.contextmanager
def _recorded(monkeypatch, *modules_and_names):
    calls: list = []
    for module, name in modules_and_names:
        monkeypatch.setattr(module, name, _Recorder(getattr(module, name), calls))
    yield calls


def _check_tiling(calls, kernel: str) -> None:
    mine = [(grid, b1, b2) for name, grid, b1, b2 in calls if name == kernel]
    assert mine, f"{kernel} was not launched"
    assert all(g[a] <= CUDA_MAX_GRID[a] for g, _, _ in mine for a in range(3)), f"{kernel}: grid beyond CUDA's limits"
    # The chunks tile one rectangle of (axis 1, axis 2) ids exactly once, larger than one launch allows.
    cells = [(b1 + j, b2 + k) for (_, g1, g2), b1, b2 in mine for j in range(g1) for k in range(g2)]
    extent = (max(c[0] for c in cells) + 1, max(c[1] for c in cells) + 1)
    assert len(cells) == len(set(cells)) == extent[0] * extent[1], f"{kernel}: chunks overlap or leave gaps"
    assert max(g[0] for g, _, _ in mine) * extent[0] * extent[1] > 65535, f"{kernel}: the case is not above a limit"


def test_curve_launches_within_limits_above_16_7_megapixels(monkeypatch):
    # 4097 x 4096 pixels: cdiv(H * W, 256) = 65,552 pixel blocks, more than the 65,535 the old axis 1 allowed.
    x = torch.rand(1, 1, 1, 4097, 4096, dtype=torch.float16)
    with use_target(GPU_TARGETS[86]), _recorded(monkeypatch, (curve_tk, "_curve_map_fwd_kernel"),
                                                 (curve_tk, "_curve_map_bwd_kernel")) as calls:  # fmt: skip
        curve_tk.curve_map_fwd_triton(x, x)
        curve_tk.curve_map_bwd_triton(x, x, x)
    assert {grid[0] for _, grid, _, _ in calls} == {65552}
    block_c, block_p = curve_tk.block_sizes(64, 100_000 * 100_000)
    assert curve_tk.grid(1, 64, 100_000 * 100_000, block_c, block_p)[1:] == (1, 8)  # only axis 0 grows with the image


def test_curve_launches_within_limits_past_65535_batch_splits(monkeypatch):
    x = torch.rand(40000, 2, 1, 1, 1)  # B x S = 80,000 (batch, split) pairs on axis 1
    with use_target(GPU_TARGETS[80]), _recorded(monkeypatch, (curve_tk, "_curve_map_fwd_kernel"),
                                                 (curve_tk, "_curve_map_bwd_kernel")) as calls:  # fmt: skip
        curve_tk.curve_map_fwd_triton(x, x)
        curve_tk.curve_map_bwd_triton(x, x, x)
    _check_tiling(calls, "_curve_map_fwd_kernel")
    _check_tiling(calls, "_curve_map_bwd_kernel")


def test_attention_launches_within_limits_past_65535_batch_heads(monkeypatch):
    q = torch.randn(16400, 4, 16, 8)  # B x heads = 65,600 on axis 2
    with use_target(GPU_TARGETS[90]), _recorded(monkeypatch, (attention_tk, "_bca_gram_kernel"),
                                                 (attention_tk, "_bca_mix_kernel")) as calls:  # fmt: skip
        attention_tk.gram_triton(q, q)
        attention_tk.mix_triton(torch.rand(16400, 4, 16, 16), q, q, None)
    _check_tiling(calls, "_bca_gram_kernel")
    _check_tiling(calls, "_bca_mix_kernel")


def test_deform_launches_within_limits_past_65535_batch(monkeypatch):
    # batch x groups = 65,538 (forward axis 2), batch = 65,537 (input-gradient axis 2)
    x = torch.randn(65537, 2, 2, 2)
    offset, mask = torch.randn(65537, 2, 2, 2), torch.rand(65537, 1, 2, 2)
    weight, bias = torch.randn(2, 1, 1, 1), torch.zeros(2)
    geo = Geometry()
    modules = ((deform_tk, "_deform_conv2d_fwd_kernel"), (deform_bwd, "_deform_conv2d_bwd_weight_kernel"),
               (deform_bwd, "_deform_conv2d_bwd_data_kernel"))  # fmt: skip
    with use_target(GPU_TARGETS[86]), _recorded(monkeypatch, *modules) as calls:
        out = deform_tk.deform_conv2d_triton(x, offset, mask, weight, bias, geo)
        deform_bwd.deform_conv2d_backward_triton(torch.ones_like(out), x, offset, mask, weight, bias, geo, False)
    _check_tiling(calls, "_deform_conv2d_fwd_kernel")
    _check_tiling(calls, "_deform_conv2d_bwd_data_kernel")


# --- for real, in the interpreter, with the limits lowered ---------------------------------------------


@contextlib.contextmanager
def _tiny_grid_limits(arch: int, kernels: set[str]):
    """The settings of GPU target ``arch`` (run by the interpreter on CPU), with at most 2 programs on axis 1
    and 3 on axis 2; each of ``kernels`` (forward and backward) must have been launched split."""
    target = dataclasses.replace(GPU_TARGETS[arch], interpreter=not GPU, max_grid=(2**31 - 1, 2, 3))
    launches: list[LaunchRecord] = []
    with use_target(target), observe_launches(launches.append):
        yield launches
    assert all(r.chunk.grid[1] <= 2 and r.chunk.grid[2] <= 3 for r in launches)
    split = {r.kernel.fn.__name__ for r in launches if r.chunk.pid1_base or r.chunk.pid2_base}
    assert kernels <= split, f"not launched in several chunks: {sorted(kernels - split)}"


def _grads(out: torch.Tensor, inputs: list[torch.Tensor], seed: int) -> list[torch.Tensor]:
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return list(torch.autograd.grad(out, inputs, grad_out.to(out.dtype)))


@pytest.mark.parametrize("backend", TRITON)
@pytest.mark.parametrize("arch", sorted(GPU_TARGETS))
def test_split_launches_compute_the_same_curve(backend, arch):
    gen = torch.Generator().manual_seed(arch)
    x = (0.5 + 0.5 * torch.randn(3, 2, 5, 4, 3, generator=gen)).to(DEVICE).requires_grad_()  # B x S = 6 on axis 1
    a = torch.rand(3, 2, 2, 4, 3, generator=gen).to(DEVICE).requires_grad_()
    with _tiny_grid_limits(arch, {"_curve_map_fwd_kernel", "_curve_map_bwd_kernel"}):
        y = curve_map(x, a, backend=backend)
        grads = _grads(y, [x, a], arch)
    x64, a64 = x.detach().cpu().double().requires_grad_(), a.detach().cpu().double().requires_grad_()
    y64 = curve_map_ref(x64, a64)
    for name, got, want in zip(("y", "dx", "da"), [y, *grads], [y64, *_grads(y64, [x64, a64], arch)], strict=True):
        assert_close(got.detach().cpu(), want.detach(), torch.float32, name)


@pytest.mark.parametrize("backend", TRITON)
@pytest.mark.parametrize("arch", [80, 90])
def test_split_launches_compute_the_same_attention(backend, arch):
    gen = torch.Generator().manual_seed(arch)
    tensors = [torch.randn(3, 2, 4, 30, generator=gen).to(DEVICE).requires_grad_() for _ in range(4)]  # B x heads = 6
    temperature = (1 + 0.1 * torch.randn(2, generator=gen)).to(DEVICE).requires_grad_()
    with _tiny_grid_limits(arch, {"_bca_gram_kernel", "_bca_mix_kernel"}):
        out = bidirectional_channel_attention(*tensors, temperature, backend=backend)
        grads = _grads(out[0] + out[1], [*tensors, temperature], arch)
    exact = [t.detach().cpu().double().requires_grad_() for t in [*tensors, temperature]]
    ref = bidirectional_channel_attention_ref(*exact)
    expected = _grads(ref[0] + ref[1], exact, arch)
    for i, (got, want) in enumerate(zip([*out, *grads], [*ref, *expected], strict=True)):
        torch.testing.assert_close(got.detach().cpu().double(), want.detach(), rtol=1e-4, atol=1e-5, msg=f"output {i}")


@pytest.mark.parametrize("backend", TRITON)
@pytest.mark.parametrize("arch", [86, 89])
def test_split_launches_compute_the_same_deform_conv(backend, arch):
    gen = torch.Generator().manual_seed(arch)
    # axis 2 holds batch x groups = 16 (forward), groups = 4 (weight gradient), batch = 4 (input gradient)
    x = torch.randn(4, 8, 5, 5, generator=gen)
    offset = torch.randn(4, 2 * 2 * 9, 5, 5, generator=gen)  # 2 offset groups
    mask = torch.rand(4, 2 * 9, 5, 5, generator=gen)
    weight = torch.randn(8, 2, 3, 3, generator=gen)  # 4 groups of 2 channels
    bias = torch.randn(8, generator=gen)
    inputs = [t.to(DEVICE).requires_grad_() for t in (x, offset, weight, bias, mask)]
    x, offset, weight, bias, mask = inputs
    kernels = {"_deform_conv2d_fwd_kernel", "_deform_conv2d_bwd_weight_kernel", "_deform_conv2d_bwd_data_kernel"}
    with _tiny_grid_limits(arch, kernels):
        out = deform_conv2d(x, offset, weight, bias, padding=1, mask=mask, backend=backend)
        grads = _grads(out, inputs, arch)
    exact = [t.detach().cpu().double().requires_grad_() for t in inputs]
    ref = deform_conv2d_ref(exact[0], exact[1], exact[2], exact[3], (1, 1), (1, 1), (1, 1), exact[4])
    expected = _grads(ref, exact, arch)
    for i, (got, want) in enumerate(zip([out, *grads], [ref, *expected], strict=True)):
        scale = max(1.0, want.abs().max().item())
        torch.testing.assert_close(got.detach().cpu().double(), want.detach(), rtol=1e-4, atol=1e-5 * scale, msg=f"{i}")


def test_interpreter_runs_the_smallest_target_settings():
    assert INTERPRETER.interpreter and INTERPRETER.shared_memory == GPU_TARGETS[86].shared_memory
