"""nearest_code: the conformance suite's case, and the lookup's own special values (offsets, ties, NaN, many codes)."""

from __future__ import annotations

import pytest
import torch

import vqcnir_ops
from tests.backends import backend_params, device_for
from tests.ops.conformance import BadCall, Case, Conformance, Example, Result, Tensors, st
from vqcnir_ops import _extension, nearest_code, nearest_code_ref
from vqcnir_ops._dtypes import compute_dtype
from vqcnir_ops._testing import TOLERANCES, check_nearest_code
from vqcnir_ops.quantize.reference import first_duplicates

BACKENDS = backend_params("nearest_code")
LOW_AND_FLOAT = [torch.float32, torch.float16, torch.bfloat16]


def _rows_and_codes(
    n: int, k: int, d: int, offset: float, spread: float, gen: torch.Generator, regimes: int = 3
) -> Tensors:
    """Rows near codes, near midpoints between codes, and far away: all three regimes of the argmin (or only the
    first, clear-cut one, where two layouts of one call must pick the same codes)."""
    codebook = offset + spread * torch.randn(k, d, generator=gen, dtype=torch.float64)
    pick = torch.randint(0, k, (n, 2), generator=gen)
    near = codebook[pick[:, 0]] + 0.1 * spread * torch.randn(n, d, generator=gen, dtype=torch.float64)
    middle = 0.5 * (codebook[pick[:, 0]] + codebook[pick[:, 1]])
    far = offset + 3 * spread * torch.randn(n, d, generator=gen, dtype=torch.float64)
    kind = torch.randint(0, regimes, (n, 1), generator=gen)
    return {"z": torch.where(kind == 0, near, torch.where(kind == 1, middle, far)), "codebook": codebook}


class NearestCodeCase(Case):
    op = "nearest_code"
    activations = ("z",)
    differentiable = ("z", "codebook")
    gpu_repeats = "outputs"  # the codebook gradient is an index_put with accumulate

    def call(self, tensors: Tensors, options: dict, backend: str | None) -> tuple[torch.Tensor, ...]:
        indices, dist = nearest_code(tensors["z"], tensors["codebook"], backend=backend)
        return dist, indices

    def reference(self, tensors: Tensors, options: dict) -> tuple[torch.Tensor, ...]:
        indices, dist = nearest_code_ref(tensors["z"], tensors["codebook"])
        return dist, indices

    def draw(self, data: st.DataObject, backend: str) -> Example:
        n, k, d = (
            data.draw(st.integers(lo, hi), label=label)
            for lo, hi, label in ((0, 140, "N"), (1, 150, "K"), (1, 70, "D"))
        )
        offset = data.draw(st.sampled_from([0.0, 3.0, 1000.0]), label="offset")
        spread = data.draw(st.sampled_from([1e-2, 1.0, 30.0]), label="spread")
        gen = torch.Generator().manual_seed(data.draw(st.integers(0, 2**31 - 1), label="seed"))
        return Example(
            _rows_and_codes(n, k, d, offset, spread, gen),
            dtype=data.draw(st.sampled_from(self.dtypes(backend)), label="dtype"),
            noncontiguous=frozenset({"z"} if data.draw(st.booleans(), label="non-contiguous z") else ()),
            seed=n + k,
        )

    def check(self, example: Example, got: Result, low: Result, exact: Result) -> None:
        """The lookup's contract (``check_nearest_code``), and the gradient of ``dist`` at the chosen codes.

        Near-ties may pick another code than the reference, so the exact gradient is taken at the op's own
        indices: ``d dist / d z = 2 (z - e)``, ``d dist / d e = -2 (z - e)`` summed over the rows that chose e.
        """
        rounded = example.rounded(self)
        z, codebook = rounded.tensors["z"], rounded.tensors["codebook"]
        dist, indices = got.outputs
        check_nearest_code(z, codebook, indices, dist, compute_dtype(example.dtype))
        if not got.grads:
            return
        z64, book64 = z.clone().requires_grad_(), codebook.clone().requires_grad_()
        weights = torch.randn(dist.shape, generator=torch.Generator().manual_seed(example.seed), dtype=torch.float64)
        weights = weights.to(dist.dtype).double()
        ((z64 - book64[indices]) ** 2).sum(1).mul(weights).sum().backward()
        scale = 1.0 + 2 * max(z.abs().max().item() if z.numel() else 0.0, codebook.abs().max().item())
        for name, expected in (("z", z64.grad), ("codebook", book64.grad)):
            rtol = TOLERANCES[got.grads[name].dtype]["rtol"]
            torch.testing.assert_close(
                got.grads[name].double(),
                expected,
                rtol=rtol,
                atol=rtol * scale,
                msg=lambda m, name=name: f"grad {name}: {m}",
            )

    def fixed_example(self) -> Example:
        return Example(_rows_and_codes(37, 23, 19, 0.0, 1.0, torch.Generator().manual_seed(0), regimes=1))

    def gradcheck_examples(self) -> list[Example]:
        gen = torch.Generator().manual_seed(3)
        z, codebook = (torch.randn(rows, 6, dtype=torch.float64, generator=gen) for rows in (11, 7))
        return [Example({"z": z, "codebook": codebook}, dtype=torch.float64)]

    def empty_example(self) -> Example:
        return Example(
            {"z": torch.randn(0, 5, dtype=torch.float64), "codebook": torch.randn(3, 5, dtype=torch.float64)}
        )

    def opcheck_calls(self, backend: str, device: str) -> list:
        z = torch.randn(37, 19, device=device, requires_grad=True)
        codebook = torch.randn(23, 19, device=device, requires_grad=True)
        indices = torch.randint(0, 23, (37,), device=device)
        return [
            (torch.ops.vqcnir.nearest_code_fwd.default, (z, codebook, backend)),
            (
                torch.ops.vqcnir.nearest_code_bwd.default,
                (torch.randn(37, device=device), z.detach(), codebook.detach(), indices),
            ),
        ]

    def bad_arguments(self) -> list[BadCall]:
        cases = [
            ("3-D z", torch.randn(4, 3, 2), torch.randn(5, 2), ValueError, "'z' must have 2 dimensions"),
            ("1-D codebook", torch.randn(4, 2), torch.randn(5), ValueError, "'codebook' must have 2 dimensions"),
            ("dims differ", torch.randn(4, 3), torch.randn(5, 2), ValueError, "'z' has rows of dim 3 but 'codebook'"),
            ("integer z", torch.randint(0, 5, (4, 2)), torch.randn(5, 2), TypeError, "'z' must be float"),
            ("integer codes", torch.randn(4, 2), torch.randint(0, 5, (5, 2)), TypeError, "'codebook' must be float"),
            ("no codes", torch.randn(4, 2), torch.randn(0, 2), ValueError, "'codebook' must hold at least one code"),
            ("two devices", torch.randn(4, 2), torch.randn(5, 2, device="meta"), ValueError, "same device"),
            ("list z", [[1.0, 2.0]], torch.randn(5, 2), TypeError, "'z' must be a torch.Tensor"),
        ]
        return [BadCall(i, lambda z=z, c=c: nearest_code(z, c), e, w) for i, z, c, e, w in cases]

    def nan_examples(self) -> dict[str, Example]:
        nan, inf = float("nan"), float("inf")
        return self.poisoned([("z", nan), ("codebook", nan), ("z", inf), ("z", -inf)], at=[(2, 7), (15, 3)])

    def gpu_examples(self) -> dict[str, Example]:
        """VQCNIR's lookup (1024 codes of dim 512), few codes of odd dim, many codes of dim 8: rows near codes."""
        sizes = ((1024, 1024, 512), (1000, 37, 37), (70, 16384, 8))
        return {f"N={n} K={k} D={d}": Example(_near_codes(n, k, d)) for n, k, d in sizes}


def _near_codes(n: int, k: int, d: int) -> Tensors:
    """Rows near codes (the regime of a trained quantizer), seeded by the sizes."""
    gen = torch.Generator().manual_seed(n + k + d)
    codebook = torch.randn(k, d, generator=gen, dtype=torch.float64)
    noise = 0.3 * torch.randn(n, d, generator=gen, dtype=torch.float64)
    return {"z": codebook[torch.randint(0, k, (n,), generator=gen)] + noise, "codebook": codebook}


class TestNearestCode(Conformance):
    case = NearestCodeCase()


# --- the lookup's own special values ---------------------------------------------------------------------


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
    # Exact copies of a code sit at different places of the codebook tiles, where a kernel may round their dot
    # products differently in the last bit: every backend maps the chosen copy to the first one.
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
    # A z equal to a duplicated code: distance 0 to all its copies, the first one wins.
    first = first_occurrence[order[50].item()]
    assert nearest_code(codebook[50:51].to(device), codebook.to(device), backend=backend)[0].item() == first


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
def test_one_code(backend):
    device = device_for(backend)
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


def test_parameters_of_any_dtype_activations_decide():
    # The dtype policy: z (the activation) decides the compute dtype; the codebook (a parameter) may differ.
    z, codebook = torch.randn(6, 4), torch.randn(5, 4, dtype=torch.float64)
    assert nearest_code(z, codebook)[1].dtype == torch.float32
    assert nearest_code(z.double(), codebook.half())[1].dtype == torch.float64
    assert nearest_code(z.bfloat16(), codebook.float())[1].dtype == torch.float32


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_float64_codebook_does_not_change_the_backend_or_the_result(backend):
    # Only z's dtype decides: a float64 codebook with float32 z runs on the float32-only backends too.
    gen = torch.Generator().manual_seed(3)
    z, codebook = torch.randn(40, 12, generator=gen), torch.randn(30, 12, generator=gen, dtype=torch.float64)
    device = device_for(backend)
    indices, dist = nearest_code(z.to(device), codebook.to(device), backend=backend)
    ref_indices, ref_dist = nearest_code_ref(z, codebook.float())
    assert dist.dtype == torch.float32
    torch.testing.assert_close(indices.cpu(), ref_indices, rtol=0, atol=0)
    torch.testing.assert_close(dist.cpu(), ref_dist)


def test_public_api_exports():
    assert vqcnir_ops.nearest_code is nearest_code


@pytest.mark.skipif(_extension.missing_reason() is not None, reason=str(_extension.missing_reason()))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16])
def test_cpp_first_copies_match_the_reference(dtype):
    # The C++ backend hashes rows instead of sorting them: same map as first_duplicates, bit pattern for bit
    # pattern (NaN rows are equal to their copies, -0.0 differs from 0.0), empty when every code differs.
    gen = torch.Generator().manual_seed(2)
    unique = torch.randn(6, 5, generator=gen, dtype=torch.float64)
    unique[1, 2], unique[2] = float("nan"), 0.0
    unique[3] = unique[2]
    unique[3, 4] = -0.0
    codebook = unique[torch.tensor([0, 1, 2, 3, 1, 4, 2, 5, 3, 1])].to(dtype)
    _extension.require()
    assert torch.equal(torch.ops.vqcnir_C.first_copies(codebook), first_duplicates(codebook))
    assert torch.ops.vqcnir_C.first_copies(unique.to(dtype)).numel() == 0 and first_duplicates(unique) is None
