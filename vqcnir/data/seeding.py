"""One numpy Generator per sample, derived from (seed, index, ...): the same keys give the same draws
in any process, worker or order, so datasets are reproducible with DataLoader workers and on resume."""

from __future__ import annotations

import numpy as np


def sample_rng(seed: int, *keys: int) -> np.random.Generator:
    """Generator for sample ``keys`` (e.g. index, epoch) under ``seed``.

    Example:
        >>> bool(sample_rng(0, 5).integers(1000) == sample_rng(0, 5).integers(1000))
        True
    """
    if seed < 0 or any(k < 0 for k in keys):
        raise ValueError(f"seed and keys must be non-negative integers, got seed={seed}, keys={keys}")
    return np.random.default_rng(np.random.SeedSequence([int(seed), *(int(k) for k in keys)]))
