"""PyTorch's own formats: TorchScript (torch.jit.trace) and pt2 (torch.export).

pt2 keeps the batch dynamic (the example batch is 2: torch.export specialises a size-1 dimension).
torch.export unrolls recurrent layers over time, which fixes the sequence length: the exporter
then tries again with only the batch dynamic and reports the length it fixed.

Reading either back can run code. torch.export.load unpickles whatever an archive marks
`use_pickle` (and sample inputs that refuse weights_only), and hands symbolic shape expressions to
sympy, which evaluates them: a .pt2 is inspected first and loaded only when none of that can happen.
TorchScript is code by design: loading one that zoo did not just write warns so.
"""
from __future__ import annotations

import io
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from zoo.errors import ExportError
from zoo.exporting import STAGING_PREFIX, ExportRequest, unreadable
from zoo.fsio import loads_json
from zoo.exporters.onnx_format import quiet


class CodeWarning(UserWarning):
    """A file that holds code is being loaded (TorchScript)."""


def export_torchscript(request: ExportRequest) -> dict[str, Any]:
    """Trace the model with the example and save it; the parity check proves other shapes work."""
    with quiet(), torch.no_grad():
        traced = torch.jit.trace(request.model, request.example, check_trace=False)
        torch.jit.save(traced, str(request.path))
    return {"method": "torch.jit.trace"}


def load_torchscript(path: Path) -> Any:
    """Read a TorchScript file back; one that is not zoo's own fresh export is loaded with a warning."""
    if not Path(path).parent.name.startswith(STAGING_PREFIX):  # its sidecar would prove nothing: one can forge both
        warnings.warn(
            f"{path} is TorchScript, which is code: loading it runs what it holds; load only files you trust",
            CodeWarning,
            stacklevel=2,
        )
    with quiet():
        return torch.jit.load(str(path), map_location="cpu")


def export_pt2(request: ExportRequest) -> dict[str, Any]:
    """torch.export the model with dynamic batch and sequence length (when it allows), and save it."""
    dims = {axis: torch.export.Dim(name, min=1) for axis, name in request.input_dims.items()}
    notes: dict[str, Any] = {}
    try:
        program = _export(request, dims)
    except Exception as exc:
        seq_axes = [axis for axis, name in request.input_dims.items() if name == "seq"]
        if not seq_axes:
            raise
        for axis in seq_axes:
            del dims[axis]
        program = _export(request, dims)
        notes["fixed"] = {"seq": int(request.example.shape[seq_axes[0]])}
        notes["why_fixed"] = f"torch.export could not keep the sequence length dynamic: {str(exc).strip().splitlines()[0]}"
    torch.export.save(program, str(request.path))
    return notes


def _export(request: ExportRequest, dims: dict[int, Any]) -> Any:
    with quiet(), torch.no_grad():
        return torch.export.export(request.model, (request.example,), dynamic_shapes=(dims,) if dims else None)


def load_pt2(path: Path) -> Any:
    """Read a pt2 file back as a callable module, once `check_pt2` found nothing in it that runs code."""
    check_pt2(path)
    with quiet():
        return torch.export.load(str(path)).module()


# The members torch.export.save writes (under the archive's root folder); anything else is refused.
_PT2_MEMBERS = re.compile(
    r"(archive_format|archive_version|byteorder|\.data/version|\.data/serialization_id|models/[^/]+\.json"
    r"|data/weights/(weight_\d+|[^/]+_weights_config\.json)|data/constants/(tensor_\d+|[^/]+_constants_config\.json)"
    r"|data/sample_inputs/[^/]+\.pt|extra/[^/]+)"
)
# What a symbolic shape expression may hold: symbols (s0, u1, `Symbol('s77', positive=True)`),
# numbers, arithmetic, comparisons, and the functions torch's deserializer and sympy print: sympy
# evaluates the text as Python, so no other name, no attribute, no other string may appear.
_EXPR_TOKEN = re.compile(
    r"\s*(?:([A-Za-z_]\w*)|(\d+(?:\.\d+)?)|('[a-z]+\d+')|(\*\*|//|<=|>=|==|!=|[-+*/%(),<>=]))"
)
_SYMBOL = re.compile(r"^[a-z]+\d+$")
_EXPR_FUNCTIONS = frozenset({
    "FloorDiv", "ModularIndexing", "Where", "PythonMod", "Mod", "CleanDiv", "CeilToInt", "FloorToInt", "CeilDiv",
    "LShift", "RShift", "IsNonOverlappingAndDenseIndicator", "TruncToFloat", "TruncToInt", "RoundToInt",
    "RoundDecimal", "ToFloat", "FloatTrueDiv", "IntTrueDiv", "FloatPow", "PowByNatural", "Identity", "OpaqueUnaryFn",
    "BitwiseFn_bitwise_and", "BitwiseFn_bitwise_or", "BitwiseFn_bitwise_xor", "Max", "Min", "Abs", "Eq", "Ne", "Lt",
    "Le", "Gt", "Ge", "And", "Or", "Not", "True", "False", "oo", "floor", "ceiling", "sqrt", "int_oo",
    "Symbol", "Integer", "Float", "Rational", "Add", "Mul", "Pow", "StrictLessThan", "LessThan", "StrictGreaterThan",
    "GreaterThan", "Equality", "Unequality", "BooleanTrue", "BooleanFalse", "positive", "negative", "nonnegative",
    "integer", "real", "finite",
})


def check_pt2(path: Path) -> None:
    """Refuse a .pt2 archive that torch.export.load would unpickle or evaluate code from.

    Raises:
        ExportError: not a zip archive (damaged), an unknown member (AOTInductor libraries, legacy pickles),
            a weight or constant marked `use_pickle`, a custom or opaque object, sample inputs that
            need full unpickling, or a shape expression that is not plain arithmetic.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                _check_pt2_member(archive, name)
    except zipfile.BadZipFile as exc:  # damaged, or not pt2 at all: as any unreadable export
        raise unreadable(path, "pt2", exc) from None
    except _Unsafe as exc:
        raise _refused(path, str(exc)) from None


class _Unsafe(Exception):
    """What makes an archive unsafe to load."""


def _refused(path: Path, why: str) -> ExportError:
    return ExportError(
        f"{path} is not loaded: {why}; zoo reads .pt2 files only with pickle and code evaluation disabled",
        "export the model again with `zoo export --format pt2`",
    )


def _check_pt2_member(archive: zipfile.ZipFile, name: str) -> None:
    inner = name.split("/", 1)[1] if "/" in name else ""
    if name.endswith("/"):
        return
    if not _PT2_MEMBERS.fullmatch(inner):
        raise _Unsafe(f"it holds {name!r}, which is not part of a plain torch.export archive")
    if inner.endswith(("_weights_config.json", "_constants_config.json")):
        for fqn, meta in (_json(archive, name).get("config") or {}).items():
            if not isinstance(meta, dict) or meta.get("use_pickle") is not False:
                raise _Unsafe(f"{fqn!r} in {name} is stored as a pickle (use_pickle)")
            if not str(meta.get("path_name", "")).startswith(("weight_", "tensor_")):
                raise _Unsafe(f"{fqn!r} in {name} is a custom object ({meta.get('path_name')!r})")
    elif inner.endswith(".pt"):
        try:
            torch.load(io.BytesIO(archive.read(name)), map_location="cpu", weights_only=True)
        except Exception as exc:  # torch itself would retry with weights_only=False
            raise _Unsafe(f"{name} cannot be read with weights_only=True ({type(exc).__name__})") from None
    elif inner.startswith("models/"):
        for expression in _expressions(_json(archive, name)):
            _check_expression(expression, name)


def _json(archive: zipfile.ZipFile, name: str) -> dict[str, Any]:
    try:
        data = loads_json(archive.read(name))
    except ValueError:
        raise _Unsafe(f"{name} is not JSON") from None
    if not isinstance(data, dict):
        raise _Unsafe(f"{name} is not a JSON object")
    return data


def _expressions(node: Any) -> list[str]:
    """Every `expr_str` in a serialized program: the text torch hands to sympy."""
    if isinstance(node, dict):
        found = [node["expr_str"]] if "expr_str" in node else []
        return found + [e for key, value in node.items() if key != "expr_str" for e in _expressions(value)]
    if isinstance(node, list):
        return [e for value in node for e in _expressions(value)]
    return []


def _check_expression(expression: Any, name: str) -> None:
    text = expression if isinstance(expression, str) else ""
    position = 0
    while position < len(text.rstrip()):
        match = _EXPR_TOKEN.match(text, position)
        word = match.group(1) if match else None
        if match is None or (word is not None and not (_SYMBOL.match(word) or word in _EXPR_FUNCTIONS)):
            raise _Unsafe(f"{name} holds a shape expression that is not plain arithmetic: {str(expression)[:80]!r}")
        position = match.end()
    if not isinstance(expression, str):
        raise _Unsafe(f"{name} holds a shape expression that is not text")
