"""What a `zoo predict --output` run has written so far, kept for `--resume`.

Rows stream into ``.NAME.partial/NAME`` beside the output; after each batch they are flushed and
``progress.json`` records how many inputs are done, the file's length at that point, the counts so
far and the run's identity (the inputs with their sizes and mtimes, the model's tensors, top-k,
format, task). A run that stops for any reason (SIGKILL, Ctrl-C, a crash) leaves both. The next run
on that output refuses to start over silently: `--resume` checks the identity and continues after the
last recorded batch (the file cut back to the recorded length, so a row half-written by a killed
process goes), `--overwrite` starts over. The record is data read from disk: it is parsed as bounded
JSON and every field is checked; nothing in the folder is deleted unless zoo writes files of that name.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from zoo.errors import ArgumentError
from zoo.fsio import read_json_object

PROGRESS = "progress.json"
VERSION = 1
_MAX = 16 << 20  # a progress record larger than this is not zoo's


def partial_dir(target: Path) -> Path:
    """Where a run writing `target` keeps its rows until the last one is written."""
    return target.with_name(f".{target.name}.partial")


def identity(model: Any, paths: Sequence[Path], top_k: int, suffix: str, task: str | None) -> dict[str, Any]:
    """What a resumed run must share with the interrupted one, each part a plain value."""
    inputs = hashlib.sha256()
    for path in paths:
        try:
            stat = path.stat()
            inputs.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode("utf-8", "surrogateescape"))
        except OSError:  # a file that went away: its name alone (its row says it cannot be read)
            inputs.update(f"{path}\0-\0".encode("utf-8", "surrogateescape"))
    return {"inputs": inputs.hexdigest(), "files": len(paths), "model": _model_digest(model), "top_k": top_k,
            "format": suffix, "task": task}


def _model_digest(model: Any) -> str:
    """The model's tensors (a PyTorch model) or its file (an ONNX model), with its labels and preprocessing."""
    from zoo.predict.runtime import is_torch_model

    info = getattr(model, "zoo", None)
    parts: dict[str, Any] = {"labels": getattr(info, "labels", None), "preprocess": getattr(info, "preprocess", None)}
    if is_torch_model(model):
        from zoo.finetuning.features import tensor_digest

        parts["tensors"] = tensor_digest(model.state_dict())
    else:
        from zoo.cache import sha256_file

        parts["file"] = sha256_file(model.path)
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class Progress:
    """The record of a run's rows so far (``progress.json``)."""

    identity: dict[str, Any]
    total: int
    done: int = 0
    size: int = 0  # the rows file's length after the last recorded batch
    predicted: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    skipped_names: dict[str, list[str]] = field(default_factory=dict)
    keys: list[str] | None = None  # a decoded task's CSV columns, once known
    waiting: list[list[str]] = field(default_factory=list)  # a decoded task's CSV rows before them

    def as_json(self) -> str:
        return json.dumps({"version": VERSION, **self.__dict__}, ensure_ascii=False)


# What zoo writes in a partial folder: the rows (named as the output), the record, their temporary files.
def _ours(name: str, target: Path) -> bool:
    return name in (target.name, PROGRESS) or bool(re.fullmatch(r"\..+\.tmp", name))


def check_folder(work: Path, target: Path) -> None:
    """A partial folder holding anything zoo does not write there is the user's: refused, never deleted."""
    if work.is_symlink() or (work.exists() and not work.is_dir()):
        raise ArgumentError(f"{work}, where a run on {target} keeps its rows, is not a folder zoo made",
                            "move it away (nothing was changed), or choose another --output")
    foreign = sorted(p.name for p in work.iterdir() if not _ours(p.name, target)) if work.is_dir() else []
    if foreign:
        raise ArgumentError(f"{work}, where a run on {target} keeps its rows, holds what zoo did not write there "
                            f"({', '.join(foreign)})", "move it away (nothing was changed), or choose another --output")


def clear(work: Path, target: Path) -> None:
    """Remove the files zoo writes in `work` (after `check_folder`), then the folder."""
    if not work.is_dir() or work.is_symlink():
        return
    for path in work.iterdir():
        if _ours(path.name, target) and (path.is_file() or path.is_symlink()):
            path.unlink(missing_ok=True)
    try:
        work.rmdir()
    except OSError:
        pass


def read(work: Path, target: Path) -> Progress | None:
    """The record in `work`, or None when it is missing or not one zoo wrote (each field checked)."""
    rows = work / target.name
    data = read_json_object(work / PROGRESS, _MAX)
    try:
        length = rows.stat().st_size if rows.is_file() and not rows.is_symlink() else None
    except OSError:
        length = None
    if data is None or length is None or data.get("version") != VERSION:
        return None
    try:
        found = Progress(**{key: data[key] for key in Progress.__dataclass_fields__})
    except (KeyError, TypeError):
        return None
    counts = (found.total, found.done, found.size, found.predicted)
    valid = (
        isinstance(found.identity, dict) and all(type(n) is int for n in counts)
        and 0 <= found.done <= found.total and 0 <= found.size <= length and found.predicted <= found.done
        and _str_map(found.skipped, int) and _str_map(found.skipped_names, list)
        and all(isinstance(n, str) for names in found.skipped_names.values() for n in names)
        and (found.keys is None or (isinstance(found.keys, list) and all(isinstance(k, str) for k in found.keys)))
        and isinstance(found.waiting, list)
        and all(isinstance(w, list) and len(w) == 2 and all(isinstance(c, str) for c in w) for w in found.waiting)
    )
    return found if valid else None


def _str_map(value: Any, kind: type) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and type(v) is kind for k, v in value.items())


def start(work: Path, target: Path, run: dict[str, Any], total: int, *, resume: bool, overwrite: bool) -> Progress:
    """The record this run starts from: an interrupted run's with `resume`, else a fresh one.

    Raises:
        ArgumentError: the folder holds what zoo did not write; an interrupted run's rows are there and
            neither `resume` nor `overwrite` says what to do with them; or `resume` finds a record that is
            damaged or of another run (the differing parts named).
    """
    check_folder(work, target)
    found = read(work, target) if work.is_dir() else None
    if work.is_dir() and not overwrite:
        if found is None and (work / target.name).exists():
            raise ArgumentError(f"an interrupted run left rows for {target} in {work}, without a record zoo can use",
                                "pass --overwrite to start over")
        if found is not None and not resume:
            raise ArgumentError(f"an interrupted run left {found.done:,} of {found.total:,} rows for {target} in {work}",
                                "pass --resume to continue it, or --overwrite to start over")
        if found is not None:
            differ = sorted(key for key in run if found.identity.get(key) != run[key])
            if differ:
                raise ArgumentError(
                    f"the interrupted run for {target} in {work} had other {', '.join(_PARTS.get(k, k) for k in differ)}",
                    "run the same model on the same files with the same --top-k and output, or pass --overwrite to start over",
                )
            return found
    clear(work, target)
    return Progress(run, total)


_PARTS = {"inputs": "input files (names, sizes or times)", "files": "number of input files", "model": "model weights",
          "top_k": "--top-k", "format": "output format", "task": "task"}


def open_rows(work: Path, target: Path, progress: Progress) -> Any:
    """The rows file for appending, cut back to the recorded length (a half-written row goes)."""
    work.mkdir(exist_ok=True)
    rows = work / target.name
    with open(rows, "ab") as raw:
        raw.truncate(progress.size)
    # UTF-8; a file name that is not UTF-8 is written as its own bytes (read with errors="surrogateescape")
    return rows.open("a", encoding="utf-8", errors="surrogateescape", newline="")


def record(work: Path, stream: Any, progress: Progress) -> None:
    """Flush the rows, then write the record of them (atomically): a killed run resumes after them."""
    from zoo.fsio import write_text

    stream.flush()
    progress.size = os.fstat(stream.fileno()).st_size
    write_text(work / PROGRESS, progress.as_json())
