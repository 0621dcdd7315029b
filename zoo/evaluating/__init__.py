"""Evaluating a model on data: accuracy, per-class precision/recall/F1, confusion, top-k, loss; nats per char.

The data is read as fine-tuning reads it (`zoo.data.formats`, the seeded split) and fed as
fine-tuning's validation feeds it (`zoo.finetuning.inputs` / `text_inputs`: the model's own
preprocessing, tokenizer and context), so `split="val"` on a directory `zoo finetune` wrote selects
the samples it held out and reproduces the accuracy it reported. Classes are matched to the model's
labels by name. No module here imports torch at the top: `import zoo` imports this package.

    data.py      the model's task and labels, its training summary, the data
    scoring.py   fine-tuning's inputs, the batches through the model, the report filled in: the
                 `evaluate` of zoo's classification and language-modeling tasks
    metrics.py   EvaluationReport, the running tally, per-class precision/recall/F1
    tasks.py     a task that names no `evaluate`: its inputs, loss and metrics (`zoo.tasks`)

`evaluate` dispatches on the model's task (`zoo.tasks.task_of`) alone: its `evaluate` callable, else
`tasks.run_task`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from zoo.errors import ArgumentError, PluginError
from zoo.evaluating.data import match_labels, model_task, read_samples, training_summary
from zoo.evaluating.metrics import EvaluationReport
from zoo.evaluating.scoring import Progress
from zoo.tasks import function, task_of

SPLITS = ("all", "val")
RUNTIMES = ("eager", "onnx")


def evaluate(
    model_or_name: Any,
    data: str | os.PathLike[str],
    *,
    split: str = "all",
    batch_size: int = 64,
    top_k: int = 5,
    data_format: str | None = None,
    workers: int = 0,
    device: str = "auto",
    text_column: str | None = None,
    label_column: str | None = None,
    max_windows: int | None = None,
    seed: int = 0,
    runtime: str = "eager",
    progress: Progress | None = None,
) -> EvaluationReport:
    """Evaluate a classifier on labelled data, or a language model on a corpus.

    Args:
        model_or_name: a name `zoo.load` knows, a model directory, or a loaded model.
        data: an image folder, a text folder, a CSV file (as `zoo finetune` reads them); for a
            language model a text file or a folder of .txt/.md files.
        split: ``"all"`` evaluates every sample; ``"val"`` the samples the model's fine-tuning held out
            (its val_split and seed, read from the model directory's training summary).
        batch_size: examples the model sees at once (memory grows with it, not with the data).
        top_k: top-k accuracy is reported when the model has at least this many classes.
        data_format: the data format, when detection is not wanted (default: the fine-tune's).
        workers: data-loading processes.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        text_column, label_column: a CSV's columns (default: the fine-tune's, else text and label).
        max_windows: a language model is scored on a seeded sample of this many windows (default: all).
        seed: the seed of that sample.
        runtime: ``"eager"``, or ``"onnx"`` for the model.onnx `zoo export` wrote in a model directory.
        progress: called with ("evaluate", done, total, {}) after each batch.

    Returns:
        The report: n, loss, examples/s and the task's metrics.

    Raises:
        UnknownTaskError: the model's task is not registered (named, with the registered ones), before
            its weights load.
        DataError: the data holds classes the model does not know (named, with its labels), is empty,
            or is of a kind the model does not read.
        ArgumentError: a bad option, or ``split="val"`` for a model without a training summary.
    """
    _check_options(split, batch_size, top_k, workers, max_windows, runtime)
    from zoo.loading import require_registered_task

    require_registered_task(model_or_name)  # a task no plugin registers: one line naming those that are, before any weights load
    model = _load(model_or_name, runtime)
    name = _model_name(model_or_name, model)
    spec = task_of(model)
    training = training_summary(model_or_name, model, name, required=split == "val")
    samples = read_samples(Path(data), split, training, data_format, text_column, label_column, workers)
    context = {
        "task": spec, "name": name, "split": split, "training": training, "batch_size": batch_size, "top_k": top_k,
        "workers": workers, "device": device, "max_windows": max_windows, "seed": seed, "progress": progress,
    }
    run = function(spec, "evaluate")
    if run is None:
        from zoo.evaluating.tasks import run_task as run
    report = run(model, samples, context)
    if not isinstance(report, EvaluationReport):
        raise PluginError(f"task {spec.name!r} ({spec.plugin}): its evaluate {spec.evaluate} returned a {type(report).__name__}, "
                          "not a zoo.evaluating.EvaluationReport", "report it to the plugin's authors (`zoo plugins` shows its version)")
    return report


def _check_options(split: str, batch_size: int, top_k: int, workers: int, max_windows: int | None, runtime: str) -> None:
    if split not in SPLITS:
        raise ArgumentError(f"unknown split {split!r}", f"use one of: {', '.join(SPLITS)}")
    if runtime not in RUNTIMES:
        raise ArgumentError(f"unknown runtime {runtime!r}", f"use one of: {', '.join(RUNTIMES)}")
    for option, value, least in (("batch_size", batch_size, 1), ("top_k", top_k, 1), ("workers", workers, 0),
                                 ("max_windows", max_windows, 1)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < least):
            raise ArgumentError(f"{option} must be an integer of at least {least}, got {value!r}")


def _load(model_or_name: Any, runtime: str) -> Any:
    if runtime == "onnx":
        if not isinstance(model_or_name, (str, os.PathLike)):
            raise ArgumentError("runtime 'onnx' runs an exported model directory", "pass the directory, not a loaded model")
        from zoo.predict.onnx_runtime import load_onnx_model

        return load_onnx_model(model_or_name)
    if isinstance(model_or_name, (str, os.PathLike)):
        from zoo.loading import load

        return load(os.fspath(model_or_name))
    if callable(getattr(model_or_name, "eval", None)) and hasattr(model_or_name, "zoo"):
        return model_or_name
    raise ArgumentError(f"cannot evaluate a {type(model_or_name).__name__}", "pass a model name, a model directory or a model zoo loaded")


def _model_name(model_or_name: Any, model: Any) -> str:
    return os.fspath(model_or_name) if isinstance(model_or_name, (str, os.PathLike)) else model.zoo.name

__all__ = ["EvaluationReport", "evaluate", "match_labels", "model_task"]
