"""Predictions for many image files, written to one CSV or JSONL file: `zoo predict ... --output`.

One row per input, in input order; a file that cannot be used is skipped, counted and named in its
row (an ``error``), never stopping the run. Rows stream into ``.NAME.partial/`` beside the output,
with a record of them after each batch (`zoo.predict.partial`), and are renamed into place when the
last one is written: a run that stops leaves no output file, and its rows wait for `--resume` (or
`--overwrite`, which starts over). Memory holds a few batches, whatever the number of files.
"""
from __future__ import annotations

import csv
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence, TextIO

from zoo.errors import ArgumentError

if TYPE_CHECKING:
    from zoo.specs import TaskSpec

OUTPUT_FORMATS = (".csv", ".jsonl")
CLASSIFIER_DECODE = "zoo.tasks.classification:decode"  # a task decoding this way gets the top-k columns
_NAMED = 3  # skipped files named per reason in the summary


def default_workers() -> int:
    """Preprocessing processes beside this one, which runs the model and decodes in a thread: one per
    core beyond two, at most 4 (none on 2 cores, where a process of its own ran 0.6-0.8× as fast)."""
    return min(4, max(0, (os.cpu_count() or 1) - 2))


@dataclass
class PredictionSummary:
    """What `predict_files` wrote.

    Attributes:
        output: the file written.
        inputs: rows written, one per input file (an interrupted run's included).
        predicted: rows with predictions.
        skipped: reason -> how many files were skipped for it.
        skipped_names: reason -> the first three of those files.
        seconds: the whole run, reading files to the last row.
        runtime: what ran the model (`zoo.predict.runtime.RuntimeReport.as_dict`).
        resumed: the rows an interrupted run had written, which this one continued after.
    """

    output: Path
    inputs: int = 0
    predicted: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    skipped_names: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0
    runtime: dict[str, Any] = field(default_factory=dict)
    resumed: int = 0  # rows an interrupted run had written, continued after (--resume)

    @property
    def images_per_s(self) -> float:
        """This run's rows per second (an interrupted run's rows are not its own)."""
        return (self.inputs - self.resumed) / self.seconds if self.seconds else 0.0

    def skip(self, path: str, reason: str) -> None:
        """Count a skipped file (the first few of each reason are kept by name)."""
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        names = self.skipped_names.setdefault(reason, [])
        if len(names) < _NAMED:
            names.append(path)

    def skip_report(self) -> list[str]:
        """One line per reason: how many files were skipped for it, and the first three."""
        return [
            f"skipped {count} file(s): {reason}: {', '.join(self.skipped_names[reason])}"
            + (f" and {count - _NAMED} more" if count > _NAMED else "")
            for reason, count in self.skipped.items()
        ]

    def as_dict(self) -> dict[str, Any]:
        """Plain data, for `--json`."""
        return {
            "output": str(self.output), "inputs": self.inputs, "predicted": self.predicted,
            "skipped": dict(self.skipped), "skip_report": self.skip_report(),
            "seconds": round(self.seconds, 3), "images_per_s": round(self.images_per_s, 1), "runtime": dict(self.runtime),
            "resumed": self.resumed,
        }


def checked_output(output: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """The output file, once it is known to be writable as asked.

    Raises:
        ArgumentError: a suffix other than .csv or .jsonl, a folder, a path inside a folder that does
            not exist, or an existing file without `overwrite`.
    """
    path = Path(output)
    if path.is_dir():
        raise ArgumentError(f"the output {path} is a folder", f"name a file in it, e.g. {path / 'predictions.csv'}")
    if path.suffix.lower() not in OUTPUT_FORMATS:
        raise ArgumentError(f"the output {path} is neither .csv nor .jsonl", "name it predictions.csv or predictions.jsonl")
    parent = path.absolute().parent
    if not parent.is_dir():
        raise ArgumentError(f"the output's folder {parent} does not exist", f"create it first (mkdir -p {parent})")
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise ArgumentError(f"the output {path} already exists", "pass --overwrite (overwrite=True) to replace it, or choose another name")
    return path


def predict_files(
    model: Any, inputs: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str], *, top_k: int = 5,
    batch_size: int = 32, workers: int | None = None, overwrite: bool = False,
    progress: Callable[[str, int, int, dict[str, Any]], None] | None = None, runtime: str = "auto",
    task: TaskSpec | None = None, resume: bool = False,
) -> PredictionSummary:
    """Classify image files (or run them through another task) and write one row per file to a CSV or
    JSONL file, atomically.

    Args:
        model: an image classifier zoo loaded, or an ONNX model (`zoo.predict.onnx_runtime`).
        inputs: image files and folders (a folder stands for its image files at any depth, in path order).
        output: ``.csv`` (columns path, label_1, prob_1, ..., error) or ``.jsonl`` (``{"path", "top":
            [{"label", "index", "probability"}]}``, with ``"error"`` for a skipped file).
        top_k: classes per file.
        batch_size: files the model sees at once; memory grows with it, not with the number of files.
        workers: preprocessing processes (0: a thread of this one, a batch ahead of the model;
            default `default_workers()`).
        overwrite: replace an existing output, and start over when an interrupted run left rows for it.
        progress: called as ``progress("predict", done, total, {"resumed": n})`` after each batch
            (`zoo.predict.progress.Progress` writes count/total and images/s to a stream).
        runtime: ``auto`` (ONNX Runtime on a CPU when the run pays for the export, which is cached
            for later runs; eager otherwise), ``eager`` or ``onnx`` (`zoo.predict.runtime`).
        task: the model's task (`zoo.tasks.task_of`). One whose decode is not classification's runs
            each file through its ``prepare``, the model as loaded and its ``decode``, one file at a
            time (`runtime` does not apply); the row is the path, the decoded fields (CSV: a column
            per key of the first file's prediction, lists and dicts as JSON) and ``error``.
        resume: continue after the rows an interrupted run for this output recorded (killed, Ctrl-C,
            a crash), when it ran the same model on the same files with the same options.

    Returns:
        The counts: rows, predicted, skipped by reason (with names), seconds.

    Raises:
        ArgumentError: the output cannot be written as asked (`checked_output`), an unknown runtime, a
            task that reads texts, or an interrupted run's rows that neither `resume` nor `overwrite`
            settles (`zoo.predict.partial.start`).
        ExportError: ``runtime="onnx"`` and the model cannot be exported, or its export does not match it.
        DataError: an input does not exist, or a folder holds no image.
        BusyError: another zoo process writes the same output.
    """
    from zoo.fsio import lock_path, locked, move_into_place
    from zoo.predict import partial
    from zoo.predict.images import image_inputs

    target = checked_output(output, overwrite)
    decoded = task is not None and task.decode != CLASSIFIER_DECODE
    if decoded and task.reads != "images":
        raise ArgumentError(f"--output writes predictions for image files, and task {task.name!r} reads texts",
                            "drop --output: texts' answers are printed")
    inputs = [item for item in inputs if not _same_file(item, target)]  # an old output is never an input
    paths = image_inputs(inputs, recursive=True)
    workers = default_workers() if workers is None else workers
    with locked(lock_path(target), str(target)):
        work = partial.partial_dir(target)
        run = partial.identity(model, paths, top_k, target.suffix.lower(), task.name if decoded else None)
        state = partial.start(work, target, run, len(paths), resume=resume, overwrite=overwrite)
        try:
            with partial.open_rows(work, target, state) as stream:
                journal = Journal(work, stream, state)
                if decoded:
                    summary = _write_decoded(model, task, paths, journal, target, top_k, batch_size, progress)
                else:
                    summary = _write_rows(model, paths, journal, target, top_k, batch_size, workers, progress, runtime)
        except BaseException:
            if state.done == 0:  # nothing worth keeping
                partial.clear(work, target)
            raise
        checked_output(target, overwrite)  # another writer's file appeared meanwhile
        move_into_place(work / target.name, target)
        partial.clear(work, target)
    return summary


class Journal:
    """The rows file of a run and the record of what it holds (`zoo.predict.partial`), kept after each batch."""

    def __init__(self, work: Path, stream: TextIO, state: Any):
        self.work, self.stream, self.state = work, stream, state

    def summary(self, target: Path, **fields: Any) -> PredictionSummary:
        """A summary that starts where the interrupted run (if any) stopped."""
        state = self.state
        return PredictionSummary(target, inputs=state.done, predicted=state.predicted, skipped=dict(state.skipped),
                                 skipped_names={k: list(v) for k, v in state.skipped_names.items()}, resumed=state.done,
                                 **fields)

    def keep(self, summary: PredictionSummary, rows: Any = None) -> None:
        """Record `summary`'s rows as written (and a decoded task's CSV state)."""
        from zoo.predict.partial import record

        state = self.state
        state.done, state.predicted = summary.inputs, summary.predicted
        state.skipped, state.skipped_names = dict(summary.skipped), {k: list(v) for k, v in summary.skipped_names.items()}
        if isinstance(rows, DecodedRows):
            state.keys, state.waiting = rows.keys, [list(w) for w in rows.waiting]
        record(self.work, self.stream, state)


def _write_rows(
    model: Any, paths: list[Path], journal: Journal, target: Path, top_k: int, batch_size: int, workers: int,
    progress: Callable[[str, int, int, dict[str, Any]], None] | None, runtime: str,
) -> PredictionSummary:
    """Every path's row, in order, batch after batch (after those an interrupted run wrote)."""
    from zoo.predict.images import image_batches, prefetched, ranked
    from zoo.predict.runtime import predict_runtime

    labels = getattr(model.zoo, "labels", None)
    fresh = journal.state.size == 0
    rows = Rows(journal.stream, target.suffix.lower(), min(top_k, len(labels)) if labels else top_k, header=fresh)
    summary = journal.summary(target)
    if fresh:
        journal.keep(summary)  # the header: a run killed in its first batch can be resumed too
    rest = paths[summary.inputs:]
    started = time.perf_counter()
    batches = image_batches(model, rest, batch_size, workers)
    with predict_runtime(model, runtime, images=len(rest)) as forward:
        for indices, batch, skipped in batches if workers else prefetched(batches):
            answers = ranked([str(rest[i]) for i in indices], forward(batch), labels, top_k) if indices else []
            ordered = sorted([(i, a["predictions"], None) for i, a in zip(indices, answers)] + [(i, None, p[2]) for i, p in skipped])
            for index, predictions, reason in ordered:
                rows.write(str(rest[index]), predictions, reason)
                if reason is None:
                    summary.predicted += 1
                else:
                    summary.skip(str(rest[index]), reason)
            summary.inputs += len(ordered)
            journal.keep(summary)
            if progress is not None:
                progress("predict", summary.inputs, len(paths), {"resumed": summary.resumed})
    summary.seconds = time.perf_counter() - started
    summary.runtime = forward.report.as_dict()
    return summary


def _write_decoded(
    model: Any, task: TaskSpec, paths: list[Path], journal: Journal, target: Path, top_k: int, every: int,
    progress: Callable[[str, int, int, dict[str, Any]], None] | None,
) -> PredictionSummary:
    """Every path's row, in order, one file at a time through the task (progress and a record every
    `every` files), after those an interrupted run wrote."""
    from zoo.errors import DataError
    from zoo.predict.decoded import predict_batches
    from zoo.predict.runtime import is_torch_model

    rows = DecodedRows(journal.stream, target.suffix.lower())
    rows.keys, rows.waiting = journal.state.keys, [tuple(w) for w in journal.state.waiting]
    summary = journal.summary(target, runtime={"runtime": "eager" if is_torch_model(model) else "onnx", "requested": "as loaded",
                                               "reason": f"task {task.name}: each file through its prepare and decode"})
    if summary.inputs == 0:
        journal.keep(summary, rows)  # a run killed before its first record can be resumed too
    started = time.perf_counter()
    for done, path in enumerate(paths[summary.inputs:], summary.inputs + 1):
        try:
            (prediction,) = next(predict_batches(model, task, [str(path)], top_k, 1))
        except DataError as exc:  # the file: unreadable, not an image, refused by the task's prepare
            reason = getattr(exc, "reason", None) or exc.message
            rows.write(str(path), None, reason)
            summary.skip(str(path), reason)
        else:
            prediction.pop("input")
            try:
                rows.write(str(path), prediction)
            except (TypeError, ValueError) as exc:  # json: a value it cannot write
                raise ArgumentError(f"task {task.name!r} ({task.plugin}) decoded {path} into a value JSON cannot hold ({exc})",
                                    "its decode must return plain JSON values: report it to the plugin's authors") from exc
            summary.predicted += 1
        summary.inputs = done
        if done % every == 0 or done == len(paths):
            journal.keep(summary, rows)
            if progress is not None:
                progress("predict", done, len(paths), {"resumed": summary.resumed})
    rows.close()
    summary.seconds = time.perf_counter() - started
    return summary


class DecodedRows:
    """A task's decoded predictions streamed to an open text file: JSON lines (``{"path", **decoded}``,
    or ``{"path", "error"}``), or CSV with ``path``, one column per key of the first prediction (a
    later one's other keys are left out, its missing ones empty; lists and dicts as JSON) and ``error``.
    CSV rows wait for the first prediction, which names the columns.

    Args:
        stream: the file (opened with ``newline=""``).
        suffix: ``.csv`` or ``.jsonl``.
    """

    def __init__(self, stream: TextIO, suffix: str):
        self.stream = stream
        self.csv = csv.writer(stream) if suffix == ".csv" else None
        self.keys: list[str] | None = None
        self.waiting: list[tuple[str, str]] = []  # CSV: (path, error) rows before the first prediction

    def write(self, path: str, prediction: dict[str, Any] | None, error: str | None = None) -> None:
        """One input's row: its decoded prediction, or the reason it was skipped."""
        if self.csv is None:
            row = {"path": path, **(prediction or {}), **({"error": error} if error else {})}
            self.stream.write(json.dumps(row, ensure_ascii=False) + "\n")
        elif prediction is None and self.keys is None:
            self.waiting.append((path, error or ""))
        else:
            if self.keys is None:
                self._header([key for key in prediction if key not in ("path", "error")])
            cells = [_cell((prediction or {}).get(key)) for key in self.keys]
            self.csv.writerow([path, *cells, error or ""])

    def _header(self, keys: list[str]) -> None:
        self.keys = keys
        self.csv.writerow(["path", *keys, "error"])
        for path, error in self.waiting:
            self.csv.writerow([path, *[""] * len(keys), error])
        self.waiting = []

    def close(self) -> None:
        """Write what still waits (every file skipped: the columns are path and error)."""
        if self.csv is not None and self.keys is None:
            self._header([])


def _cell(value: Any) -> str:
    """A decoded value as a CSV cell: text as it is, lists and dicts as JSON, None empty."""
    if value is None:
        return ""
    if isinstance(value, (list, dict, tuple)):
        return json.dumps(value, ensure_ascii=False)
    if not isinstance(value, (str, int, float)):
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
    return str(value)


class Rows:
    """Rows of predictions streamed to an open text file, as CSV or JSON lines.

    Args:
        stream: the file (opened with ``newline=""``).
        suffix: ``.csv`` or ``.jsonl``.
        top_k: the CSV's number of label/probability column pairs.
        header: write the CSV's header (not when continuing an interrupted run's file).
    """

    def __init__(self, stream: TextIO, suffix: str, top_k: int, header: bool = True):
        self.stream = stream
        self.top_k = top_k
        self.csv = csv.writer(stream) if suffix == ".csv" else None
        if self.csv is not None and header:
            pairs = [name for k in range(1, top_k + 1) for name in (f"label_{k}", f"prob_{k}")]
            self.csv.writerow(["path", *pairs, "error"])

    def write(self, path: str, predictions: list[dict[str, Any]] | None, error: str | None = None) -> None:
        """One input's row: its ranked predictions, or the reason it was skipped."""
        predictions = predictions or []
        if self.csv is not None:
            cells = [cell for p in predictions for cell in (p["label"], f"{p['probability']:.6f}")]
            self.csv.writerow([path, *cells, *[""] * (2 * self.top_k - len(cells)), error or ""])
            return
        top = [{"label": p["label"], "index": p["index"], "probability": p["probability"]} for p in predictions]
        self.stream.write(json.dumps({"path": path, "top": top, **({"error": error} if error else {})}, ensure_ascii=False) + "\n")


def _same_file(item: str | os.PathLike[str], target: Path) -> bool:
    """Whether the input `item` is the output file itself."""
    try:
        return target.exists() and Path(item).is_file() and os.path.samefile(item, target)
    except OSError:
        return False
