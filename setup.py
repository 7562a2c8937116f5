"""Builds the optional extension ``vqcnir_ops._C`` (C++ CPU kernels, plus CUDA kernels when torch has CUDA).

Environment:
    VQCNIR_BUILD_EXT=auto|0|1   auto (default): build when torch and a C++ compiler are present, and
                                 install without the extension if the build fails; 0: never; 1: a
                                 failed build fails the install.
    VQCNIR_BUILD_CUDA=auto|0|1  auto (default): add the CUDA kernels when torch was built with CUDA
                                 (torch.version.cuda) and nvcc is found; 0: never; 1: required.
    VQCNIR_CUDA_ARCHS           e.g. "8.0;9.0" (default): passed to TORCH_CUDA_ARCH_LIST when unset.

Install without build isolation so the extension is built against the torch you already have:
    pip install --no-build-isolation -e .
"""

from __future__ import annotations

import glob
import os
import shutil
import sys

from setuptools import setup

ROOT = os.path.dirname(os.path.abspath(__file__))


def _mode(name: str) -> str:
    value = os.environ.get(name, "auto").strip().lower()
    if value not in ("auto", "0", "1"):
        sys.exit(f"setup.py: {name} must be auto, 0 or 1, got {value!r}")
    return value


def _say(message: str) -> None:
    print(f"vqcnir setup: {message}", file=sys.stderr)


def _sources(pattern: str) -> list[str]:
    return sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, pattern)))


def _extensions() -> tuple[list, dict]:
    build_ext_mode = _mode("VQCNIR_BUILD_EXT")
    if build_ext_mode == "0":
        _say("VQCNIR_BUILD_EXT=0: not building vqcnir_ops._C (reference and Triton backends only)")
        return [], {}
    try:
        import torch
        from torch.utils import cpp_extension
    except ImportError as error:
        if build_ext_mode == "1":
            raise
        _say(
            f"torch is not importable ({error}); skipping vqcnir_ops._C. Install torch first and use "
            "--no-build-isolation to build it."
        )
        return [], {}
    if shutil.which(os.environ.get("CXX", "c++")) is None:
        if build_ext_mode == "1":
            sys.exit("setup.py: VQCNIR_BUILD_EXT=1 but no C++ compiler was found")
        _say("no C++ compiler found; skipping vqcnir_ops._C")
        return [], {}

    cuda_mode = _mode("VQCNIR_BUILD_CUDA")
    with_cuda = False
    if cuda_mode != "0":
        has_cuda_torch = torch.version.cuda is not None
        has_nvcc = cpp_extension.CUDA_HOME is not None
        with_cuda = has_cuda_torch and has_nvcc
        if not with_cuda:
            why = "torch was built without CUDA" if not has_cuda_torch else "nvcc (CUDA_HOME) was not found"
            if cuda_mode == "1":
                sys.exit(f"setup.py: VQCNIR_BUILD_CUDA=1 but {why}")
            _say(f"building CPU kernels only: {why}")

    sources = ["csrc/vqcnir_ops.cpp"] + _sources("csrc/cpu/*.cpp")
    # The C++ standard is torch's choice. -fno-trapping-math: no kernel reads floating-point exception flags, and
    # without it GCC keeps a branch for every float compare-and-select, which stops the vectoriser (the
    # deformable convolution's sampling plan).
    cxx_flags = ["-O3", "-fopenmp", "-fno-trapping-math"]
    macros = []
    kwargs: dict = {}
    if with_cuda:
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", os.environ.get("VQCNIR_CUDA_ARCHS", "8.0;9.0"))
        sources += _sources("csrc/cuda/*.cpp") + _sources("csrc/cuda/*.cu")
        macros.append(("VQCNIR_WITH_CUDA", None))
        # No --use_fast_math: it flushes denormals and would change the float32 contract.
        kwargs["extra_compile_args"] = {"cxx": cxx_flags, "nvcc": ["-O3"]}
        make = cpp_extension.CUDAExtension
    else:
        kwargs["extra_compile_args"] = {"cxx": cxx_flags}
        make = cpp_extension.CppExtension
    extension = make(
        name="vqcnir_ops._C",
        sources=sources,
        include_dirs=[os.path.join(ROOT, "csrc", "include")],
        define_macros=macros,
        extra_link_args=["-fopenmp"],
        **kwargs,
    )

    class BuildExtension(cpp_extension.BuildExtension):
        """Turns a failed optional build into a warning: the package works without the extension."""

        def build_extension(self, ext) -> None:  # noqa: ANN001
            try:
                super().build_extension(ext)
            except Exception as error:  # compiler errors surface as several exception types
                if build_ext_mode == "1":
                    raise
                _say(
                    f"building {ext.name} failed ({error}); installing without it. "
                    "Set VQCNIR_BUILD_EXT=1 to make this an error and see the full log."
                )

    return [extension], {"build_ext": BuildExtension.with_options(use_ninja=shutil.which("ninja") is not None)}


ext_modules, cmdclass = _extensions()
setup(ext_modules=ext_modules, cmdclass=cmdclass)
