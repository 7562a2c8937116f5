"""Every op, on every CPU backend, runs under torch.inference_mode and torch.no_grad and gives the
same result as in grad mode (kernels that call ATen ops on worker threads must carry the caller's
thread-local state: tests a bug where C++ workers ran outside inference mode)."""

from __future__ import annotations

import pytest
import torch

from tests.backends import backend_params, device_for
from vqcnir_ops import bidirectional_channel_attention, curve_map, deform_conv2d, nearest_code


def _calls(backend: str):
    device = device_for(backend)
    gen = torch.Generator().manual_seed(0)
    r = lambda *shape: torch.randn(*shape, generator=gen).to(device)  # noqa: E731
    q = [r(2, 2, 8, 300) for _ in range(4)]
    return {
        "nearest_code": lambda: nearest_code(r(300, 16), r(40, 16), backend=backend)[1],
        "curve_map": lambda: curve_map(r(2, 8, 9, 9), torch.sigmoid(r(2, 12, 9, 9)), 4, backend=backend),
        "bidirectional_channel_attention": lambda: bidirectional_channel_attention(
            *q, torch.ones(2, device=device), backend=backend
        )[0],
        "deform_conv2d": lambda: deform_conv2d(
            r(2, 8, 9, 9),
            r(2, 18, 9, 9),
            r(4, 8, 3, 3),
            padding=1,
            mask=torch.sigmoid(r(2, 9, 9, 9)),
            backend=backend,
        ),  # fmt: skip
    }


@pytest.mark.parametrize("op", ["nearest_code", "curve_map", "bidirectional_channel_attention", "deform_conv2d"])
@pytest.mark.parametrize("backend", ["reference", "cpp"])
def test_inference_mode_and_no_grad(op, backend):
    if not [p for p in backend_params(op) if p.id == backend and not p.marks]:
        pytest.skip(f"{backend} unavailable for {op}")
    expected = _calls(backend)[op]()
    with torch.inference_mode():
        got = _calls(backend)[op]()
    with torch.no_grad():
        got_no_grad = _calls(backend)[op]()
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(got_no_grad, expected)
