"""Whether an export reads as the model does: the task's decode of both outputs, compared (`zoo export`)."""
from __future__ import annotations

from typing import Any, Mapping

from zoo.tasks import TaskSpec, function


def decoded_match(model: Any, exported: Any, signature: Any, task: TaskSpec, fixed: Mapping[str, int]) -> bool | None:
    """Whether the task's decode reads the same predictions (top-1, confidences to 1e-4) from the
    export's outputs as from the model's, on a fresh batch at the nominal sizes; None when the model's
    output has other dimensions than the task declares (a language model scoring the next token only).

    Args:
        model: the eager model; exported: the export loaded back (a callable on an input tensor).
        signature: the model's InputSignature (`zoo.parity`); fixed: the dimensions the export fixed.
        task: the model's task.
    """
    import torch

    from zoo.parity import flatten_outputs

    decode = function(task, "decode")
    sizes = {**signature.nominal_sizes(), **fixed}
    x = signature.sample(int(sizes.get("batch", 2)), int(sizes.get("seq", 13)), torch.Generator().manual_seed(1), sizes=sizes)
    labels = getattr(getattr(model, "zoo", None), "labels", None)
    with torch.inference_mode():
        eager = flatten_outputs(model(x))[0]
        if eager.dim() != len(task.output):
            return None
        want = decode(eager, labels, 1)
        got = decode(flatten_outputs(exported(x))[0], labels, 1)
    return _close(want, got)


def _close(a: Any, b: Any) -> bool:
    """Equal decoded predictions: the same structure and text, numbers within 1e-4."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, (int, float)):
        return abs(a - b) <= 1e-4
    return a == b
