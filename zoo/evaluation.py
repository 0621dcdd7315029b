"""Evaluating a model on data: accuracy, per-class precision/recall/F1, confusion, top-k, loss; nats per char.

The data is read as fine-tuning reads it (`zoo.data.formats`, the seeded split) and fed as
fine-tuning's validation feeds it (`zoo.finetuning.inputs` / `text_inputs`: the model's own
preprocessing, tokenizer and context), so `split="val"` on a directory `zoo finetune` wrote selects
the samples it held out and reproduces the accuracy it reported. Classes are matched to the model's
labels by name. This module imports no torch at the top: `import zoo` imports it.
"""
from __future__ import annotations

import dataclasses
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from zoo.errors import ArgumentError, DataError

SPLITS = ("all", "val")
RUNTIMES = ("eager", "onnx")
LANGUAGE_MODELING = "language-modeling"
Progress = Callable[[str, int, int, dict], None]


@dataclass
class EvaluationReport:
    """What `zoo.evaluate` measured. Classification fills accuracy, top-k, per-class and the confusion
    matrix (rows: true labels, columns: predicted, over the model's labels that occur in either);
    a language model fills the per-character figures and the window counts."""

    model: str
    task: str
    split: str
    n: int
    loss: float  # mean cross-entropy in nats: per example, or per predicted token for a language model
    seconds: float
    data: dict[str, Any] = field(default_factory=dict)
    accuracy: float | None = None  # a language model's: of the next token
    top_k: int | None = None
    top_k_accuracy: float | None = None
    labels: list[str] = field(default_factory=list)
    per_class: dict[str, dict[str, Any]] = field(default_factory=dict)
    macro: dict[str, float] = field(default_factory=dict)
    confusion_matrix: list[list[int]] = field(default_factory=list)
    nats_per_char: float | None = None
    bits_per_char: float | None = None
    perplexity: float | None = None  # per token: exp(loss)
    windows: int | None = None
    windows_total: int | None = None

    @property
    def examples_per_second(self) -> float:
        return self.n / self.seconds if self.seconds > 0 else math.inf

    def to_dict(self) -> dict[str, Any]:
        """Plain data (what `zoo eval --json` prints): the figures that apply to the task, NaN as None."""
        from zoo.finetuning.report import finite

        values = {**dataclasses.asdict(self), "examples_per_second": round(self.examples_per_second, 3)}
        return {k: finite(v) for k, v in values.items() if v not in (None, [], {})}


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
        DataError: the data holds classes the model does not know (named, with its labels), is empty,
            or is of a kind the model does not read.
        ArgumentError: a bad option, or ``split="val"`` for a model without a training summary.
    """
    _check_options(split, batch_size, top_k, workers, max_windows, runtime)
    model = _load(model_or_name, runtime)
    name = _model_name(model_or_name, model)
    task = model_task(model)
    training = _training_summary(model_or_name, model, name, required=split == "val")
    if max_windows is not None and task != LANGUAGE_MODELING:
        raise ArgumentError("max_windows applies to language models", f"drop it: {name} is a classifier")
    if split == "val" and task == LANGUAGE_MODELING and max_windows is None:  # the windows the fine-tune scored
        max_windows, seed = training["args"].get("val_windows") or None, training["args"].get("seed", seed)
    samples = _read(Path(data), task, split, training, data_format, text_column, label_column, workers)
    _check_task(name, task, samples)
    to_model = None if task == LANGUAGE_MODELING else match_labels(samples.classes, _labels(model, name), name)
    return _run(model, name, task, split, samples, to_model, training, batch_size, top_k, workers, device,
                max_windows, seed, progress)


def model_task(model: Any) -> str:
    """language-modeling, text-classification or image-classification: what the model does."""
    from zoo.heads import is_language_model, text_tokenizer

    if is_language_model(model):
        return LANGUAGE_MODELING
    return "text-classification" if text_tokenizer(model) is not None else "image-classification"


def match_labels(classes: list[str], labels: list[str], name: str) -> list[int]:
    """The model's output index of each data class, matched by name (the data may hold fewer classes).

    Raises:
        DataError: classes the model does not know, all named, with the model's labels.
    """
    index = {label: i for i, label in enumerate(labels)}
    unknown = [c for c in classes if c not in index]
    if unknown:
        shown = ", ".join(labels[:20]) + (f" and {len(labels) - 20} more" if len(labels) > 20 else "")
        raise DataError(
            f"the data's class{'es' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
            f"{'are' if len(unknown) > 1 else 'is'} not among {name}'s labels ({shown})",
            "evaluate on classes the model was trained on (folders named after its labels), or fine-tune it on these",
        )
    return [index[c] for c in classes]


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


def _training_summary(model_or_name: Any, model: Any, name: str, required: bool) -> dict[str, Any]:
    """The `training` record of the model's directory (the given path, or where a loaded model came from);
    {} when it has none and none is `required`."""
    from zoo.modeldir import is_model_dir, read_config

    folder = model_or_name if isinstance(model_or_name, (str, os.PathLike)) else model.zoo.source
    training = read_config(folder).get("training") if folder and is_model_dir(folder) else None
    if not isinstance(training, dict) or not isinstance(training.get("args"), dict):
        if not required:
            return {}
        raise ArgumentError(
            f"{name} has no training summary: --split val needs a model directory written by zoo finetune",
            "evaluate on all of the data (--split all), or give the directory zoo finetune wrote",
        )
    return training


def _read(
    path: Path, task: str, split: str, training: dict[str, Any], data_format: str | None,
    text_column: str | None, label_column: str | None, workers: int,
) -> Any:
    """The data as fine-tuning read it; with split "val" its held-out samples, else all of them."""
    from zoo.data.formats import ReadOptions, TrainingData, read_data
    from zoo.data.text import CORPUS_SUFFIXES, check_text

    if task == LANGUAGE_MODELING and path.is_file() and path.suffix.lower() in CORPUS_SUFFIXES and split == "all":
        return TrainingData("text-file", task, path, [], [], [(check_text(path), -1)])
    args = training.get("args", {})
    steps = args.get("steps_per_epoch")
    options = ReadOptions(
        val_split=args.get("val_split", 0.2), seed=args.get("seed", 0), strict=bool(args.get("strict_data", False)),
        text_column=text_column or args.get("text_column", "text"), label_column=label_column or args.get("label_column", "label"),
        workers=workers, max_val=steps * args["batch_size"] if split == "val" and steps else None,
    )
    data = read_data(path, data_format or args.get("data_format"), options)
    if split == "val":
        recorded = training.get("data", {}).get("fingerprint")
        if recorded and recorded != data.fingerprint:
            warnings.warn(
                f"{str(path)!r} is not the data the model was fine-tuned on as it was then (files, sizes or times differ): "
                "the validation split may hold other samples than the ones it held out",
                stacklevel=3,
            )
        return dataclasses.replace(data, train=[])
    from torch.utils.data import ConcatDataset

    return dataclasses.replace(data, train=[], val=ConcatDataset([data.train, data.val]))


def _check_task(name: str, task: str, data: Any) -> None:
    """The data must be of the kind the model reads: images, labelled text, or a corpus."""
    from zoo.data.formats import unsuited_data

    if data.task == task:
        return
    if task == LANGUAGE_MODELING:
        raise DataError(
            f"{name} is a language model, and {str(data.root)!r} holds labelled {data.task.split('-')[0]}s",
            "evaluate it on a corpus: a .txt/.md file, or a folder of them (--data-format corpus)",
        )
    if data.task == LANGUAGE_MODELING:
        raise DataError(
            f"{name} is a text classifier, and {str(data.root)!r} was read as a corpus (no labels)",
            "give it labelled text: one sub-folder of .txt files per class, or a CSV with a label column",
        )
    raise unsuited_data(name, "image" if task == "image-classification" else "tokens", data)


def _labels(model: Any, name: str) -> list[str]:
    labels = getattr(model.zoo, "labels", None)
    if not labels:
        raise ArgumentError(
            f"{name} carries no labels, so the data's classes cannot be matched to its outputs by name",
            "evaluate a model with class names: a directory zoo finetune wrote, or weights that name their classes",
        )
    return list(labels)


@dataclass(frozen=True)
class _Feed:
    """The options fine-tuning's input builders read: no augmentation, the model's own sizes; a language
    model's held-out windows all, or a seeded sample of `val_windows`."""

    batch_size: int
    workers: int
    max_length: int
    val_windows: int = 0
    seed: int = 0
    steps_per_epoch: int | None = None
    image_size: int | None = None
    augment: bool = False


def _inputs(model: Any, data: Any, batch_size: int, workers: int, max_windows: int | None, seed: int) -> Any:
    """Fine-tuning's inputs for `data` (its validation side is what is evaluated)."""
    from zoo.finetuning.inputs import image_inputs
    from zoo.finetuning.text_inputs import text_inputs

    preprocess = model.zoo.preprocess or {}
    context = int(preprocess.get("context") or preprocess.get("max_length") or 256)
    feed = _Feed(batch_size, workers, context, val_windows=max_windows or 0, seed=seed)
    if data.task == "image-classification":
        return image_inputs(model, data, feed)
    return text_inputs(model, data, feed)


def _run(
    model: Any, name: str, task: str, split: str, data: Any, to_model: list[int] | None, training: dict[str, Any],
    batch_size: int, top_k: int, workers: int, device_name: str, max_windows: int | None, seed: int,
    progress: Progress | None,
) -> EvaluationReport:
    import torch

    from zoo.finetuning.engine import pick_device

    device = pick_device(device_name)
    inputs = _inputs(model, data, batch_size, workers, max_windows, seed)
    inputs.pin_memory = device.type == "cuda"
    dataset = inputs.val
    if len(dataset) == 0:
        raise DataError(f"{str(data.root)!r} holds nothing to evaluate", "give data with examples in it")
    labels = None if to_model is None else _labels(model, name)
    tally = Tally(len(labels) if labels else None, top_k if labels and len(labels) >= top_k else None)
    movable = isinstance(model, torch.nn.Module)
    if movable:
        model.eval().to(device)
        if task == "image-classification":  # as fine-tuning runs it (its features came from a channels_last model)
            model.to(memory_format=torch.channels_last)
    started = time.perf_counter()
    try:
        score(model, inputs.loader(dataset), inputs.forward, to_model, device, tally, len(dataset), progress)
    finally:
        if movable:
            model.to("cpu").to(memory_format=torch.contiguous_format)
    seconds = time.perf_counter() - started
    report = EvaluationReport(
        model=name, task=task, split=split, n=len(dataset), loss=tally.mean_loss, seconds=seconds,
        data=_data_summary(data, split, training), accuracy=tally.accuracy,
    )
    if task == LANGUAGE_MODELING:
        report.nats_per_char = tally.mean_loss * inputs.tokens_per_char
        report.bits_per_char = report.nats_per_char / math.log(2)
        report.perplexity = math.exp(tally.mean_loss)
        report.windows, report.windows_total = len(dataset), len(getattr(dataset, "corpus", dataset))
    else:
        classification_report(report, tally, labels or [])
    return report


def _data_summary(data: Any, split: str, training: dict[str, Any]) -> dict[str, Any]:
    summary = {
        "path": str(data.root.absolute()), "format": data.format, "classes": list(data.classes),
        "skipped": data.skipped_counts(), "skip_report": data.skip_report(),
    }
    if split == "val":
        summary["val_split"] = training["args"].get("val_split")
        summary["seed"] = training["args"].get("seed")
        summary["matches_training"] = training.get("data", {}).get("fingerprint") == data.fingerprint
    return summary


def score(
    model: Any, batches: Any, forward: Callable | None, to_model: list[int] | None, device: Any, tally: Tally,
    total: int, progress: Progress | None = None,
) -> None:
    """Run the model over `batches` of (inputs, data class indices) in inference mode, adding to `tally`.

    Args:
        model: the model (on `device`), or an ONNX stand-in.
        batches: (inputs, targets) batches; targets -100 are ignored.
        forward: how to get logits from (model, inputs) (a language model's); None calls the model.
        to_model: the model's output index of each data class (None: targets are already the model's).
        device: where the inputs go.
        tally: what the scores are added to.
        total: the number of examples, for progress.
        progress: called with ("evaluate", done, total, {}) after each batch.
    """
    import torch

    from zoo.finetuning.features import autocast, to_device

    remap = None if to_model is None else torch.tensor(to_model, device=device)
    done = 0
    with torch.inference_mode(), autocast(device):
        for inputs, targets in batches:
            inputs, targets = to_device(inputs, device), targets.to(device)
            logits = forward(model, inputs) if forward is not None else model(inputs)
            done += len(targets)
            targets = targets.flatten()
            tally.add(logits.float().flatten(0, -2), targets if remap is None else remap[targets])
            if progress is not None:
                progress("evaluate", done, total, {})


class Tally:
    """Running sums over batches: loss, correct, top-k correct, and the confusion counts (memory: one batch)."""

    def __init__(self, num_classes: int | None, top_k: int | None):
        import torch

        self.loss, self.count, self.correct, self.top_k_correct = 0.0, 0, 0, 0
        self.top_k = top_k
        self.num_classes = num_classes
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.long) if num_classes else None

    def add(self, logits: Any, targets: Any) -> None:
        """Add a batch: logits [n, classes] and target indices [n] (-100: no target)."""
        import torch.nn.functional as F

        keep = targets != -100
        logits, targets = logits[keep], targets[keep]
        self.loss += float(F.cross_entropy(logits, targets, reduction="sum"))
        predicted = logits.argmax(-1)
        self.correct += int((predicted == targets).sum())
        self.count += len(targets)
        if self.top_k is not None:
            self.top_k_correct += int((logits.topk(self.top_k, dim=-1).indices == targets[:, None]).any(-1).sum())
        if self.confusion is not None:
            n = self.num_classes
            self.confusion += (targets * n + predicted).bincount(minlength=n * n).view(n, n).cpu()

    @property
    def mean_loss(self) -> float:
        return self.loss / self.count if self.count else math.nan

    @property
    def accuracy(self) -> float:
        return self.correct / self.count if self.count else math.nan


def classification_report(report: EvaluationReport, tally: Tally, labels: list[str]) -> None:
    """Fill top-k, per-class precision/recall/F1/support, macro averages and the confusion matrix of `report`.

    The matrix keeps the model's labels that are true or predicted at least once, in the model's order;
    a precision without predictions and a recall without support are None, F1 is 2TP / (support + predicted).
    """
    full = tally.confusion.tolist() if tally.confusion is not None else []
    kept = [i for i in range(len(labels)) if sum(full[i]) or sum(row[i] for row in full)]
    matrix = [[full[i][j] for j in kept] for i in kept]
    report.labels = [labels[i] for i in kept]
    report.confusion_matrix = matrix
    if tally.top_k is not None:
        report.top_k, report.top_k_accuracy = tally.top_k, tally.top_k_correct / max(1, tally.count)
    for position, label in enumerate(report.labels):
        hits = matrix[position][position]
        support, predicted = sum(matrix[position]), sum(row[position] for row in matrix)
        report.per_class[label] = {
            "precision": hits / predicted if predicted else None,
            "recall": hits / support if support else None,
            "f1": 2 * hits / (support + predicted),
            "support": support,
        }
    present = [m for m in report.per_class.values() if m["support"]]
    report.macro = {
        key: sum(m[key] or 0.0 for m in present) / len(present) for key in ("precision", "recall", "f1")
    } if present else {}

