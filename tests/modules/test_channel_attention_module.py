"""BidirectionalChannelAttention: the layer (its official-weight loading is tests/model/test_official.py)."""

from __future__ import annotations

import pytest
import torch

from tests.backends import backend_params, device_for
from vqcnir_ops import BackendUnavailableError, BidirectionalChannelAttention, bidirectional_channel_attention_ref
from vqcnir_ops._testing import assert_max_rel_close

BACKENDS = backend_params("bidirectional_channel_attention")


def test_starts_as_identity():
    module = BidirectionalChannelAttention(8, num_heads=2)
    f_d, f_g = torch.randn(1, 8, 4, 4), torch.randn(1, 8, 4, 4)
    out_d, out_g = module(f_d, f_g)
    assert torch.equal(out_d, f_d) and torch.equal(out_g, f_g)
    assert torch.equal(module.temperature, torch.ones(2))


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: BidirectionalChannelAttention(10, num_heads=4), r"channels \(10\) must be a positive multiple"),
        (
            lambda: BidirectionalChannelAttention(8, 2)(torch.randn(1, 8, 4, 4), torch.randn(1, 8, 4, 5)),
            "'f_d' .* and 'f_g' .* must have one shape",
        ),  # fmt: skip
        (
            lambda: BidirectionalChannelAttention(8, 2)(torch.randn(1, 6, 4, 4), torch.randn(1, 6, 4, 4)),
            "'f_d' must have 8 channels",
        ),  # fmt: skip
    ],
)
def test_bad_configuration_or_input(make, words):
    with pytest.raises(ValueError, match=words):
        make()


@pytest.mark.parametrize("backend", [p for p in BACKENDS if p.id in ("reference", "cpp")])
def test_more_than_128_channels_per_head(backend):
    # 130 channels in one head: beyond the Triton kernels' tile, fine for the other backends.
    module = BidirectionalChannelAttention(130, num_heads=1, backend=backend).to(device_for(backend))
    with torch.no_grad():
        module.gamma_d.fill_(0.5)
    f_d, f_g = (torch.randn(1, 130, 3, 4, device=device_for(backend)) for _ in range(2))
    out_d, _ = module(f_d, f_g)
    q_d, q_g = module.proj_q_d(module.norm_d(f_d)), module.proj_q_g(module.norm_g(f_g))
    heads = [t.reshape(1, 1, 130, 12).double().cpu() for t in (q_d, q_g, module.proj_v_d(f_d), module.proj_v_g(f_g))]
    a_g = bidirectional_channel_attention_ref(*heads, torch.ones(1, dtype=torch.float64))[1].reshape(1, 130, 3, 4)
    assert_max_rel_close(out_d.detach().cpu(), f_d.double().cpu() + 0.5 * a_g, 1e-5, "F_D'")
    module.backend = "triton"
    with pytest.raises(BackendUnavailableError, match="at most 128 channels per head"):
        module(f_d, f_g)


@pytest.mark.slow
def test_torch_compile_fullgraph():
    torch.manual_seed(2)
    module = BidirectionalChannelAttention(8, num_heads=2)
    with torch.no_grad():
        module.gamma_d.normal_()
        module.gamma_g.normal_()
    compiled = torch.compile(module, fullgraph=True, backend="aot_eager")
    f_d, f_g = torch.randn(2, 8, 6, 6, requires_grad=True), torch.randn(2, 8, 6, 6)
    got = compiled(f_d, f_g)
    expected = module(f_d, f_g)
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-6)
    (grad_compiled,) = torch.autograd.grad(got[0].sum() + got[1].sum(), f_d)
    (grad_eager,) = torch.autograd.grad(expected[0].sum() + expected[1].sum(), f_d)
    torch.testing.assert_close(grad_compiled, grad_eager, rtol=1e-5, atol=1e-6)
