"""Exporting a module with torch.onnx.export(dynamo=True), checking the file, running it in ONNX Runtime."""

from __future__ import annotations

import collections
from collections.abc import Callable, Sequence

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from vqcnir.export import DEFAULT_OPSET

STANDARD_DOMAINS = ("", "ai.onnx")


class Calls(nn.Module):
    """Several op calls in one graph (one export for many cases): ``calls[i](*inputs_i, backend=...)``."""

    def __init__(self, calls: Sequence[tuple[Callable[..., object], int]], backend: str | None = None) -> None:
        super().__init__()
        self.calls, self.backend = list(calls), backend

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs, start = [], 0
        for call, count in self.calls:
            result = call(*tensors[start : start + count], backend=self.backend)
            outputs.extend(result if isinstance(result, tuple) else (result,))
            start += count
        return tuple(outputs)


def export(module: nn.Module, inputs: Sequence[torch.Tensor]) -> onnx.ModelProto:
    """``module`` traced at ``inputs`` (static shapes), checked by ``onnx.checker`` and for standard ops only."""
    with torch.no_grad():
        program = torch.onnx.export(
            module.eval(), tuple(inputs), dynamo=True, opset_version=DEFAULT_OPSET, verbose=False
        )
    model = program.model_proto
    check_standard(model)
    return model


def check_standard(model: onnx.ModelProto) -> collections.Counter:
    """``onnx.checker`` (full, with shape inference) passes and every node is a standard ONNX operator;
    returns the operator counts."""
    onnx.checker.check_model(model, full_check=True)
    domains = {node.domain for node in model.graph.node} | {op.domain for op in model.opset_import}
    assert domains <= set(STANDARD_DOMAINS), f"custom domains in the graph: {domains - set(STANDARD_DOMAINS)}"
    assert not model.functions, f"custom functions in the graph: {[f.name for f in model.functions]}"
    return collections.Counter(node.op_type for node in model.graph.node)


def session(model: onnx.ModelProto | str) -> ort.InferenceSession:
    """A CPU session, one thread (the tests run beside others on 2 cores)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    source = model if isinstance(model, str) else model.SerializeToString()
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def run(sess: ort.InferenceSession, inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """The session's outputs for ``inputs``, given in the order of its inputs."""
    feeds = {arg.name: np.ascontiguousarray(t.numpy()) for arg, t in zip(sess.get_inputs(), inputs, strict=True)}
    return [torch.from_numpy(out) for out in sess.run(None, feeds)]
