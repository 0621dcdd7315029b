"""Predictions of a plugin's task: its `prepare` makes the batch, the model runs, its `decode` reads the output."""
from __future__ import annotations

from typing import Any, Sequence

from zoo.errors import ArgumentError
from zoo.tasks import TaskSpec, function


def predict_task(model: Any, spec: TaskSpec, inputs: Sequence[str], top_k: int = 5) -> list[dict[str, Any]]:
    """Each input's decoded prediction, one input at a time (the task's output keeps no padding).

    Args:
        model: a zoo model, or an ONNX export standing in for one.
        spec: the model's task (`zoo.tasks.task_of`).
        inputs: what `zoo predict` was given: texts, or image files when the task has no `prepare`.
        top_k: passed to the task's decode.

    Returns:
        ``{"input": item, **decoded}`` per input, in order.
    """
    import torch

    prepare = function(spec, "prepare") or _image_batch
    decode = function(spec, "decode")
    labels = getattr(getattr(model, "zoo", None), "labels", None)
    model = model.eval()
    results = []
    for item in inputs:
        batch = prepare(model, [item])
        with torch.inference_mode():
            outputs = model(batch)
        decoded = decode(outputs, labels, top_k)
        if len(decoded) != 1:
            raise ArgumentError(
                f"task {spec.name!r} ({spec.plugin}) decoded one input into {len(decoded)} predictions",
                "its decode must return one prediction per input: report it to the plugin's authors",
            )
        results.append({"input": item, **decoded[0]})
    return results


def _image_batch(model: Any, paths: list[str]) -> Any:
    """An image file as the model's preprocessing makes it, a batch of one."""
    from zoo.data.image_files import image_transform, open_image

    preprocess = model.zoo.preprocess
    return image_transform(preprocess)(open_image(paths[0], int(preprocess["input_size"][0])))[None]


def table_rows(spec: TaskSpec, results: list[dict[str, Any]]) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
    """The headers (INPUT and the task's columns) and every row of `results` (the task's `rows`)."""
    rows = function(spec, "rows")
    return ("INPUT", *spec.columns), [(r["input"], *row) for r in results for row in rows(r)]
