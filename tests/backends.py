"""Which backends the tests exercise on this machine, and the device each runs on."""

from __future__ import annotations

import os

import pytest
import torch

from vqcnir_ops._backend import backend_unavailable_reason, registered_ops

GPU = torch.cuda.is_available()
# Backends that must be available (comma-separated): CI sets cpp,triton so a broken build fails loudly
# instead of skipping every C++ test.
REQUIRED = {name.strip() for name in os.environ.get("VQCNIR_REQUIRE_BACKENDS", "").split(",") if name.strip()}


def device_for(backend: str) -> str:
    if backend in ("cuda",):
        return "cuda"
    if backend == "triton":
        return "cuda" if GPU else "cpu"
    if backend == "cpp":
        return "cpu"
    return "cuda" if GPU else "cpu"


def backend_params(op: str) -> list:
    """One pytest param per backend the op implements, skipped (with the reason) where unavailable."""
    params = []
    for backend in registered_ops()[op].backends:
        reason = backend_unavailable_reason(backend, device_for(backend))
        if reason and backend in REQUIRED:
            raise RuntimeError(f"VQCNIR_REQUIRE_BACKENDS names {backend!r}, but it is unavailable: {reason}")
        marks = [pytest.mark.skip(reason=f"{backend}: {reason}")] if reason else []
        params.append(pytest.param(backend, id=backend, marks=marks))
    return params
