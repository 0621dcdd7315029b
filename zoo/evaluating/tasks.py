"""Evaluating a model of a task that names no `evaluate`: its `inputs` batch the data, its `loss` and `metrics` score it."""
from __future__ import annotations

import time
from typing import Any

from zoo.errors import DataError
from zoo.evaluating.data import refuse_windows
from zoo.evaluating.metrics import EvaluationReport
from zoo.evaluating.scoring import _data_summary, eval_inputs
from zoo.tasks import TaskSpec, function


def run_task(model: Any, data: Any, context: dict[str, Any]) -> EvaluationReport:
    """Score `model` on `data`'s validation side (all of it for split "all") with its task's loss and metrics.

    Args:
        model: the model, or an ONNX stand-in; moved to the device and back to the CPU.
        data: the samples (`read_samples`).
        context: what `zoo.evaluate` passes: task (the model's TaskSpec, the data's too), name, split,
            training, batch_size, workers, device, max_windows, seed, progress.

    Returns:
        The report: n, loss, and the task's metrics in `metrics`.

    Raises:
        DataError: the data is of another task, holds nothing, or names its classes otherwise than the model.
        ArgumentError: max_windows was given.
    """
    import torch

    from zoo.finetuning.engine import pick_device
    from zoo.finetuning.features import autocast, to_device
    from zoo.finetuning.loop import summed_loss

    spec, name, split, progress = context["task"], context["name"], context["split"], context["progress"]
    refuse_windows(name, context["max_windows"], f"a model of task {spec.name}")
    labels = getattr(model.zoo, "labels", None)
    _check_data(name, spec, data, labels)
    where = pick_device(context["device"])
    inputs = eval_inputs(model, data, context["batch_size"], context["workers"], None, context["seed"])
    if len(inputs.val) == 0:
        raise DataError(f"{str(data.root)!r} holds nothing to evaluate", "give data with examples in it")
    metrics, loss = function(spec, "metrics")(labels), function(spec, "loss")
    movable = isinstance(model, torch.nn.Module)
    if movable:
        model.eval().to(where)
    started, done, total, count = time.perf_counter(), 0, 0.0, 0
    try:
        with torch.inference_mode(), autocast(where):
            for batch, targets in inputs.loader(inputs.val):
                batch, targets = to_device(batch, where), to_device(targets, where)
                outputs = (inputs.forward(model, batch) if inputs.forward is not None else model(batch)).float()
                metrics.update(outputs, targets)
                summed, n = summed_loss(outputs, targets, loss)
                total, count, done = total + float(summed), count + n, done + len(outputs)
                if progress is not None:
                    progress("evaluate", done, len(inputs.val), {})
    finally:
        if movable:
            model.to("cpu")
    return EvaluationReport(
        model=name, task=spec.name, split=split, n=len(inputs.val), loss=total / count if count else float("nan"),
        seconds=time.perf_counter() - started, data=_data_summary(data, split, context["training"]), labels=list(labels or []),
        metrics=dict(metrics.result()),
    )


def _check_data(name: str, spec: TaskSpec, data: Any, labels: list[str] | None) -> None:
    if data.task != spec.name:
        raise DataError(
            f"{name} does {spec.name}, and {str(data.root)!r} holds {data.task} data",
            f"evaluate it on {spec.name} data, or evaluate a model of task {data.task} on this data",
        )
    if labels and data.classes and list(data.classes) != list(labels):
        raise DataError(
            f"{str(data.root)!r} names its classes {', '.join(map(repr, data.classes[:12]))}, and {name} knows "
            f"{', '.join(map(repr, labels[:12]))}",
            "evaluate on data with the classes the model was trained on, in that order",
        )
