"""Test setup: Triton runs in interpreter mode on machines without a GPU, and hypothesis profiles.

TRITON_INTERPRET must be set before vqcnir_ops launches (and so decorates) its first Triton kernel;
conftest runs before any test module imports vqcnir_ops' kernels, so setting it here is enough.
"""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

settings.register_profile(
    "ci", max_examples=25, deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=60, deadline=None, print_blob=True)
settings.register_profile("thorough", max_examples=500, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_report_header(config: pytest.Config) -> list[str]:
    from vqcnir_ops import availability

    lines = [
        f"vqcnir_ops backends: {name}: {'available' if why is None else why}" for name, why in availability().items()
    ]
    return lines + [f"TRITON_INTERPRET={os.environ.get('TRITON_INTERPRET', '0')}"]
