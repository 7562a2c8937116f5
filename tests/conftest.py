"""Test setup: Triton runs in interpreter mode on machines without a GPU, and the hypothesis profiles.

TRITON_INTERPRET must be set before vqcnir_ops launches (and so decorates) its first Triton kernel;
conftest runs before any test module imports vqcnir_ops' kernels, so setting it here is enough.

Hypothesis profiles (``HYPOTHESIS_PROFILE``): ``ci`` (the default, what CI and scripts/test.sh run) draws the
same examples on every run (derandomized, no example database): a fresh clone passes or fails the same way
every time. ``dev`` (60 examples) and ``thorough`` (500) search randomly, with the example database, for a
developer hunting bugs on purpose: ``HYPOTHESIS_PROFILE=thorough .venv/bin/python -m pytest tests/ops``.
"""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# The conformance suite's property test is one method run on a fresh, stateless instance per op and backend.
_SUPPRESSED = [HealthCheck.too_slow, HealthCheck.differing_executors]
settings.register_profile(
    "ci",
    max_examples=25,
    deadline=None,
    print_blob=True,
    derandomize=True,
    database=None,
    suppress_health_check=_SUPPRESSED,
)
settings.register_profile("dev", max_examples=60, deadline=None, print_blob=True, suppress_health_check=_SUPPRESSED)
settings.register_profile(
    "thorough", max_examples=500, deadline=None, print_blob=True, suppress_health_check=_SUPPRESSED
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_report_header(config: pytest.Config) -> list[str]:
    from vqcnir_ops import availability

    lines = [
        f"vqcnir_ops backends: {name}: {'available' if why is None else why}" for name, why in availability().items()
    ]
    return lines + [
        f"TRITON_INTERPRET={os.environ.get('TRITON_INTERPRET', '0')}",
        f"hypothesis profile: {settings.get_current_profile_name()}",
    ]
