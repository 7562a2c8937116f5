"""nearest_code: every backend against float64 distances, on shapes and values drawn by hypothesis."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import vqcnir_ops
from tests.backends import backend_params, device_for
from vqcnir_ops import BackendUnavailableError, nearest_code
from vqcnir_ops._testing import check_nearest_code, make_noncontiguous, poisoned_empty

BACKENDS = backend_params("nearest_code")
LOW_AND_FLOAT = [torch.float32, torch.float16, torch.bfloat16]


def _dtypes(backend: str) -> list[torch.dtype]:
    return LOW_AND_FLOAT + ([torch.float64] if backend in ("reference", "cpp") else [])


def _compute(z: torch.Tensor, codebook: torch.Tensor) -> torch.dtype:
    return torch.float64 if torch.float64 in (z.dtype, codebook.dtype) else torch.float32


def _draw_inputs(data: st.DataObject, backend: str, max_n: int = 140, max_k: int = 150, max_d: int = 70):
    n = data.draw(st.integers(0, max_n), label="N")
    k = data.draw(st.integers(1, max_k), label="K")
    d = data.draw(st.integers(1, max_d), label="D")
    dtype = data.draw(st.sampled_from(_dtypes(backend)), label="dtype")
    offset = data.draw(st.sampled_from([0.0, 3.0, 1000.0]), label="offset")
    spread = data.draw(st.sampled_from([1e-2, 1.0, 30.0]), label="spread")
    seed = data.draw(st.integers(0, 2**31 - 1), label="seed")
    gen = torch.Generator().manual_seed(seed)
    codebook = offset + spread * torch.randn(k, d, generator=gen, dtype=torch.float64)
    # Rows near codes, near midpoints between codes, and far away: all three regimes of the argmin.
    pick = torch.randint(0, k, (n, 2), generator=gen)
    near = codebook[pick[:, 0]] + 0.1 * spread * torch.randn(n, d, generator=gen, dtype=torch.float64)
    middle = 0.5 * (codebook[pick[:, 0]] + codebook[pick[:, 1]])
    far = offset + 3 * spread * torch.randn(n, d, generator=gen, dtype=torch.float64)
    kind = torch.randint(0, 3, (n, 1), generator=gen)
    z = torch.where(kind == 0, near, torch.where(kind == 1, middle, far))
    device = device_for(backend)
    z, codebook = z.to(device=device, dtype=dtype), codebook.to(device=device, dtype=dtype)
    if data.draw(st.booleans(), label="non-contiguous z"):
        z = make_noncontiguous(z)
    if data.draw(st.booleans(), label="float32 codebook"):
        codebook = codebook.float()
    return z, codebook


@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data())
def test_matches_float64_contract(backend, data):
    z, codebook = _draw_inputs(data, backend)
    with poisoned_empty():
        indices, dist = nearest_code(z, codebook, backend=backend)
    check_nearest_code(z, codebook, indices, dist, _compute(z, codebook))


@pytest.mark.parametrize("backend", BACKENDS)
def test_large_offset_small_spread(backend):
    # |z|^2 ~ 5e8 while the spreads are ~1e-2: the uncentred expansion cancels to noise here.
    gen = torch.Generator().manual_seed(0)
    codebook = 1000 + 0.01 * torch.randn(300, 512, generator=gen)
    z = codebook[torch.randint(0, 300, (257,), generator=gen)] + 0.001 * torch.randn(257, 512, generator=gen)
    device = device_for(backend)
    indices, dist = nearest_code(z.to(device), codebook.to(device), backend=backend)
    check_nearest_code(z, codebook, indices.cpu(), dist.cpu(), torch.float32)
    assert torch.all(dist >= 0) and torch.isfinite(dist).all()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", LOW_AND_FLOAT)
def test_large_offset_half_precision_is_finite(backend, dtype):
    # In float16 the expansion of such inputs overflows and goes NaN unless computed in float32.
    codebook = (200 + torch.randn(64, 96)).to(dtype)
    z = (200 + torch.randn(33, 96)).to(dtype)
    device = device_for(backend)
    indices, dist = nearest_code(z.to(device), codebook.to(device), backend=backend)
    assert torch.isfinite(dist).all() and dist.dtype == torch.float32
    check_nearest_code(z, codebook, indices.cpu(), dist.cpu(), torch.float32)


@pytest.mark.parametrize("backend", BACKENDS)
def test_duplicate_codes_tie_to_smallest_index(backend):
    gen = torch.Generator().manual_seed(1)
    unique = torch.randn(20, 24, generator=gen)
    order = torch.randint(0, 20, (100,), generator=gen)  # each unique code repeated at random positions
    codebook = unique[order]
    z = unique[torch.randint(0, 20, (90,), generator=gen)] + 0.05 * torch.randn(90, 24, generator=gen)
    device = device_for(backend)
    indices, _ = nearest_code(z.to(device), codebook.to(device), backend=backend)
    first_occurrence = {}
    for position, code in enumerate(order.tolist()):
        first_occurrence.setdefault(code, position)
    chosen = order[indices.cpu()]
    expected = torch.tensor([first_occurrence[c] for c in chosen.tolist()])
    assert torch.equal(indices.cpu(), expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_nan_rules(backend):
    device = device_for(backend)
    codebook = torch.randn(70, 16)
    z = torch.randn(5, 16)
    z[2, 7] = float("nan")
    indices, dist = nearest_code(z.to(device), codebook.to(device), backend=backend)
    assert indices[2] == 0 and torch.isnan(dist[2])
    keep = torch.tensor([0, 1, 3, 4])
    check_nearest_code(z[keep], codebook, indices.cpu()[keep], dist.cpu()[keep], torch.float32)
    # A NaN code is "nearest" to every row: the first one wins.
    codebook[40, 3] = float("nan")
    codebook[65, 0] = float("nan")
    indices, dist = nearest_code(torch.randn(9, 16, device=device), codebook.to(device), backend=backend)
    assert torch.all(indices == 40) and torch.isnan(dist).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_edge_sizes(backend):
    device = device_for(backend)
    empty_idx, empty_dist = nearest_code(torch.randn(0, 5, device=device), torch.randn(3, 5, device=device),
                                         backend=backend)  # fmt: skip
    assert empty_idx.shape == (0,) and empty_dist.shape == (0,)
    z = torch.randn(1, 3)
    indices, dist = nearest_code(z.to(device), z.to(device) + 0.5, backend=backend)  # K = 1
    assert indices.tolist() == [0]
    torch.testing.assert_close(dist.cpu(), torch.tensor([0.75]), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_many_codes(backend):
    # K up to 65536: many codebook tiles, with the nearest code placed in the last one.
    device = device_for(backend)
    gen = torch.Generator().manual_seed(2)
    codebook = torch.randn(65536, 8, generator=gen)
    z = codebook[[65535, 0, 40000, 12345]] + 1e-3
    indices, dist = nearest_code(z.to(device), codebook.to(device), backend=backend)
    check_nearest_code(z, codebook, indices.cpu(), dist.cpu(), torch.float32)
    assert indices.tolist() == [65535, 0, 40000, 12345]


@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data())
def test_dist_gradients_match_float64(backend, data):
    z, codebook = _draw_inputs(data, backend, max_n=40, max_k=30, max_d=20)
    z = z.detach().float().requires_grad_()
    codebook = codebook.detach().float().requires_grad_()
    weights = torch.randn(z.shape[0], dtype=torch.float64)
    indices, dist = nearest_code(z, codebook, backend=backend)
    (dist.double().cpu() * weights).sum().backward()
    z64 = z.detach().double().cpu().requires_grad_()
    book64 = codebook.detach().double().cpu().requires_grad_()
    exact = ((z64 - book64[indices.cpu()]) ** 2).sum(1)
    (exact * weights).sum().backward()
    scale = 1.0 + 2 * torch.cat([z64.detach().flatten(), book64.detach().flatten()]).abs().max().item()
    torch.testing.assert_close(z.grad.double().cpu(), z64.grad, rtol=1e-5, atol=1e-5 * scale)
    torch.testing.assert_close(codebook.grad.double().cpu(), book64.grad, rtol=1e-5, atol=1e-5 * scale)


@pytest.mark.parametrize("backend", [p for p in BACKENDS if p.id in ("reference", "cpp")])
def test_gradcheck_float64(backend):
    gen = torch.Generator().manual_seed(3)
    z = torch.randn(11, 6, dtype=torch.float64, generator=gen, requires_grad=True)
    codebook = torch.randn(7, 6, dtype=torch.float64, generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: nearest_code(a, b, backend=backend)[1], (z, codebook))


@pytest.mark.parametrize("backend", BACKENDS)
def test_opcheck(backend):
    device = device_for(backend)
    z = torch.randn(37, 19, device=device, requires_grad=True)
    codebook = torch.randn(23, 19, device=device, requires_grad=True)
    torch.library.opcheck(torch.ops.vqcnir.nearest_code_fwd.default, (z, codebook, backend))
    indices = torch.randint(0, 23, (37,), device=device)
    torch.library.opcheck(torch.ops.vqcnir.nearest_code_bwd.default, (torch.randn(37, device=device), z.detach(),
                                                                      codebook.detach(), indices))  # fmt: skip


@pytest.mark.slow
def test_torch_compile_fullgraph():
    compiled = torch.compile(lambda z, c: nearest_code(z, c), fullgraph=True, backend="aot_eager")
    z, codebook = torch.randn(50, 12), torch.randn(30, 12)
    expected = nearest_code(z, codebook)
    got = compiled(z, codebook)
    assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])


# --- bad input and backend choice -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("z", "codebook", "error", "words"),
    [
        (torch.randn(4, 3, 2), torch.randn(5, 2), ValueError, "'z' must have 2 dimensions"),
        (torch.randn(4, 2), torch.randn(5), ValueError, "'codebook' must have 2 dimensions"),
        (torch.randn(4, 3), torch.randn(5, 2), ValueError, "'z' has rows of dim 3 but 'codebook'"),
        (torch.randint(0, 5, (4, 2)), torch.randn(5, 2), TypeError, "'z' must be float"),
        (torch.randn(4, 2), torch.randint(0, 5, (5, 2)), TypeError, "'codebook' must be float"),
        (torch.randn(4, 2), torch.randn(0, 2), ValueError, "'codebook' must hold at least one code"),
        (torch.randn(4, 2), torch.randn(5, 2, device="meta"), ValueError, "same device"),
        ([[1.0, 2.0]], torch.randn(5, 2), TypeError, "'z' must be a torch.Tensor"),
    ],
)
def test_bad_input_names_the_argument(z, codebook, error, words):
    with pytest.raises(error, match=words):
        nearest_code(z, codebook)


def test_forced_backend_unavailable_raises(monkeypatch):
    z, codebook = torch.randn(4, 2), torch.randn(5, 2)
    with pytest.raises(BackendUnavailableError, match="cuda backend runs CUDA tensors only"):
        nearest_code(z, codebook, backend="cuda")
    monkeypatch.setenv("VQCNIR_OPS_BACKEND", "cuda")
    with pytest.raises(BackendUnavailableError, match="'cuda' was requested"):
        nearest_code(z, codebook)
    # The argument wins over the environment.
    assert nearest_code(z, codebook, backend="reference")[0].shape == (4,)
    monkeypatch.setenv("VQCNIR_OPS_BACKEND", "fastest")
    with pytest.raises(ValueError, match="environment variable VQCNIR_OPS_BACKEND must be one of"):
        nearest_code(z, codebook)
    with pytest.raises(ValueError, match="argument 'backend' must be one of"):
        nearest_code(z, codebook, backend="gpu")


def test_triton_float64_is_refused():
    with pytest.raises(BackendUnavailableError, match="does not support dtype torch.float64"):
        nearest_code(torch.randn(3, 2, dtype=torch.float64), torch.randn(4, 2), backend="triton")


def test_public_api_exports():
    assert vqcnir_ops.nearest_code is nearest_code
