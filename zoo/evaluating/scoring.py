"""Running the model over the data as fine-tuning's validation does, batch by batch, into a report."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable

from zoo.errors import DataError
from zoo.evaluating.data import LANGUAGE_MODELING, check_task, match_labels, model_labels, model_task, refuse_windows
from zoo.evaluating.metrics import EvaluationReport, Tally, classification_report

Progress = Callable[[str, int, int, dict], None]


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


def eval_inputs(model: Any, data: Any, batch_size: int, workers: int, max_windows: int | None, seed: int) -> Any:
    """Fine-tuning's inputs for `data` (`zoo.finetuning.inputs.Inputs`): its validation side is what is evaluated,
    through the model's own preprocessing (images), max_length (text) or context (a language model's windows):
    what the data's task (`zoo.tasks`) makes of it."""
    from zoo.tasks import function, get_task

    preprocess = model.zoo.preprocess or {}
    context = int(preprocess.get("context") or preprocess.get("max_length") or 256)
    feed = _Feed(batch_size, workers, context, val_windows=max_windows or 0, seed=seed)
    task = get_task(data.task)
    make = function(task, "inputs")
    if make is None:
        raise DataError(f"task {task.name!r} ({task.plugin}) cannot be evaluated: it says nothing of its inputs",
                        "report it to the plugin's authors")
    return make(model, data, feed)


def evaluate_classifier(model: Any, data: Any, context: dict[str, Any]) -> EvaluationReport:
    """The `evaluate` of zoo's classification tasks: accuracy, top-k, per-class precision/recall/F1 and the
    confusion matrix over the model's labels, the data's classes matched to them by name.

    Args:
        model: the model, or an ONNX stand-in.
        data: the samples (`read_samples`).
        context: what `zoo.evaluate` passes: name, split, training, batch_size, top_k, workers, device,
            max_windows, seed, progress.

    Returns:
        The report.

    Raises:
        DataError: the data is of a kind the model does not read, or holds classes it does not know.
        ArgumentError: max_windows was given, or the model carries no labels.
    """
    name = context["name"]
    refuse_windows(name, context["max_windows"], "a classifier")
    task = model_task(model)  # image or text classification: what the model reads
    check_task(name, task, data)
    labels = model_labels(model, name)
    to_model = match_labels(data.classes, labels, name)
    top_k = context["top_k"]
    tally = Tally(len(labels), top_k if len(labels) >= top_k else None)
    report, _ = run(model, data, task, tally, to_model, context)
    classification_report(report, tally, labels)
    return report


def evaluate_language_model(model: Any, data: Any, context: dict[str, Any]) -> EvaluationReport:
    """The `evaluate` of language-modeling: loss per token and per character, bits per character and
    perplexity on held-out windows (all of them, or a seeded sample of ``max_windows``; with split "val"
    the sample the fine-tune scored).

    Args:
        model: the model, or an ONNX stand-in.
        data: a corpus (`read_samples`).
        context: as `evaluate_classifier` takes it.

    Returns:
        The report.

    Raises:
        DataError: the data holds labels (it is not a corpus).
    """
    check_task(context["name"], LANGUAGE_MODELING, data)
    args = context["training"].get("args", {})
    if context["split"] == "val" and context["max_windows"] is None:  # the windows the fine-tune scored
        context = {**context, "max_windows": args.get("val_windows") or None, "seed": args.get("seed", context["seed"])}
    tally = Tally(None, None)
    report, inputs = run(model, data, LANGUAGE_MODELING, tally, None, context)
    report.nats_per_char = tally.mean_loss * inputs.tokens_per_char
    report.bits_per_char = report.nats_per_char / math.log(2)
    report.perplexity = math.exp(tally.mean_loss)
    report.windows, report.windows_total = len(inputs.val), len(getattr(inputs.val, "corpus", inputs.val))
    return report


def run(
    model: Any, data: Any, task: str, tally: Tally, to_model: list[int] | None, context: dict[str, Any],
) -> tuple[EvaluationReport, Any]:
    """Score `model` on `data`'s validation side (all of it for split "all") into `tally`, and start the report.

    Args:
        model: the model, or an ONNX stand-in; moved to the device and back to the CPU.
        data: the samples (`read_samples`), classes matched to the model's labels by `to_model`.
        task: what the model does, as the report names it.
        tally: what the scores are added to.
        to_model: the model's output index of each data class (None: the targets are the model's).
        context: as `evaluate_classifier` takes it.

    Returns:
        The report (n, loss, accuracy, time, data), and the inputs that fed the model.
    """
    import torch

    from zoo.finetuning.engine import classifies_images, pick_device
    from zoo.finetuning.text_inputs import language_model_threads
    from zoo.tasks import get_task

    where = pick_device(context["device"])
    inputs = eval_inputs(model, data, context["batch_size"], context["workers"], context["max_windows"], context["seed"])
    inputs.pin_memory = where.type == "cuda"
    dataset = inputs.val
    if len(dataset) == 0:
        raise DataError(f"{str(data.root)!r} holds nothing to evaluate", "give data with examples in it")
    movable = isinstance(model, torch.nn.Module)
    if movable:
        model.eval().to(where)
        if classifies_images(get_task(data.task)):  # as fine-tuning runs it (its features came from a channels_last model)
            model.to(memory_format=torch.channels_last)
    started = time.perf_counter()
    try:
        with language_model_threads(data.task, where):  # as fine-tuning scores one: a recurrent step is faster on one thread
            score(model, inputs.loader(dataset), inputs.forward, to_model, where, tally, len(dataset), context["progress"])
    finally:
        if movable:
            model.to("cpu").to(memory_format=torch.contiguous_format)
    report = EvaluationReport(
        model=context["name"], task=task, split=context["split"], n=len(dataset), loss=tally.mean_loss,
        seconds=time.perf_counter() - started, data=_data_summary(data, context["split"], context["training"]),
        accuracy=tally.accuracy,
    )
    return report, inputs


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
