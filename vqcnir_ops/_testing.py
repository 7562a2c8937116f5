"""Tolerances, exact references and input factories shared by the tests and the benchmarks.

Tolerance rules of the suite (the project's style guide, "References and tests"):
- float32 results: about 1e-5 relative to a float64 reference (``TOLERANCES``).
- float16/bfloat16 results, and ill-conditioned float32 ones (a LayerNorm over few near-equal channels):
  the error against float64 may be at most ``LOW_PRECISION_FACTOR`` times the error of a reference run in
  the same precision, plus a small floor (``assert_low_precision_close``: flash-attention's rule,
  ``tests/test_flash_attn.py``); never a fixed tolerance where the problem's conditioning varies.
- Long reductions: a relative RMSE bound (``assert_rmse_close``).
- Near-ties of an argmin: check the chosen value, not the index (``check_nearest_code``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch

TOLERANCES: dict[torch.dtype, dict[str, float]] = {
    torch.float64: {"rtol": 1e-10, "atol": 1e-12},
    torch.float32: {"rtol": 1e-5, "atol": 1e-6},
    torch.float16: {"rtol": 1e-2, "atol": 1e-3},
    torch.bfloat16: {"rtol": 8e-2, "atol": 8e-3},
}
LOW_PRECISION_FACTOR = 2.0


def assert_close(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype, name: str = "output") -> None:
    """``actual`` against a (float64) ``expected`` with the tolerance of ``dtype``."""
    torch.testing.assert_close(
        actual.double(), expected.double(), **TOLERANCES[dtype], equal_nan=True, msg=lambda m: f"{name}: {m}"
    )


def assert_low_precision_close(
    actual: torch.Tensor, same_precision_ref: torch.Tensor, exact: torch.Tensor, name: str = "output",
    floor: float = 1e-3,
) -> None:  # fmt: skip
    """Kernel error vs float64 <= LOW_PRECISION_FACTOR x (reference-in-low-precision error) + floor."""
    kernel_err = (actual.double() - exact.double()).abs().max().item() if actual.numel() else 0.0
    ref_err = (same_precision_ref.double() - exact.double()).abs().max().item() if actual.numel() else 0.0
    scale = exact.double().abs().max().item() if exact.numel() else 0.0
    bound = LOW_PRECISION_FACTOR * ref_err + floor * max(1.0, scale)
    assert kernel_err <= bound, (
        f"{name}: max error {kernel_err:.3g} > bound {bound:.3g} (reference error {ref_err:.3g})"
    )


def assert_rmse_close(actual: torch.Tensor, expected: torch.Tensor, rel: float, name: str = "output") -> None:
    """Relative RMSE ``||a - e|| / ||e||`` at most ``rel``: for long reductions."""
    diff = (actual.double() - expected.double()).norm().item()
    base = max(expected.double().norm().item(), 1e-30)
    assert diff / base <= rel, f"{name}: relative RMSE {diff / base:.3g} > {rel:.3g}"


# --- nearest code -----------------------------------------------------------------------------------


def exact_sq_distances(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """``[N, K]`` float64 squared distances by direct differences (no expansion, no cancellation)."""
    z64, book64 = z.double(), codebook.double()
    rows = []
    for chunk in z64.split(max(1, (1 << 22) // max(1, codebook.numel())), dim=0):
        rows.append(((chunk[:, None, :] - book64[None, :, :]) ** 2).sum(-1))
    return torch.cat(rows) if rows else z64.new_empty(0, codebook.shape[0])


def nearest_code_tolerance(z: torch.Tensor, codebook: torch.Tensor, compute: torch.dtype) -> torch.Tensor:
    """``[N]`` bound on the error of one computed distance (the contract of ``quantize/reference.py``).

    The expansion over centred vectors has error of order eps * (|z - mu|^2 + |e - mu|^2), times a
    dot-product accumulation factor that grows like sqrt(D).
    """
    eps = torch.finfo(compute).eps
    book64 = codebook.double()
    mu = book64.mean(0)
    scale = ((z.double() - mu) ** 2).sum(1) + ((book64 - mu) ** 2).sum(1).max()
    return (8.0 + 2.0 * math.sqrt(z.shape[1])) * eps * scale + 1e-30


def check_nearest_code(
    z: torch.Tensor, codebook: torch.Tensor, indices: torch.Tensor, dist: torch.Tensor, compute: torch.dtype
) -> None:
    """Assert the numerical contract of ``nearest_code`` for rows of ``z`` without NaN.

    - the chosen code's true distance is within 2 x tolerance of the true minimum;
    - where the gap between the best and second-best code exceeds 2 x tolerance, the index is exact;
    - the reported distance is within tolerance of the chosen code's true distance.
    """
    n_rows = z.shape[0]
    assert indices.shape == (n_rows,) and indices.dtype == torch.int64, (indices.shape, indices.dtype)
    assert dist.shape == (n_rows,) and dist.dtype == compute, (dist.shape, dist.dtype)
    if n_rows == 0:
        return
    assert int(indices.min()) >= 0 and int(indices.max()) < codebook.shape[0], "index out of range"
    exact = exact_sq_distances(z, codebook)
    tol = nearest_code_tolerance(z, codebook, compute)
    indices, dist = indices.cpu(), dist.cpu().double()
    best = exact.min(dim=1).values
    chosen = exact.gather(1, indices[:, None]).squeeze(1)
    assert torch.all(chosen <= best + 2 * tol), f"chosen code not nearest: excess {(chosen - best - 2 * tol).max()}"
    assert torch.all((dist - chosen).abs() <= tol), f"dist off by {((dist - chosen).abs() - tol).max()} over tol"
    if codebook.shape[0] > 1:
        two = exact.topk(2, dim=1, largest=False).values
        clear = (two[:, 1] - two[:, 0]) > 2 * tol
        assert torch.equal(indices[clear], exact.argmin(dim=1)[clear]), "index differs where the gap is clear"


# --- inputs -----------------------------------------------------------------------------------------


def make_noncontiguous(tensor: torch.Tensor) -> torch.Tensor:
    """The same values in a non-contiguous layout (every other element of a twice-as-wide buffer)."""
    buffer = torch.empty(*tensor.shape[:-1], 2 * tensor.shape[-1], dtype=tensor.dtype, device=tensor.device)
    buffer[..., ::2] = tensor
    buffer[..., 1::2] = float("nan") if tensor.is_floating_point() else -1  # poison the gaps
    view = buffer[..., ::2]
    assert view.numel() <= 1 or view.shape[-1] <= 1 or not view.is_contiguous()
    return view


@contextlib.contextmanager
def poisoned_empty() -> Iterator[None]:
    """Make ``torch.empty``/``empty_like`` return NaN (floats) or -77 (integers) inside the block,
    so an output element a kernel forgets to write fails the comparison."""
    original_empty, original_like = torch.empty, torch.empty_like

    def poison(tensor: torch.Tensor) -> torch.Tensor:
        if tensor.is_floating_point():
            return tensor.fill_(float("nan"))
        if tensor.dtype != torch.bool and not tensor.is_complex():
            return tensor.fill_(-77)
        return tensor

    torch.empty = lambda *a, **k: poison(original_empty(*a, **k))  # type: ignore[assignment]
    torch.empty_like = lambda *a, **k: poison(original_like(*a, **k))  # type: ignore[assignment]
    try:
        yield
    finally:
        torch.empty, torch.empty_like = original_empty, original_like


def assert_matches_exact(
    actual: torch.Tensor, same_precision_ref: torch.Tensor, exact: torch.Tensor, dtype: torch.dtype, name: str
) -> None:
    """``actual`` against a float64 ``exact`` result: for float32/float64 within ``TOLERANCES[dtype]``
    relative to the largest magnitude of ``exact`` (sums of many terms); for float16/bfloat16 by
    ``assert_low_precision_close`` against the reference run in the same precision."""
    if dtype in (torch.float16, torch.bfloat16):
        assert_low_precision_close(actual, same_precision_ref, exact, name=name)
        return
    scale = max(1.0, exact.double().abs().max().item()) if exact.numel() else 1.0
    tol = TOLERANCES[dtype]
    torch.testing.assert_close(
        actual.double().cpu(), exact.double().cpu(), rtol=tol["rtol"], atol=10 * tol["atol"] * scale,
        msg=lambda m: f"{name}: {m}",
    )  # fmt: skip


# --- deformable convolution ---------------------------------------------------------------------------


def deform_offsets(shape: tuple[int, ...], kind: str, generator: torch.Generator, spread: float = 2.0) -> torch.Tensor:
    """float64 offsets of one ``kind``: ``'fractional'`` (uniform), ``'integer'`` (exact integers),
    ``'near_border'`` (integers +- 1e-3: samples just either side of pixel rows and columns),
    ``'off_integer'`` (fractional parts in [0.2, 0.8]: away from bilinear kinks, for gradcheck) or
    ``'mixed'`` (each element drawn from the first three)."""
    base = torch.round(spread * torch.randn(shape, generator=generator, dtype=torch.float64))
    if kind == "integer":
        return base
    if kind == "near_border":
        sign = torch.randint(0, 2, shape, generator=generator, dtype=torch.float64) * 2 - 1
        return base + sign * 1e-3
    if kind == "off_integer":
        return base + 0.2 + 0.6 * torch.rand(shape, generator=generator, dtype=torch.float64)
    fractional = spread * torch.randn(shape, generator=generator, dtype=torch.float64)
    if kind == "fractional":
        return fractional
    if kind == "mixed":
        choice = torch.randint(0, 3, shape, generator=generator)
        near = deform_offsets(shape, "near_border", generator, spread)
        return torch.where(choice == 0, fractional, torch.where(choice == 1, base, near))
    raise ValueError(f"unknown offset kind {kind!r}")


def assert_max_rel_close(
    actual: torch.Tensor, expected: torch.Tensor, rel: float, name: str = "output", atol: float = 0.0
) -> None:
    """``max |a - e| <= rel * max |e| + atol``: for results with cancellation, e.g. gradients, where the
    error scales with the largest entry rather than with each entry."""
    if expected.numel() == 0:
        return
    err = (actual.double() - expected.double()).abs().max().item()
    bound = rel * expected.double().abs().max().item() + atol + 1e-30
    assert err <= bound, f"{name}: max error {err:.3g} > {bound:.3g} ({rel:g} of max |expected|)"


# --- channel attention ------------------------------------------------------------------------------


def channel_attention_in_dtype(
    q_d: torch.Tensor, q_g: torch.Tensor, v_d: torch.Tensor, v_g: torch.Tensor, temperature: torch.Tensor,
    normalize: bool = True, scale: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """``(a_d, a_g)`` of ``[B, heads, C, N]`` inputs computed the official model's way, in the inputs' own
    dtype (no upcast): the low-precision baseline of the tests and the baseline of the benchmark."""
    if normalize:
        q_d = torch.nn.functional.normalize(q_d, dim=-1)
        q_g = torch.nn.functional.normalize(q_g, dim=-1)
    logits = (q_d @ q_g.transpose(-2, -1)) * (temperature.to(q_d.dtype).view(1, -1, 1, 1) * scale)
    attn = torch.softmax(logits, dim=-1)
    return attn @ v_d, attn @ v_g
