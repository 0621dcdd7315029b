"""Export: a model out of the zoo into a deployable format, proven to compute the same function.

An `Exporter` is metadata plus two `"module:function"` strings that plugins register through
`register_exporters`: `export(request: ExportRequest) -> dict` writes `request.path` and returns
notes for the sidecar, and `load(path) -> callable` reads the result back for the parity check.
`export()` writes into a temporary folder next to the target, checks parity there, writes the
JSON sidecar (which names the sha256 of every file it describes), and only then moves the files
into place, the sidecar last: a killed or failed export leaves no file, and never a sidecar beside
another export's file (`zoo cache clean` removes the staging folder a SIGKILL leaves).

No torch at import: `zoo/__init__.py` imports `export` from here eagerly.
"""
from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from zoo.errors import ArgumentError, ExportError, ParityError, RegistryError
from zoo.fsio import loads_json

if TYPE_CHECKING:
    import torch
    from torch import nn

    from zoo.parity import InputSignature, ParityReport
    from zoo.registry import InputSpec

EXAMPLE_BATCH = 2  # torch.export keeps a dimension dynamic only when its example size is >= 2
STATIC_BATCH = 1
EXAMPLE_LENGTH = 16
STAGING_PREFIX = ".zoo-export-"


@dataclass(frozen=True)
class Exporter:
    """An export format: its name (`--format`), file suffix, writer and reader.

    `directory` formats write a folder (the sidecar goes inside it as `export.json`); the others
    write a file, plus any files named after it (`m.onnx.data`), with the sidecar at `<file>.json`.
    """

    name: str
    suffix: str
    export: str
    load: str | None = None
    description: str = ""
    directory: bool = False
    takes_opset: bool = False
    takes_static: bool = False
    plugin: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or any(c.isspace() or c == "/" for c in self.name):
            raise RegistryError(f"exporter name {self.name!r} must be a non-empty string without spaces or '/'")
        for attr in ("export", "load"):
            value = getattr(self, attr)
            if value is not None and ":" not in value:
                raise RegistryError(f"exporter {self.name!r}: {attr} must be 'module:function', got {value!r}")

    def function(self, attr: str) -> Callable[..., Any]:
        """Import the `export` or `load` function."""
        from zoo.plugins import import_reference

        return import_reference(getattr(self, attr), f"exporter {self.name!r} ({self.plugin})")


@dataclass(frozen=True)
class ExportRequest:
    """What an exporter's `export` function is given.

    `input_dims` and `output_dims` name the dimensions that vary (``{0: "batch", 1: "seq"}``); both
    are empty for a static export. An exporter that has to fix a dimension after all returns
    ``{"fixed": {"seq": 16}}`` among its notes, and the parity check keeps it at that size.
    """

    model: nn.Module
    path: Path
    example: torch.Tensor
    input_name: str
    output_names: tuple[str, ...]
    input_dims: Mapping[int, str]
    output_dims: tuple[Mapping[int, str], ...]
    opset: int | None = None
    static: bool = False
    # The (min, max) of the dynamic sizes an InputSpec declares, by name (``{"width": (8, 2048)}``).
    input_ranges: Mapping[str, tuple[int, int]] = field(default_factory=dict)


@dataclass
class ExportResult:
    """What `export` wrote: the artifact, its sidecar, the parity report (None with check=False)."""

    path: Path
    format: str
    sidecar: Path
    files: list[Path]
    parity: ParityReport | None
    record: dict[str, Any] = field(default_factory=dict)


def exporters() -> dict[str, Exporter]:
    """Every export format the installed plugins register, by name."""
    from zoo.plugins import accept_instances, default_plugin_manager

    return default_plugin_manager().collect("register_exporters", accept_instances(Exporter), key=lambda e: e.name)


def get_exporter(name: str) -> Exporter:
    """The exporter registered as `name`, or ArgumentError listing the formats there are."""
    found = exporters()
    if name not in found:
        raise ArgumentError(f"unknown export format {name!r}", f"use one of: {', '.join(sorted(found))}")
    return found[name]


def export(
    model_or_name: Any,
    path: str | os.PathLike[str] | None = None,
    format: str = "onnx",
    *,
    opset: int | None = None,
    static: bool = False,
    check: bool = True,
    atol: float = 1e-4,
    input_spec: InputSpec | None = None,
) -> ExportResult:
    """Export a model, check that the export computes what the model computes, write a JSON sidecar.

    Args:
        model_or_name: an ``nn.Module`` (normally one zoo built), a registry name, or a model directory.
        path: the file (or, for directory formats, folder) to write; default ``<name><suffix>`` in the
            current folder, or ``model<suffix>`` inside a model directory.
        format: ``onnx``, ``torchscript``, ``pt2``, ``safetensors``, or one a plugin registers.
        opset: the ONNX opset (ONNX only).
        static: fix every dimension at the example's size (batch 1) instead of keeping batch and
            sequence length dynamic.
        check: run the parity check (fresh random inputs at batch sizes 1, 2, 7, for sequence
            models lengths 1, 13, 64, and each dynamic size the input spec declares at its
            smallest, nominal and largest value) before anything is written.
        atol: the largest absolute difference the parity check allows.
        input_spec: what the model takes, for a model zoo did not build.

    Returns:
        An ExportResult.

    Raises:
        ArgumentError: an unknown format, an option the format does not take, or a missing folder.
        ParityError: the export differs from the model beyond `atol`; nothing is written.
        ExportError: the exporter failed.
    """
    exporter = get_exporter(format)
    _check_options(exporter, opset, static, check, atol)
    model, source = _as_model(model_or_name)
    from zoo.tasks import task_of

    task = task_of(model)  # a task no plugin registers: one line naming those that are, before any work
    target = output_path(exporter, path, source)
    from zoo.parity import signature_of

    signature = signature_of(model, input_spec)
    from zoo.fsio import staging_dir

    with _eval_mode(model), staging_dir(target, prefix=STAGING_PREFIX) as stage:
        staged = stage / target.name
        request, output_shapes = _request(model, signature, staged, opset, static)
        notes = _run_exporter(exporter, request)
        static_sizes = {"batch": STATIC_BATCH, "seq": EXAMPLE_LENGTH, **signature.nominal_sizes()} if static else {}
        fixed = {**static_sizes, **notes.pop("fixed", {})}
        report = _parity(exporter, model, staged, signature, fixed, atol) if check else None
        if report is not None and not report.passed:
            name = source or getattr(getattr(model, "zoo", None), "name", None) or type(model).__name__
            error = ParityError(
                f"{exporter.name} export of {name}: {report.summary()}",
                "nothing was written; try --static, another --opset or another format, and report the model",
            )
            error.report = report  # type: ignore[attr-defined]
            raise error
        record = _record(exporter, model, source, target, request, output_shapes, signature, fixed, notes, report)
        record["task"] = task.name
        if report is not None:  # the predictions the task decodes from each, on one batch at the nominal size
            from zoo.tasks.agreement import decoded_match

            record["parity"]["decoded_match"] = decoded_match(model, read_back(exporter, staged), signature, task, fixed)
        if not exporter.directory:  # a folder is published in one rename, sidecar inside; files one by one
            hashes = _hashes(stage)
            record.update(sha256=hashes.pop(target.name), data_sha256=hashes)
        sidecar = sidecar_path(exporter, target)
        write_json(stage / sidecar.relative_to(target.parent), record)
        files = _publish(stage, target, sidecar)
    return ExportResult(target, exporter.name, sidecar, files, report, record)


def verify(
    model_or_name: Any,
    path: str | os.PathLike[str],
    format: str | None = None,
    *,
    atol: float = 1e-4,
    input_spec: InputSpec | None = None,
) -> ParityReport:
    """Run the parity check on a file exported earlier (by zoo or not) and record it in its sidecar.

    Args:
        model_or_name: the eager model the file should match (module, registry name or model directory).
        path: the exported file or folder.
        format: its format; by default told from the suffix (a folder is ``safetensors``).
        atol: the largest absolute difference allowed.
        input_spec: what the model takes, for a model zoo did not build.

    Returns:
        The ParityReport, passed.

    Raises:
        ArgumentError: no file at `path`, or a name without weights (each load of it is a new random model).
        ParityError: the file differs from the model beyond `atol` (the report is its ``report``); the
            sidecar records the failure, as `export` does for a failed check.
    """
    target = Path(path)
    if not target.exists():
        raise ArgumentError(f"{target} does not exist", "export it first, or fix the path")
    exporter = get_exporter(format or format_of(target))
    _check_options(exporter, None, False, True, atol)
    model, source = _as_model(model_or_name)
    if source is not None and getattr(model.zoo, "source", None) is None:
        raise ArgumentError(
            f"{source} has no pretrained weights: each load of it is a new random model, so no file can match it",
            "check the export against a model directory (`zoo export ./out -o FILE --check-only`) or a name with "
            "weights (`zoo list --pretrained`)",
        )
    from zoo.parity import signature_of

    sidecar = sidecar_path(exporter, target)
    record = read_sidecar(sidecar) if sidecar.is_file() else {"format": exporter.name}
    with _eval_mode(model):
        report = _parity(exporter, model, target, signature_of(model, input_spec), record.get("fixed") or {}, atol)
    write_json(sidecar, {**record, "parity": report.to_dict()})
    if not report.passed:
        name = source or getattr(getattr(model, "zoo", None), "name", None) or type(model).__name__
        error = ParityError(f"{target} does not match {name}: {report.summary()}", "export it again from this model")
        error.report = report  # type: ignore[attr-defined]
        raise error
    return report


def format_of(path: Path) -> str:
    """The format whose suffix `path` has (a folder: the directory format)."""
    found = exporters().values()
    match = [e.name for e in found if (e.directory if path.is_dir() else not e.directory and path.name.endswith(e.suffix))]
    if len(match) != 1:
        raise ArgumentError(f"cannot tell the export format of {path}", "pass format= (--format)")
    return match[0]


def output_path(exporter: Exporter, path: str | os.PathLike[str] | None, source: str | None) -> Path:
    """Where the export goes: `path`, or a default next to (or inside) the source; its folder must exist.

    Raises:
        ArgumentError: no path and no name to derive one from, a missing folder, or a target of the
            wrong kind (a folder where a file goes, an existing folder for a directory format).
    """
    if path is None:
        if source is None:
            raise ArgumentError("an output path is needed to export a model object", "pass path=")
        from zoo.modeldir import is_model_dir

        if is_model_dir(source):
            if exporter.directory:
                raise ArgumentError(f"{source} is a model directory already", "pass -o to write a copy")
            path = Path(source) / f"model{exporter.suffix}"
        else:
            path = Path(source.rstrip("/").rsplit("/", 1)[-1].split("@")[0] + exporter.suffix)
    target = Path(path).absolute()
    if not target.parent.is_dir():
        raise ArgumentError(f"the output folder {target.parent} does not exist", "create it first, or choose another -o")
    if target.is_dir() and not exporter.directory:
        raise ArgumentError(f"{target} is a folder; {exporter.name} writes a file", f"give a file name such as model{exporter.suffix}")
    if exporter.directory and (target.exists() or target.is_symlink()):
        raise ArgumentError(f"{target} already exists", "remove it, or choose another -o")
    for path in (target, sidecar_path(exporter, target)):
        _replaceable(path)
    return target


def _replaceable(path: Path) -> None:
    """An export replaces only a regular file: never a symlink, a FIFO, a device or a socket."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode):
        kind = next((k for test, k in _KINDS if test(mode)), "not a regular file")
        raise ArgumentError(f"{path} is {kind}; an export replaces only a regular file", "choose another -o")


_KINDS = (
    (stat.S_ISLNK, "a symlink"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"),
)


def sidecar_path(exporter: Exporter, target: Path) -> Path:
    """The JSON record of an export: `<file>.json`, or `export.json` inside a directory format's folder."""
    return target / "export.json" if exporter.directory else target.with_name(target.name + ".json")


def read_sidecar(path: Path) -> dict[str, Any]:
    """The JSON record `zoo export` wrote next to an export.

    Raises:
        ArgumentError: it is not a JSON object.
    """
    try:
        record = loads_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        record = exc
    if not isinstance(record, dict):
        detail = f": {record}" if isinstance(record, Exception) else ""
        raise ArgumentError(f"the sidecar {path} is not a JSON object{detail}", "export the model again to rewrite it")
    return record


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write JSON atomically: a temporary file in the same folder, renamed over `path`."""
    from zoo.fsio import write_text

    write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def check_files(artifact: Path, sidecar: Path, record: Mapping[str, Any]) -> None:
    """An export must be the one its sidecar (labels, preprocessing) was written for: the sidecar
    names the sha256 of the artifact and of the files beside it, so that neither a crash nor an
    edit can pair it with another export's model.

    Raises:
        ExportError: a file is missing or its sha256 differs from the sidecar's.
    """
    from zoo.cache import sha256_file

    if "sha256" not in record:  # written before sidecars named their files' hashes
        return
    hashes = {artifact.name: record["sha256"], **(record.get("data_sha256") or {})}
    for name, expected in hashes.items():
        path = artifact.parent / str(name)
        if Path(str(name)).name != name or not path.is_file():
            raise ExportError(f"{path}, named by the sidecar {sidecar.name}, is missing", "export the model again")
        actual = sha256_file(path)
        if actual != expected:
            raise ExportError(
                f"{path} has sha256 {actual}, but its sidecar {sidecar.name} was written for {expected}: "
                "they come from different exports",
                "export the model again (an export was interrupted, or a file was replaced)",
            )


def _check_options(exporter: Exporter, opset: int | None, static: bool, check: bool, atol: float = 0.0) -> None:
    if not atol >= 0:  # also refuses NaN
        raise ArgumentError(f"the tolerance must be a non-negative number, got {atol}")
    if opset is not None and not exporter.takes_opset:
        raise ArgumentError(f"format {exporter.name!r} takes no opset", "drop --opset")
    if static and not exporter.takes_static:
        raise ArgumentError(f"format {exporter.name!r} has no static variant", "drop --static")
    if check and exporter.load is None:
        raise ArgumentError(
            f"format {exporter.name!r} cannot be read back, so its parity cannot be checked", "pass --no-check"
        )


def _as_model(model_or_name: Any) -> tuple[nn.Module, str | None]:
    """The model to export, and the name or folder it was loaded from (None for a module passed in)."""
    if isinstance(model_or_name, (str, os.PathLike)):
        from zoo.loading import load

        return load(os.fspath(model_or_name)), os.fspath(model_or_name)
    from torch import nn

    if not isinstance(model_or_name, nn.Module):
        raise ArgumentError(
            f"cannot export a {type(model_or_name).__name__}", "pass an nn.Module, a model name or a model directory"
        )
    return model_or_name, None


class _eval_mode:
    """Export in eval mode (dropout off, batch-norm statistics frozen), then restore the model's mode."""

    def __init__(self, model: nn.Module):
        self.model, self.was_training = model, model.training

    def __enter__(self) -> None:
        self.model.eval()

    def __exit__(self, *exc: Any) -> None:
        self.model.train(self.was_training)


def _request(
    model: nn.Module, signature: InputSignature, staged: Path, opset: int | None, static: bool
) -> tuple[ExportRequest, list[tuple[int, ...]]]:
    import torch

    from zoo.parity import flatten_outputs, probe_output_dims

    batch = STATIC_BATCH if static else EXAMPLE_BATCH
    example = signature.sample(batch, EXAMPLE_LENGTH, torch.Generator().manual_seed(0))
    with torch.no_grad():
        shapes = [tuple(o.shape) for o in flatten_outputs(model(example))]
    dims = [{} for _ in shapes] if static else probe_output_dims(model, signature, batch, EXAMPLE_LENGTH)
    names = ("output",) if len(shapes) == 1 else tuple(f"output_{i}" for i in range(len(shapes)))
    request = ExportRequest(
        model=model,
        path=staged,
        example=example,
        input_name="input",
        output_names=names,
        input_dims={} if static else signature.dim_names,
        output_dims=tuple(dims),
        opset=opset,
        static=static,
        input_ranges={} if static else dict(signature.dynamic),
    )
    return request, shapes


def _run_exporter(exporter: Exporter, request: ExportRequest) -> dict[str, Any]:
    from zoo.errors import ZooError, storage_error

    write = exporter.function("export")
    try:
        notes = write(request)
    except ZooError:
        raise
    except Exception as exc:
        if isinstance(exc, OSError) and (storage := storage_error(exc, path=request.path)) is not None:
            raise storage from exc  # a full disk or a permission problem: --static would not help
        raise ExportError(
            f"{exporter.name} export failed: {type(exc).__name__}: {str(exc).strip().splitlines()[0][:500]}",
            "try another format or --static; ZOO_DEBUG=1 shows the traceback",
        ) from exc
    if not request.path.exists():
        raise ExportError(f"exporter {exporter.name!r} ({exporter.plugin}) wrote nothing at {request.path.name}")
    return dict(notes or {})


def _parity(
    exporter: Exporter, model: nn.Module, path: Path, signature: InputSignature, fixed: Mapping[str, int], atol: float
) -> ParityReport:
    from zoo.parity import check_parity

    return check_parity(model, read_back(exporter, path), signature, fixed=fixed, atol=atol)


def read_back(exporter: Exporter, path: Path) -> Any:
    """The exported file at `path`, loaded by its format's reader.

    Raises:
        ExportError: the file is not a readable file of that format (damaged, or another format).
    """
    from zoo.errors import ZooError

    try:
        return exporter.function("load")(path)
    except ZooError:
        raise
    except Exception as exc:
        raise unreadable(path, exporter.name, exc) from exc


def unreadable(path: Path, format: str, exc: Exception) -> ExportError:
    """The error for an exported file its format's reader refused."""
    return ExportError(
        f"{path} cannot be read as {format}: {type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}",
        "export it again, or pass the --format it was written in",
    )


def _record(
    exporter: Exporter,
    model: nn.Module,
    source: str | None,
    target: Path,
    request: ExportRequest,
    output_shapes: list[tuple[int, ...]],
    signature: InputSignature,
    fixed: Mapping[str, int],
    notes: Mapping[str, Any],
    report: ParityReport | None,
) -> dict[str, Any]:
    """The sidecar: what was exported from what, how to feed it, and the parity result."""
    import torch

    from zoo.version import __version__

    info = getattr(model, "zoo", None)
    dynamic = {axis: name for axis, name in request.input_dims.items() if name not in fixed}
    input_shape = list(request.example.shape)
    return {
        "format": exporter.name,
        "file": target.name,
        "model": source or (info.name if info else type(model).__name__),
        "architecture": info.arch if info else None,
        "weights": info.weights if info else None,
        "weights_sha256": info.weights_sha256 if info else None,
        "input": {
            "name": request.input_name,
            **signature.to_dict(),
            "dtype": str(request.example.dtype).removeprefix("torch."),
            "dims": [dynamic.get(axis, size) for axis, size in enumerate(input_shape)],
        },
        "outputs": [
            {"name": name, "dims": [dims.get(axis, size) for axis, size in enumerate(shape)]}
            for name, shape, dims in zip(request.output_names, output_shapes, request.output_dims)
        ],
        "fixed": dict(fixed),
        "labels": list(info.labels) if info and info.labels else None,
        "preprocess": dict(info.preprocess) if info else {},
        "exporter": {**notes, "torch": torch.__version__, "zoo": __version__},
        "parity": report.to_dict() if report is not None else None,
    }


def _hashes(stage: Path) -> dict[str, str]:
    """The sha256 of every staged file: the artifact and the files named after it."""
    from zoo.cache import sha256_file

    return {p.name: sha256_file(p) for p in sorted(stage.iterdir()) if p.is_file()}


def _publish(stage: Path, target: Path, sidecar: Path) -> list[Path]:
    """Move the staged files next to `target` so that a crash never pairs a sidecar with another
    export's files: the old sidecar goes first, the new one arrives last, after every file it names."""
    from zoo.fsio import move_into_place

    if sidecar.parent == target.parent:
        sidecar.unlink(missing_ok=True)
    staged = sorted(stage.iterdir(), key=lambda p: (p.name == sidecar.name, p.name == target.name))
    published = []
    for item in staged:
        final = target.parent / item.name
        _replaceable(final)
        move_into_place(item, final)
        published.append(final)
    return published
