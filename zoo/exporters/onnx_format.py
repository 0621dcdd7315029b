"""ONNX: written by torch's dynamo exporter, or by the legacy (TorchScript) one for recurrent models.

Why two engines (torch 2.14, seen in tests/test_export_onnx.py): the dynamo exporter goes through
torch.export, which unrolls nn.LSTM/GRU/RNN over time and so specialises the sequence length (the
graph rejects any other length) or labels the output's sequence dimension with the export-time
length. The legacy exporter keeps them as ONNX LSTM/GRU/RNN nodes with a dynamic length. Either
way the graph's input and output dimensions are then named from what the model was seen to do
(`batch`, `seq`), and the stale intermediate shapes are dropped, so onnxruntime checks real shapes.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch
from torch import nn

from zoo.exporting import ExportRequest

LEGACY_OPSET = 17
# Above this the weights go to `<file>.data` next to the graph: a protobuf holds at most 2 GiB.
EXTERNAL_DATA_BYTES = 1_800_000_000


def export_onnx(request: ExportRequest) -> dict[str, Any]:
    """Write `request.path` as ONNX; returns the engine and opset for the sidecar."""
    import onnx

    engine = "legacy" if is_recurrent(request.model) else "dynamo"
    external = sum(p.numel() * p.element_size() for p in request.model.parameters()) > EXTERNAL_DATA_BYTES
    with quiet():
        if engine == "dynamo":
            _export_dynamo(request, external)
        else:
            _export_legacy(request)
    opset = name_dims(request.path, request.input_dims, request.output_dims)
    if request.opset is not None and opset != request.opset:
        # The dynamo exporter writes opset 18 or later; a failed down-conversion keeps its own silently.
        from zoo.errors import ExportError

        raise ExportError(
            f"the {engine} ONNX exporter cannot write opset {request.opset} for this model (it wrote opset {opset})",
            f"nothing was written; use --opset {opset}, or leave --opset out",
        )
    data = sorted(p.name for p in request.path.parent.iterdir() if p != request.path)
    return {"engine": engine, "opset": opset, "onnx": onnx.__version__, "data_files": data}


def is_recurrent(model: nn.Module) -> bool:
    """Whether the model holds an nn.RNN, nn.LSTM or nn.GRU."""
    return any(isinstance(m, nn.RNNBase) for m in model.modules())


def _export_dynamo(request: ExportRequest, external: bool) -> None:
    bounds = {name: {"min": low, "max": high} for name, (low, high) in request.input_ranges.items()}
    dims = {axis: torch.export.Dim(name, **bounds.get(name, {"min": 1})) for axis, name in request.input_dims.items()}
    torch.onnx.export(
        request.model,
        (request.example,),
        str(request.path),
        dynamo=True,
        dynamic_shapes=(dims,) if dims else None,
        input_names=[request.input_name],
        output_names=list(request.output_names),
        opset_version=request.opset,
        external_data=external,
        verbose=False,
    )


def _export_legacy(request: ExportRequest) -> None:
    axes = {request.input_name: dict(request.input_dims)} if request.input_dims else {}
    axes.update({name: dict(dims) for name, dims in zip(request.output_names, request.output_dims) if dims})
    torch.onnx.export(
        request.model,
        (request.example,),
        str(request.path),
        dynamo=False,
        input_names=[request.input_name],
        output_names=list(request.output_names),
        dynamic_axes=axes or None,
        opset_version=request.opset or LEGACY_OPSET,
    )


def name_dims(path: Path, input_dims: Mapping[int, str], output_dims: tuple[Mapping[int, str], ...]) -> int:
    """Name the graph's dynamic dimensions, drop intermediate shapes, check the model; returns the opset."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)  # external tensors keep pointing at the data file
    for value, dims in zip([model.graph.input[0], *model.graph.output], [input_dims, *output_dims]):
        shape = value.type.tensor_type.shape
        for axis, name in dims.items():
            shape.dim[axis].dim_param = name
    del model.graph.value_info[:]
    onnx.save(model, str(path))
    onnx.checker.check_model(str(path))
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """The exporters' deprecation warnings, log lines and progress stay off stdout (which carries data).

    The legacy exporter prints its graph from C++ when it fails, so file descriptor 1 is pointed at
    stderr too, not only `sys.stdout`. The opset converter logs tracebacks for conversions it cannot
    do; the opset check after the export reports those in one line instead.
    """
    loggers = [logging.getLogger(name) for name in ("onnxscript", "torch.onnx", "torch.export")]
    levels = [logger.level for logger in loggers]
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        for logger in loggers:
            logger.setLevel(logging.CRITICAL)
        with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
            warnings.simplefilter("ignore")
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def load_onnx(path: Path) -> Any:
    """Read an exported file back for the parity check."""
    from zoo.predict.onnx_runtime import OnnxRunner

    return OnnxRunner(path)
