"""vqcnir_ops._backend.call_forward: an eager forward that nothing traces or differentiates skips the custom op's
dispatch and calls the function the op wraps; everything else goes through the op. Same results either way."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import vqcnir_ops
from vqcnir_ops import _backend


class _Recorder(TorchDispatchMode):
    """A dispatch mode that sees every op (as a flop counter or a debugging mode would)."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        self.names.append(str(func))
        return func(*args, **(kwargs or {}))


def test_when_the_custom_op_is_needed():
    plain, leaf = torch.randn(3), torch.randn(3, requires_grad=True)
    assert not _backend.needs_custom_op((plain, None, 2, "cpp"))
    assert _backend.needs_custom_op((plain, leaf))  # autograd must record it
    with torch.no_grad():
        assert not _backend.needs_custom_op((plain, leaf))
    with torch.inference_mode():
        assert not _backend.needs_custom_op((plain, leaf))
    assert _backend.needs_custom_op((torch.empty(3, device="meta"),))
    with _Recorder():
        assert _backend.needs_custom_op((plain,))
    assert torch.func.vmap(lambda x: torch.tensor(_backend.needs_custom_op((x,))))(torch.randn(2, 3)).all()


def _attention_args(grad: bool) -> tuple:
    torch.manual_seed(0)
    q = [torch.randn(2, 24, 5, 7, requires_grad=grad) for _ in range(6)]
    gains = [torch.randn(24, requires_grad=grad) for _ in range(2)]
    return (*q[:4], torch.rand(3) + 0.5), {
        "heads": 3,
        "f_d": q[4],
        "f_g": q[5],
        "gamma_d": gains[0],
        "gamma_g": gains[1],
    }


@pytest.mark.parametrize("backend", ["reference", "cpp"])
def test_direct_and_custom_op_paths_agree_bitwise(backend, monkeypatch):
    if _backend.backend_unavailable_reason(backend, "cpu"):
        pytest.skip("backend unavailable")
    calls = []
    original = _backend.needs_custom_op

    def counted(args):
        calls.append(original(args))
        return original(args)

    monkeypatch.setattr(_backend, "needs_custom_op", counted)
    args, kwargs = _attention_args(grad=False)
    x, a = torch.randn(2, 6, 4, 5), torch.rand(2, 6, 4, 5)
    z, codebook = torch.randn(9, 4), torch.randn(5, 4)
    weight, offset = torch.randn(4, 6, 3, 3), torch.randn(2, 18, 4, 5)
    depth_weight = torch.randn(6, 1, 3, 3)
    calls_made = {
        "attention": lambda: vqcnir_ops.bidirectional_channel_attention(*args, **kwargs, backend=backend),
        "curve": lambda: vqcnir_ops.curve_map(x, a, splits=2, backend=backend),
        "nearest": lambda: vqcnir_ops.nearest_code(z, codebook, backend=backend),
        "deform": lambda: vqcnir_ops.deform_conv2d(x, offset, weight, padding=1, backend=backend),
        "depthwise": lambda: vqcnir_ops.depthwise_conv2d(x, depth_weight, padding=1, backend=backend),
    }
    for name, call in calls_made.items():
        calls.clear()
        direct = call()
        assert calls == [False], name  # no grad anywhere: the direct path
        with _Recorder() as recorder:
            through_op = call()
        assert any("vqcnir." in n and "_fwd" in n for n in recorder.names), name
        as_tuple = lambda r: r if isinstance(r, tuple) else (r,)  # noqa: E731
        for got, expected in zip(as_tuple(direct), as_tuple(through_op), strict=True):
            assert torch.equal(got, expected), name


def test_gradients_still_flow_through_the_op():
    args, kwargs = _attention_args(grad=True)
    out_d, out_g = vqcnir_ops.bidirectional_channel_attention(*args, **kwargs)
    assert out_d.grad_fn is not None and out_g.grad_fn is not None
    (out_d.sum() + out_g.sum()).backward()
    assert all(t.grad is not None for t in args[:4])
