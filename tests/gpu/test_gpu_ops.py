"""The GPU comparison of every op of the conformance suite (tests/ops/conformance.py): each case found in
tests/ops, on each GPU backend, at VQCNIR's shapes, in float32/float16/bfloat16, forward and backward, against
float64, the same bits run to run. Collected here, not in tests/ops, so that the GPU check runs it without
hypothesis (scripts/gpu_check.py runs tests/gpu without the suite's conftest when hypothesis is missing)."""

from __future__ import annotations

import importlib
import pkgutil

import tests.ops
from tests.ops.conformance import Case, GPUConformance

for _module in pkgutil.iter_modules(tests.ops.__path__):
    if _module.name.startswith("test_"):
        importlib.import_module(f"tests.ops.{_module.name}")

for _case in Case.__subclasses__():
    _name = "TestGPU" + _case.__name__.removesuffix("Case")
    globals()[_name] = type(_name, (GPUConformance,), {"case": _case(), "__module__": __name__})
