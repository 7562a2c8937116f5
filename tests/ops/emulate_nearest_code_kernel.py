"""CPU emulation of csrc/cuda/nearest_code_kernel.cu, checked against the reference.

The CUDA kernel cannot run without a GPU, so this script replays its algorithm step by step on CPU
tensors -- the same block / thread / tile indices, the same staging loop into (NaN-poisoned) shared
tiles, the same per-thread running minima and the same xor-shuffle reduction -- and compares the result
with ``vqcnir_ops.quantize.reference.nearest_code_ref``. It checks the index arithmetic, padding, strides,
tie and NaN rules of the design, not nvcc's code generation. Float32 products are accumulated with
separate multiply and add (the kernel uses fmaf), so distances agree to rounding, and indices exactly on
integer-valued data where every float32 operation is exact.

Usage: python tests/ops/emulate_nearest_code_kernel.py  (exits non-zero on a mismatch); also run by
tests/ops/test_nearest_code_cuda_emulation.py.
"""

from __future__ import annotations

import math
import sys

import torch

# Constants of nearest_code_kernel.cu.
ROWS, CODES, CHUNK, THREADS_X, THREADS_Y = 64, 64, 32, 16, 16
THREADS = THREADS_X * THREADS_Y
MICRO_ROWS, MICRO_CODES = ROWS // THREADS_Y, CODES // THREADS_X
STRIDE = ROWS + 1
INT_MAX = 2**31 - 1


def precedes(d: torch.Tensor, k: torch.Tensor, best_d: torch.Tensor, best_k: torch.Tensor) -> torch.Tensor:
    """Vectorised `precedes` of the kernel: does candidate (d, k) replace (best_d, best_k)?"""
    d_nan, best_nan = torch.isnan(d), torch.isnan(best_d)
    numbers = (d < best_d) | ((d == best_d) & (k < best_k))
    return torch.where(d_nan | best_nan, d_nan & (~best_nan | (k < best_k)), numbers)


def emulate(
    z_flat: torch.Tensor,
    n_rows: int,
    dim: int,
    stride_n: int,
    stride_d: int,
    mu: torch.Tensor,
    codes: torch.Tensor,
    code_sqnorm: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the kernel's algorithm. z_flat: 1-D float32 storage already converted from z's dtype."""
    n_codes = codes.shape[0]
    codes_flat = codes.reshape(-1)
    out_index = torch.full((n_rows,), -7, dtype=torch.int64)  # poisoned: every row must be written
    out_dist = torch.full((n_rows,), -7.0)
    tid = torch.arange(THREADS)
    tx, ty, lane, warp = tid % THREADS_X, tid // THREADS_X, tid % 32, tid // 32
    micro_i = torch.arange(MICRO_ROWS)
    micro_j = torch.arange(MICRO_CODES)
    n_blocks = (n_rows + ROWS - 1) // ROWS
    for block in range(n_blocks):
        row0 = block * ROWS
        # Step 1: warp w sums rows w, w + 8, ...; lane l features l, l + 32, ...; butterfly over lanes.
        z_sqnorm = torch.full((ROWS,), float("nan"))
        for r in range(ROWS):
            row = row0 + r
            s = torch.zeros(32)
            if row < n_rows:
                for f in range(0, dim, 32):
                    lanes = torch.arange(32)
                    feat = f + lanes
                    ok = feat < dim
                    v = torch.zeros(32)
                    v[ok] = z_flat[row * stride_n + feat[ok] * stride_d] - mu[feat[ok]]
                    s = s + v * v
            for offset in (16, 8, 4, 2, 1):
                s = s + s[torch.arange(32) ^ offset]
            z_sqnorm[r] = s[0]
        row_sqnorm = z_sqnorm[ty[:, None] + THREADS_Y * micro_i[None, :]]  # [THREADS, MICRO_ROWS]
        best_d = torch.full((THREADS, MICRO_ROWS), math.inf)
        best_k = torch.full((THREADS, MICRO_ROWS), INT_MAX, dtype=torch.int64)
        for k0 in range(0, n_codes, CODES):
            acc = torch.zeros(THREADS, MICRO_ROWS, MICRO_CODES)
            for d0 in range(0, dim, CHUNK):
                z_tile = torch.full((CHUNK, STRIDE), float("nan"))  # poison: unstaged cells would show
                c_tile = torch.full((CHUNK, STRIDE), float("nan"))
                for e0 in range(0, ROWS * CHUNK, THREADS):
                    e = e0 + tid
                    r, f = e // CHUNK, e % CHUNK
                    d = d0 + f
                    row, k = row0 + r, k0 + r
                    zv, cv = torch.zeros(THREADS), torch.zeros(THREADS)
                    zok = (d < dim) & (row < n_rows)
                    cok = (d < dim) & (k < n_codes)
                    zv[zok] = z_flat[row[zok] * stride_n + d[zok] * stride_d] - mu[d[zok]]
                    cv[cok] = codes_flat[k[cok] * dim + d[cok]]
                    z_tile[f, r] = zv
                    c_tile[f, r] = cv
                for f in range(CHUNK):
                    zr = z_tile[f, ty[:, None] + THREADS_Y * micro_i[None, :]]  # [THREADS, MICRO_ROWS]
                    cr = c_tile[f, tx[:, None] + THREADS_X * micro_j[None, :]]  # [THREADS, MICRO_CODES]
                    acc = acc + zr[:, :, None] * cr[:, None, :]
            for j in range(MICRO_CODES):
                k = k0 + tx + THREADS_X * j  # [THREADS]
                valid = k < n_codes
                k_sqnorm = torch.where(valid, code_sqnorm[k.clamp(max=n_codes - 1)], torch.tensor(0.0))
                for i in range(MICRO_ROWS):
                    dist = (row_sqnorm[:, i] + k_sqnorm) - 2.0 * acc[:, i, j]
                    dist = torch.where(dist < 0.0, torch.tensor(0.0), dist)
                    take = valid & precedes(dist, k, best_d[:, i], best_k[:, i])
                    best_d[:, i] = torch.where(take, dist, best_d[:, i])
                    best_k[:, i] = torch.where(take, k, best_k[:, i])
        # Step 3: xor-shuffles within each half-warp; all lanes exchange simultaneously.
        d, k = best_d.clone(), best_k.clone()
        for offset in (8, 4, 2, 1):
            partner = tid ^ offset
            assert torch.all(partner // 32 == warp), "shuffle left the warp"
            other_d, other_k = d[partner], k[partner]
            take = precedes(other_d, other_k, d, k)
            d, k = torch.where(take, other_d, d), torch.where(take, other_k, k)
        for i in range(MICRO_ROWS):
            row = row0 + ty + THREADS_Y * i
            write = (tx == 0) & (row < n_rows)
            out_index[row[write]] = k[write, i]
            out_dist[row[write]] = d[write, i]
    assert lane.max() == 31
    return out_index, out_dist


def run_case(z: torch.Tensor, codebook: torch.Tensor, name: str, exact: bool) -> bool:
    from vqcnir_ops.quantize.reference import center_codebook, nearest_code_ref

    mu, codes, code_sqnorm = center_codebook(codebook, torch.float32)
    # z as the kernel sees it: its storage (converted to float32 on load) read through its strides.
    storage = z.as_strided((z.untyped_storage().nbytes() // z.element_size(),), (1,), 0).float()
    z_flat = storage[z.storage_offset() :]
    index, dist = emulate(z_flat, z.shape[0], z.shape[1], z.stride(0), z.stride(1), mu, codes, code_sqnorm)
    ref_index, ref_dist = nearest_code_ref(z, codebook)
    ok = index.ge(0).all().item() and bool(torch.equal(torch.isnan(dist), torch.isnan(ref_dist)))
    if exact:
        ok = ok and torch.equal(index, ref_index) and torch.equal(dist.nan_to_num(-1), ref_dist.nan_to_num(-1))
    else:
        # Near-ties may pick another code: compare the chosen code's distance, recomputed from the reference.
        finite = ~torch.isnan(ref_dist)
        scale = (z.float() - mu).pow(2).sum(1) + code_sqnorm.max()
        ok = ok and bool(((dist - ref_dist).abs()[finite] <= 1e-5 * scale[finite] + 1e-6).all())
        ok = ok and bool(torch.equal(index[~finite], ref_index[~finite]))
    print(
        f"{'ok  ' if ok else 'FAIL'} {name}: N={z.shape[0]} D={z.shape[1]} K={codebook.shape[0]} {z.dtype}"
        f" strides={tuple(z.stride())} index mismatches={(index != ref_index).sum().item()}"
    )
    return ok


def _zero_mean(book: torch.Tensor) -> torch.Tensor:
    """Replace the last code so every column sums to 0: the mean is exactly 0 and centring exact."""
    book = book.clone()
    book[-1] = -book[:-1].sum(0)
    return book


def main() -> int:
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
    gen = torch.Generator().manual_seed(0)
    results = []
    # Random data: every edge of the 64-row, 64-code and 32-feature tiles.
    for n, d, k in [(1, 1, 1), (63, 31, 3), (64, 32, 64), (65, 33, 65), (130, 70, 200), (7, 100, 129)]:
        z = torch.randn(n, d, generator=gen)
        book = torch.randn(k, d, generator=gen) * 1.5 + 3.0
        results.append(run_case(z, book, "random", exact=False))
    # Strided z: transposed, every other row / column, and a storage offset; low-precision dtypes.
    base = torch.randn(90, 2 * 37, generator=gen)
    book = torch.randn(70, 37, generator=gen)
    results.append(run_case(base[5:, ::2], book, "strided", exact=False))
    results.append(run_case(torch.randn(37, 77, generator=gen).t(), book, "transposed", exact=False))
    results.append(run_case(base.half()[5:, ::2], book, "float16", exact=False))
    results.append(run_case(base.bfloat16()[5:, ::2], book, "bfloat16", exact=False))
    # Integer-valued data: every float32 operation is exact, so indices must match exactly, and the many
    # duplicate codes (values in {-2..2}, small D) make exact ties that must go to the smallest index.
    for n, d, k in [(100, 3, 150), (66, 2, 70)]:
        z = torch.randint(-2, 3, (n, d), generator=gen).float()
        book = torch.randint(-2, 3, (k, d), generator=gen).float()
        results.append(run_case(z, _zero_mean(book), "ties", exact=True))
    # NaN: in some z rows (-> index 0, NaN), and in codes (every row -> first NaN code, NaN).
    z = torch.randint(-2, 3, (80, 5), generator=gen).float()
    book = _zero_mean(torch.randint(-2, 3, (100, 5), generator=gen).float())
    z_nan = z.clone()
    z_nan[[0, 17, 64, 79], 2] = float("nan")
    results.append(run_case(z_nan, book, "nan rows", exact=True))
    # (The codebook mean would spread one NaN code to every code, so plant NaN in the centred codes.)
    from vqcnir_ops.quantize.reference import center_codebook

    mu, codes, code_sqnorm = center_codebook(book, torch.float32)
    codes[[70, 90], 1] = float("nan")
    code_sqnorm = (codes * codes).sum(1)
    index, dist = emulate(z.reshape(-1), 80, 5, 5, 1, mu, codes, code_sqnorm)
    ok = bool((index == 70).all() and torch.isnan(dist).all())
    print(f"{'ok  ' if ok else 'FAIL'} nan codes: every row picks code 70 with NaN distance")
    results.append(ok)
    # inf: a row whose every distance is inf picks index 0.
    z_inf = z.clone()
    z_inf[3] = 1e30
    results.append(run_case(z_inf, book, "inf rows", exact=True))
    print("all passed" if all(results) else f"{results.count(False)} FAILED")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
