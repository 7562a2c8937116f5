"""LayerNorm2d against a float64 formula and torch's own layer_norm over channels-last."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from vqcnir_ops import LayerNorm2d
from vqcnir_ops._testing import assert_close, assert_low_precision_close, make_noncontiguous


@given(
    b=st.integers(1, 3), c=st.integers(1, 40), h=st.integers(1, 9), w=st.integers(1, 9),
    dtype=st.sampled_from([torch.float32, torch.float16, torch.bfloat16]), noncontiguous=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)  # fmt: skip
def test_matches_float64_layer_norm(b, c, h, w, dtype, noncontiguous, seed):
    gen = torch.Generator().manual_seed(seed)
    x64 = 3 + 2 * torch.randn(b, c, h, w, generator=gen, dtype=torch.float64)
    norm = LayerNorm2d(c)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(c, generator=gen))
        norm.bias.copy_(torch.randn(c, generator=gen))
    x = x64.to(dtype)
    if noncontiguous:
        x = make_noncontiguous(x)
    expected = torch.nn.functional.layer_norm(
        x.double().permute(0, 2, 3, 1), (c,), norm.weight.double(), norm.bias.double(), eps=1e-6
    ).permute(0, 3, 1, 2)
    got = norm(x)
    assert got.dtype == dtype
    if dtype == torch.float32:
        assert_close(got, expected, dtype)
    else:
        naive = torch.nn.functional.layer_norm(x.permute(0, 2, 3, 1), (c,), norm.weight.to(dtype), norm.bias.to(dtype),
                                               eps=1e-6).permute(0, 3, 1, 2)  # fmt: skip
        assert_low_precision_close(got, naive, expected, floor=1e-2)


def test_gradcheck_and_keys():
    norm = LayerNorm2d(5).double()
    x = torch.randn(2, 5, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(norm, (x,))
    assert sorted(norm.state_dict()) == ["bias", "weight"]


def test_bad_input():
    with pytest.raises(ValueError, match="'x' must have 5 channels"):
        LayerNorm2d(5)(torch.randn(1, 4, 2, 2))
    with pytest.raises(ValueError, match="'x' must have 4 dimensions"):
        LayerNorm2d(5)(torch.randn(5, 2, 2))
