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

from zoo.export import ExportRequest

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
    dims = {axis: torch.export.Dim(name, min=1) for axis, name in request.input_dims.items()}
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


class OnnxRunner:
    """An onnxruntime CPU session that takes and returns torch tensors."""

    def __init__(self, path: str | Path, threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = self.session.run(None, {self.input_name: x.detach().cpu().numpy()})
        return [torch.from_numpy(o) for o in outputs]


def load_onnx(path: Path) -> OnnxRunner:
    """Read an exported file back for the parity check."""
    return OnnxRunner(path)


class OnnxModel:
    """An exported ONNX file that stands in for a zoo model: `model(x)`, `.eval()`, `.zoo` (labels,
    preprocessing) and, for text models, `.tokenizer`."""

    def __init__(self, path: Path, info: Any, tokenizer: Any = None, threads: int | None = None):
        self.path = path
        self.zoo = info
        self.tokenizer = tokenizer
        self.runner = OnnxRunner(path, threads)

    def eval(self) -> OnnxModel:
        return self

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        rank = len(self.runner.session.get_inputs()[0].shape)
        if x.dim() > rank:  # a model that flattens its picture itself (an MLP) was exported on the features
            x = x.flatten(rank - 1)
        pad = getattr(self.tokenizer, "pad_id", None)
        if pad is None or not bool((x == pad).any()):
            return self.runner(x)[0]
        # The graph computes unpadded sequences (eager models pack padded ones): one text at a time.
        return torch.cat([self.runner(_unpadded(row, pad)[None])[0] for row in x])


def _unpadded(ids: torch.Tensor, pad: int) -> torch.Tensor:
    """A row of token ids without the padding on either end."""
    kept = (ids != pad).nonzero().flatten()
    return ids[int(kept[0]) : int(kept[-1]) + 1] if len(kept) else ids[:1]


def load_onnx_model(name: str | Path, threads: int | None = None) -> OnnxModel:
    """The ONNX export of a model directory (`DIR/model.onnx`, preprocessing and labels from config.json),
    or an `.onnx` file with the sidecar `zoo export` wrote next to it.

    Raises:
        ArgumentError: no such file, no exported model.onnx in the directory, or no sidecar.
    """
    from zoo.errors import ArgumentError
    from zoo.export import check_files, read_sidecar, unreadable
    from zoo.loading import model_info
    from zoo.modeldir import is_model_dir, read_config

    path = Path(name)
    if is_model_dir(path):
        config, file = read_config(path), path / "model.onnx"
        if not file.is_file():
            raise ArgumentError(f"{path} holds no model.onnx", f"run `zoo export {path}` first")
    elif path.is_file():
        file, sidecar = path, path.with_name(path.name + ".json")
        if not sidecar.is_file():
            raise ArgumentError(f"{path} has no sidecar {sidecar.name} (labels, preprocessing)",
                                "export it with `zoo export`, or pass the model directory")
        config = read_sidecar(sidecar)
    else:
        raise ArgumentError(f"--runtime onnx runs an exported file, and {name} is neither a model directory nor a file",
                            "pass a model directory holding model.onnx, or an .onnx file")
    info = model_info(
        str(config.get("name") or config.get("model") or path.name),
        str(config.get("architecture")),
        labels=config.get("labels"),
        preprocess=dict(config.get("preprocess") or {}),
        source=str(file),
    )
    tokenizer = _tokenizer(path, config)
    try:
        model = OnnxModel(file, info, tokenizer, threads)
    except Exception as exc:  # onnxruntime's own error types: a damaged file, or not ONNX at all
        raise unreadable(file, "onnx", exc) from exc
    sidecar = file.with_name(file.name + ".json")
    if not sidecar.is_file():
        raise ArgumentError(f"{file} has no sidecar {sidecar.name}: its export was interrupted", f"run `zoo export {path}` again")
    check_files(file, sidecar, read_sidecar(sidecar))
    return model


def _tokenizer(path: Path, config: Mapping[str, Any]) -> Any:
    """A model directory's vocabulary, for a text classifier (None for other models)."""
    from zoo.errors import ArgumentError

    from zoo.modeldir import vocab_reference

    vocab = vocab_reference(path, config) if path.is_dir() else None  # a sidecar never names a vocabulary
    if not vocab:
        return None
    from zoo.data.tokenizers import load_tokenizer

    tokenizer = load_tokenizer(vocab)
    if config.get("num_classes") in (None, len(tokenizer)):
        raise ArgumentError(
            f"{path} is a language model: --runtime onnx runs classifiers",
            "continue texts with the eager model: drop --runtime onnx",
        )
    return tokenizer
