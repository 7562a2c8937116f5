"""VectorQuantizer: straight-through gradient, loss formulas, lookup, freezing, usage, compile."""

from __future__ import annotations

import pytest
import torch

from tests.backends import backend_params, device_for
from vqcnir_ops import VectorQuantizer, nearest_code_ref
from vqcnir_ops.quantize.module import gram_matrix

BACKENDS = backend_params("nearest_code")


def _quantizer(backend: str, num_codes: int = 37, code_dim: int = 12) -> VectorQuantizer:
    torch.manual_seed(0)
    return VectorQuantizer(num_codes, code_dim, backend=backend).to(device_for(backend))


@pytest.mark.parametrize("backend", BACKENDS)
def test_quantized_values_and_indices_match_reference(backend):
    vq = _quantizer(backend)
    z = torch.randn(2, 12, 5, 7, device=device_for(backend))
    out = vq(z)
    rows = z.permute(0, 2, 3, 1).reshape(-1, 12)
    expected_indices, _ = nearest_code_ref(rows, vq.codebook.detach())
    assert torch.equal(out.indices.flatten(), expected_indices)
    torch.testing.assert_close(out.quantized, vq.lookup(out.indices))
    assert out.quantized.shape == z.shape and out.indices.shape == (2, 5, 7)


@pytest.mark.parametrize("backend", BACKENDS)
def test_straight_through_gradient_is_identity(backend):
    vq = _quantizer(backend)
    z = torch.randn(2, 12, 4, 3, device=device_for(backend), requires_grad=True)
    upstream = torch.randn_like(z)
    (vq(z).quantized * upstream).sum().backward()
    assert torch.equal(z.grad, upstream)


def test_loss_formulas():
    vq = _quantizer("reference")
    z = torch.randn(3, 12, 4, 4, requires_grad=True)
    out = vq(z)
    codes = vq.lookup(out.indices)
    mse = torch.mean((z - codes) ** 2)
    torch.testing.assert_close(out.codebook_loss, mse)
    torch.testing.assert_close(out.commitment_loss, mse)
    torch.testing.assert_close(out.loss, mse * (1 + vq.beta))
    # Gradients: the codebook term moves only the codes, the commitment term only z.
    out.loss.backward()
    torch.testing.assert_close(z.grad, vq.beta * 2 * (z - codes).detach() / z.numel())
    expected_code_grad = torch.zeros_like(vq.codebook)
    rows = (2 * (codes - z) / z.numel()).detach().permute(0, 2, 3, 1).reshape(-1, 12)
    expected_code_grad.index_add_(0, out.indices.flatten(), rows)
    torch.testing.assert_close(vq.embedding.weight.grad, expected_code_grad)


def test_code_alignment_loss_with_ground_truth_indices():
    vq = _quantizer("reference")
    z = torch.randn(2, 12, 3, 5, requires_grad=True)
    gt = torch.randint(0, 37, (2, 1, 3, 5))
    out = vq(z, gt_indices=gt)
    gt_codes = vq.lookup(gt).detach()
    flat_z, flat_gt = z.flatten(2), gt_codes.flatten(2)
    gram = lambda f: f @ f.transpose(1, 2) / f.shape[-1]  # noqa: E731
    expected = vq.beta * torch.mean((z - gt_codes) ** 2) + torch.mean((gram(flat_z) - gram(flat_gt)) ** 2)
    torch.testing.assert_close(out.alignment_loss, expected)
    torch.testing.assert_close(out.loss, expected)
    out.loss.backward()
    assert vq.embedding.weight.grad is None  # the alignment target is detached
    assert torch.equal(gram_matrix(gt_codes), gram(flat_gt))


def test_frozen_codebook_gets_no_gradient_and_loads_official_key():
    vq = VectorQuantizer(16, 8, frozen=True)
    assert not vq.embedding.weight.requires_grad and vq.frozen
    official = {"embedding.weight": torch.randn(16, 8)}  # quantize_group.0.embedding.weight in VQCNIR
    vq.load_state_dict(official)
    z = torch.randn(1, 8, 2, 2, requires_grad=True)
    vq(z).loss.backward()
    assert vq.embedding.weight.grad is None and z.grad is not None
    assert [name for name, p in vq.named_parameters() if p.requires_grad] == []


def test_usage_statistics():
    vq = VectorQuantizer(4, 2)
    with torch.no_grad():
        vq.embedding.weight.copy_(torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]]))
    z = torch.tensor([[0.1, 0.2], [9.8, 0.1], [0.3, 0.1], [9.9, 0.2]]).t().reshape(1, 2, 2, 2)
    vq.train()
    vq(z)
    usage = vq.usage()
    assert usage.counts.tolist() == [2, 2, 0, 0]
    assert usage.used_fraction == 0.5
    assert usage.perplexity == pytest.approx(2.0)
    vq.eval()
    vq(z)
    assert vq.usage().counts.tolist() == [2, 2, 0, 0]  # eval forwards do not count
    vq.reset_usage()
    assert vq.usage().perplexity == 0.0


@pytest.mark.parametrize(
    ("args", "error", "words"),
    [
        ((torch.randn(2, 12, 4),), ValueError, "'z' must have 4 dimensions"),
        ((torch.randn(2, 5, 4, 4),), ValueError, "'z' must have 12 channels"),
        ((torch.randint(0, 3, (2, 12, 4, 4)),), TypeError, "'z' must be float"),
        ((torch.randn(2, 12, 4, 4), torch.randint(0, 3, (2, 4, 5))), ValueError, "'gt_indices' must have shape"),
        ((torch.randn(2, 12, 4, 4), torch.rand(2, 4, 4)), TypeError, "'gt_indices' must be int64"),
    ],
)
def test_bad_input_names_the_argument(args, error, words):
    with pytest.raises(error, match=words):
        _quantizer("reference")(*args)


def test_lookup_rejects_bad_indices():
    vq = _quantizer("reference")
    with pytest.raises(ValueError, match="'indices' must have shape"):
        vq.lookup(torch.zeros(3, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match="num_codes and code_dim must be >= 1"):
        VectorQuantizer(0, 4)


@pytest.mark.slow
def test_torch_compile_fullgraph():
    vq = _quantizer("reference" if not torch.cuda.is_available() else "triton")
    vq.backend = None
    z = torch.randn(2, 12, 6, 6, requires_grad=True)
    compiled = torch.compile(vq, fullgraph=True, backend="aot_eager")
    out, expected = compiled(z), vq(z)
    assert torch.equal(out.indices, expected.indices)
    torch.testing.assert_close(out.loss, expected.loss)
    out.loss.backward()
    assert z.grad is not None
