"""The tiny model most model tests run: random weights, every branch awake (tests/recipes/checkpoints.py)."""

from __future__ import annotations

import pytest

from tests.recipes.checkpoints import awake
from vqcnir import VQCNIR, VQCNIRConfig


@pytest.fixture(scope="module")
def tiny() -> VQCNIR:
    return awake(VQCNIR(VQCNIRConfig.tiny()))
