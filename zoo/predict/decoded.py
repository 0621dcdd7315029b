"""Predictions through a model's task (its TaskSpec): the inputs it reads, its `prepare`, the model,
its `decode`, a batch at a time, so that memory holds one batch however many inputs there are."""
from __future__ import annotations

from typing import Any, Iterator, Sequence

from zoo.errors import ArgumentError
from zoo.tasks import TaskSpec, function


def task_inputs(spec: TaskSpec, inputs: Sequence[str]) -> list[str]:
    """What `zoo predict INPUTS` means for the task: image files (a folder stands for its own image
    files, in name order) when it reads images, the texts as given when it reads texts.

    Raises:
        DataError: an image input does not exist, or a folder holds no image (before any batch runs).
    """
    if spec.reads == "texts":
        return list(inputs)
    from zoo.predict.images import image_inputs

    return [str(path) for path in image_inputs(inputs)]


def predict_batches(
    model: Any, spec: TaskSpec, inputs: Sequence[str], top_k: int = 5, batch_size: int = 32
) -> Iterator[list[dict[str, Any]]]:
    """Each batch of `batch_size` inputs decoded, yielded as soon as it is done.

    Each input is prepared on its own and inputs whose prepared tensors share a shape run through the
    model together, so that no input is padded to another's size (a tagger would tag the padding, a
    line reader read it) and a batch of equal-sized images runs as one.

    Args:
        model: a zoo model, or an ONNX export standing in for one.
        spec: the model's task (`zoo.tasks.task_of`).
        inputs: image files or texts, as `task_inputs` gives them.
        top_k: passed to the task's decode.
        batch_size: inputs prepared and held at once.

    Yields:
        ``{"input": item, **decoded}`` per input of the batch, in order.

    Raises:
        ArgumentError: the task's decode did not give one prediction per input.
    """
    from zoo.predict.images import prefetched, running
    from zoo.tasks.classification import prepare_images

    prepare = function(spec, "prepare") or prepare_images
    decode = function(spec, "decode")
    labels = getattr(getattr(model, "zoo", None), "labels", None)

    def prepared_chunks() -> Iterator[tuple[list[str], list[Any]]]:
        for start in range(0, len(inputs), batch_size):
            chunk = list(inputs[start : start + batch_size])
            yield chunk, [prepare(model, [item]) for item in chunk]

    with running(model) as run:
        for chunk, prepared in prefetched(prepared_chunks(), depth=1):  # the next batch is read while this one runs
            results: list[dict[str, Any]] = []
            for items, tensors in _same_shape_runs(chunk, prepared):
                decoded = decode(run(tensors), labels, top_k)
                if len(decoded) != len(items):
                    given = "one input" if len(items) == 1 else f"{len(items)} inputs"
                    raise ArgumentError(
                        f"task {spec.name!r} ({spec.plugin}) decoded {given} into {len(decoded)} predictions",
                        "its decode must return one prediction per input: report it to the plugin's authors",
                    )
                results += [{"input": item, **prediction} for item, prediction in zip(items, decoded)]
            yield results


def predict_task(model: Any, spec: TaskSpec, inputs: Sequence[str], top_k: int = 5, batch_size: int = 32) -> list[dict[str, Any]]:
    """Every input's decoded prediction (`predict_batches`, the batches joined).

    Returns:
        ``{"input": item, **decoded}`` per input, in order.
    """
    return [result for batch in predict_batches(model, spec, inputs, top_k, batch_size) for result in batch]


def table_cells(spec: TaskSpec, results: Sequence[dict[str, Any]]) -> list[tuple[str, ...]]:
    """The table rows of decoded `results`: the input and, for each of the task's `rows`, one cell per
    column (None as empty).

    Raises:
        ArgumentError: the task's rows do not give one value per column.
    """
    rows = function(spec, "rows")
    cells = []
    for result in results:
        for row in rows(result):
            if len(row) != len(spec.columns):
                raise ArgumentError(
                    f"task {spec.name!r} ({spec.plugin}) gave a row of {len(row)} value(s) for its {len(spec.columns)} "
                    f"column(s) {', '.join(spec.columns)}",
                    "its rows must give one value per column: report it to the plugin's authors",
                )
            cells.append(tuple("" if c is None else str(c) for c in (result["input"], *row)))
    return cells


def _same_shape_runs(items: list[str], prepared: list[Any]) -> Iterator[tuple[list[str], Any]]:
    """Consecutive inputs whose prepared batches of one share a shape, and those batches joined; a
    batch that is no tensor (a tuple a model unpacks, say) runs alone, as prepared."""
    import torch

    def shape(batch: Any) -> Any:
        return batch.shape if isinstance(batch, torch.Tensor) else None

    start = 0
    for end in range(1, len(items) + 1):
        if end == len(items) or shape(prepared[end]) is None or shape(prepared[end]) != shape(prepared[start]):
            joined = torch.cat(prepared[start:end]) if end - start > 1 else prepared[start]
            yield items[start:end], joined
            start = end
