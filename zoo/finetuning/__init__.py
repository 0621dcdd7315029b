"""Fine-tuning a new head: data → frozen backbone → (cached) features → head training → model directory.

This module is light (no torch), because `import zoo` imports it: the work happens in
`zoo.finetuning.engine`, imported when `finetune` runs.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

from zoo.errors import ArgumentError
from zoo.finetuning.options import DEVICES, FinetuneOptions, FinetuneResult


def finetune(
    model: Any,
    data: str | Path,
    *,
    progress: Callable[[str, int, int, dict], None] | None = None,
    **options: Any,
) -> FinetuneResult:
    """Give a model a new head for the classes in `data`, train it, and write a model directory.

    Args:
        model: a name `zoo.load` knows (``"resnet18"``, ``"lstm-text"``), a model directory, or an
            ``nn.Module`` following the head protocol (fine-tuned in place).
        data: an image folder, a text folder, a CSV file or a text corpus (see docs/finetune.md).
        progress: called with (stage, done, total, info) as work advances; stages are
            ``"features"``, ``"train"`` (per batch) and ``"epoch"``.
        options: see `FinetuneOptions`: ``epochs``, ``batch_size``, ``lr``, ``strategy``
            (``"head"``, ``"last-n:K"``, ``"full"``), ``augment``, ``val_split``, ``seed``,
            ``device``, ``output``, ``resume``, ...; the strategy defaults to ``head``, and to
            ``full`` for a language model adapting to a corpus.

    Returns:
        The output directory, the validation metrics and the history.
    """
    valid = {f.name for f in dataclasses.fields(FinetuneOptions)}
    unknown = sorted(set(options) - valid)
    if unknown:
        raise ArgumentError(f"finetune takes no option {', '.join(map(repr, unknown))}", f"valid options: {', '.join(sorted(valid))}")
    from zoo.finetuning.engine import run

    return run(model, Path(data), FinetuneOptions(**options), progress)


__all__ = ["DEVICES", "FinetuneOptions", "FinetuneResult", "finetune"]
