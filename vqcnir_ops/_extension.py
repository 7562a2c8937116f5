"""Loads the compiled extension ``vqcnir_ops._C`` on first use and says clearly why it is missing.

Importing ``vqcnir_ops`` never requires the extension: the reference and Triton backends work
without it. The C++ kernels register themselves under ``torch.ops.vqcnir_C`` when ``_C`` loads.
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType

_HOW_TO_BUILD = (
    "reinstall with a C++ compiler present, e.g. `VQCNIR_BUILD_EXT=1 pip install --no-build-isolation -e .` "
    "(VQCNIR_BUILD_EXT=1 makes a failed build fail the install and shows the compiler error)"
)


@functools.cache
def _load() -> tuple[ModuleType | None, str | None]:
    import torch  # noqa: F401  (libtorch must be loaded before the extension's symbols resolve)

    try:
        module = importlib.import_module("vqcnir_ops._C")
    except ImportError as error:
        text = str(error)
        if "No module named" in text:
            return None, f"vqcnir_ops._C was not built (build skipped or failed at install time); {_HOW_TO_BUILD}"
        return (
            None,
            f"vqcnir_ops._C failed to load ({text}); it may have been built against another torch; {_HOW_TO_BUILD}",
        )
    return module, None


def missing_reason() -> str | None:
    """None when the extension is loaded, else a sentence saying why it is not."""
    return _load()[1]


def has_cuda_kernels() -> bool:
    module = _load()[0]
    return bool(module is not None and module.has_cuda())


def require() -> ModuleType:
    """The loaded extension; raises with the reason if it is missing."""
    module, reason = _load()
    if module is None:
        raise RuntimeError(reason)
    return module
