"""ONNX export of a VQCNIR or VQGAN model: one file that restores images of any size in ONNX Runtime.

``export_onnx(model, path)`` writes a graph with the input ``image`` ``[batch, 3, height, width]`` (float32
in [0, 1], every size dynamic) and the output ``restored`` of the same shape: ``model.restore(image,
tiling="whole")``, not clamped. The authors' test-time padding (``vqcnir.inference.pad_official``: flipped
copies up to the next multiple of 64 strictly above each side) and the crop back are inside the graph
(``padding="official"``, the default); with ``padding="none"`` the graph is the bare network and the caller
pads to multiples of 8 and crops.

The ops of ``vqcnir_ops`` export through their registered ONNX forms (``vqcnir_ops.to_onnx``): the deformable
convolution as ``DeformConv``, so the opset is at least 19. The exporter is ``torch.onnx.export(...,
dynamo=True)``, which needs the ``export`` extra (onnx, onnxscript; onnxruntime to run the file).
"""

from __future__ import annotations

import importlib.util
from typing import NamedTuple

import torch
from torch import nn

from vqcnir.vqgan import VQGAN
from vqcnir_ops.to_onnx import MIN_OPSET

DEFAULT_OPSET = 20  # torch.onnx.export's default in torch 2.13; ONNX Runtime 1.17 and later run it
PADDINGS = ("official", "none")
OFFICIAL_MULTIPLE = 64
INPUT_NAME, OUTPUT_NAME = "image", "restored"
# The traced example: small (tracing is symbolic) but above the sizes torch.export specialises (0 and 1).
EXAMPLE_SHAPE = (2, 3, 24, 40)


class ExportedFile(NamedTuple):
    """What :func:`export_onnx` wrote."""

    path: str
    opset: int
    padding: str
    model: str  # "VQCNIR" or "VQGAN"


def official_indices(size: torch.SymInt | int, device: torch.device) -> torch.Tensor:
    """Rows (or columns) of ``pad_official``'s result as indices into the original ``size``: the copies
    ``x, flip(x), x, ...`` repeat with period ``2 * size``, cut at the next multiple of 64 above ``size``."""
    target = (size // OFFICIAL_MULTIPLE + 1) * OFFICIAL_MULTIPLE
    # The period as a 0-d tensor: the exporter's remainder by a symbolic Python int fails (torch 2.13).
    period = torch.full((), 2 * size, dtype=torch.int64, device=device)
    position = torch.arange(target, device=device) % period
    return torch.where(position < size, position, 2 * size - 1 - position)


class OnnxRestorer(nn.Module):
    """The exported graph: ``image [B, 3, H, W]`` -> restored ``[B, 3, H, W]`` (see the module doc)."""

    def __init__(self, model: VQGAN, padding: str = "official") -> None:
        super().__init__()
        self.model, self.padding = model, padding

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if self.padding == "none":
            return self.model(image).image
        height, width = image.shape[-2], image.shape[-1]
        rows, cols = official_indices(height, image.device), official_indices(width, image.device)
        padded = image.index_select(2, rows).index_select(3, cols)
        # Cropped by gathers, not slices: a slice's bounds would ask torch.export to prove
        # height <= 64 * (height // 64 + 1), which it cannot.
        out = self.model(padded).image
        return out.index_select(2, torch.arange(height, device=out.device)).index_select(
            3, torch.arange(width, device=out.device)
        )


def _check_exportable(model: object, padding: str, opset: int) -> None:
    if not isinstance(model, VQGAN):
        raise TypeError(f"argument 'model' must be a vqcnir VQCNIR or VQGAN, got {type(model).__name__}")
    if padding not in PADDINGS:
        raise ValueError(f"argument 'padding' must be one of {PADDINGS}, got {padding!r}")
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < MIN_OPSET:
        raise ValueError(f"argument 'opset' must be an int >= {MIN_OPSET} (ONNX's DeformConv), got {opset!r}")
    dtypes = {p.dtype for p in model.parameters()}
    if dtypes != {torch.float32}:
        raise ValueError(
            f"the model's parameters are {sorted(str(d) for d in dtypes)}: export a float32 model "
            "(model.float()); ONNX Runtime's CPU DeformConv runs float32"
        )
    missing = [name for name in ("onnx", "onnxscript") if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(f"ONNX export needs {' and '.join(missing)}: pip install 'vqcnir[export]'")


def export_onnx(model: VQGAN, path: str, *, opset: int = DEFAULT_OPSET, padding: str = "official") -> ExportedFile:
    """Write ``model`` (a :class:`vqcnir.VQCNIR` or :class:`vqcnir.VQGAN`, float32, any device) to ``path`` as
    ONNX with dynamic batch, height and width (module doc). The model is exported in eval mode and left as
    it was. Raises TypeError / ValueError / ImportError for what cannot export, naming it.

    Example:
        >>> export_onnx(VQCNIR(VQCNIRConfig.tiny()), "vqcnir_tiny.onnx").opset  # doctest: +SKIP
        20
    """
    _check_exportable(model, padding, opset)
    device = next(model.parameters()).device
    example = torch.rand(EXAMPLE_SHAPE, device=device)
    if padding == "none":
        example = example[..., :16, :32]  # the bare network takes multiples of 8
    dims = {0: torch.export.Dim("batch"), 2: torch.export.Dim("height"), 3: torch.export.Dim("width")}
    if padding == "none":
        dims = {0: dims[0], 2: 8 * torch.export.Dim("height_8"), 3: 8 * torch.export.Dim("width_8")}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            program = torch.onnx.export(
                OnnxRestorer(model, padding), (example,), dynamo=True, opset_version=opset,
                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], dynamic_shapes=({**dims},),
                external_data=False, verbose=False,
            )  # fmt: skip
    finally:
        model.train(was_training)
    if program is None:
        raise RuntimeError(f"torch.onnx.export returned nothing for {type(model).__name__}")
    program.save(path)
    return ExportedFile(path, opset, padding, type(model).__name__)
