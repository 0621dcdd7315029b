"""The results of a run: validation metrics, the confusion-matrix plot, the model directory written atomically."""
from __future__ import annotations

import math
import shutil
from collections import Counter
from pathlib import Path
from typing import Any, Callable, TypeVar

from torch import nn

from zoo.data.formats import TrainingData
from zoo.finetuning.inputs import Inputs
from zoo.finetuning.loop import Evaluation


Report = TypeVar("Report", bound=Callable[..., dict[str, Any]])


def needs(*, before: bool = False, predictions: bool = False) -> Callable[[Report], Report]:
    """Mark a task's fine-tune `report` with what it reads beyond the final evaluation's loss and metrics.

    Args:
        before: it reads the evaluation of the model before training (else it is given None, and the
            run spends no evaluation on it).
        predictions: it reads each validation target's top class (`Evaluation.predictions` and `.targets`,
            in sample order), which the final evaluation then collects.

    Returns:
        A decorator that records both on the function (`report.before`, `report.predictions`).
    """

    def mark(report: Report) -> Report:
        report.before, report.predictions = before, predictions  # type: ignore[attr-defined]
        return report

    return mark


@needs(predictions=True)
def classification_report(result: Evaluation, before: Evaluation | None, data: TrainingData, inputs: Inputs) -> dict[str, Any]:
    """A classifier's metrics: accuracy, loss, per-class accuracy, confusion matrix (rows: true,
    columns: predicted), majority baseline, split sizes (the `report` of zoo's classification tasks).

    Args:
        result: the final evaluation, with its predictions.
        before: unused (a classifier is not scored before training).
        data: the run's data: its classes and splits.
        inputs: unused.

    Returns:
        Plain data for the summary and the model directory.
    """
    n = len(data.classes)
    matrix = [[0] * n for _ in range(n)]
    for truth, guess in zip(result.targets, result.predictions):
        matrix[truth][guess] += 1
    per_class = {
        name: (row[i] / sum(row) if sum(row) else None) for i, (name, row) in enumerate(zip(data.classes, matrix))
    }
    majority = Counter(target for _, target in data.train).most_common(1)[0][0]
    baseline = sum(1 for _, target in data.val if target == majority) / len(data.val)
    return {
        "val_accuracy": result.accuracy,
        "val_loss": result.loss,
        "per_class_accuracy": per_class,
        "confusion_matrix": matrix,
        "majority_baseline": baseline,
        "train_size": len(data.train),
        "val_size": len(data.val),
    }


@needs(before=True)
def language_report(result: Evaluation, before: Evaluation | None, data: TrainingData, inputs: Inputs) -> dict[str, Any]:
    """A language model's metrics (the `report` of language-modeling): validation loss per token and per
    character, before and after adapting; accuracy of the next token; how many windows were scored (a
    fixed sample, the same before and after) and trained on per epoch.

    Args:
        result: the evaluation after training.
        before: the evaluation of the same windows before training (None: not run).
        data: unused (the windows are in `inputs`).
        inputs: the run's corpus samples (`zoo.finetuning.text_inputs.WindowSample`) and tokens per character.

    Returns:
        Plain data for the summary and the model directory.
    """
    tokens_per_char = inputs.tokens_per_char
    metrics = {
        "val_loss": result.loss,
        "val_nats_per_char": result.loss * tokens_per_char,
        "val_accuracy": result.accuracy,
    }
    if before is not None:
        metrics.update(val_loss_before=before.loss, val_nats_per_char_before=before.loss * tokens_per_char)
    metrics.update(
        val_windows=len(inputs.val), val_windows_total=len(inputs.val.corpus),
        train_windows_per_epoch=len(inputs.train), train_windows_total=len(inputs.train.corpus),
    )
    return metrics


def confusion_png(matrix: list[list[int]], classes: list[str], path: Path) -> None:
    """Draw the confusion matrix as a PNG: rows are true classes, columns predicted; shade by row share."""
    from PIL import Image, ImageDraw, ImageFont

    n = len(classes)
    cell = max(24, min(64, 640 // max(1, n)))
    font = ImageFont.load_default(size=max(9, cell // 3))
    label_width = min(200, 12 + max(int(font.getlength(c)) for c in classes))
    top = 40 + label_width
    image = Image.new("RGB", (label_width + n * cell + 20, top + n * cell + 20), "white")
    draw = ImageDraw.Draw(image)
    draw.text((10, 8), "confusion matrix: rows true, columns predicted", fill="black", font=font)
    columns = Image.new("RGB", (label_width, n * cell), "white")
    column_draw = ImageDraw.Draw(columns)
    for i, name in enumerate(classes):
        draw.text((6, top + i * cell + cell // 3), name[:28], fill="black", font=font)
        column_draw.text((6, i * cell + cell // 3), name[:28], fill="black", font=font)
    image.paste(columns.rotate(90, expand=True), (label_width, 36))
    for i, row in enumerate(matrix):
        total = sum(row) or 1
        for j, count in enumerate(row):
            shade = int(255 * (1 - count / total))
            box = (label_width + j * cell, top + i * cell, label_width + (j + 1) * cell - 1, top + (i + 1) * cell - 1)
            draw.rectangle(box, fill=(shade, shade, 255), outline="gray")
            draw.text((box[0] + 4, box[1] + cell // 3), str(count), fill="black" if shade > 110 else "white", font=font)
    image.save(path, format="PNG")  # `path` may be a temporary name without .png (zoo.fsio.atomic_path)


def write_output(
    model: nn.Module,
    output: Path,
    work: Path,
    *,
    metrics: dict[str, Any],
    training: dict[str, Any],
    classes: list[str],
    overwrite: bool,
) -> None:
    """Write the model directory in `work`, then publish it as `output`: never half-written.

    With `overwrite`, a previous `output` is swapped out crash-safely (`zoo.fsio.publish_dir`):
    it waits beside `output`, never inside `work`, which the next run deletes.
    """
    from zoo.fsio import publish_dir
    from zoo.modeldir import save_model_dir

    staging = work / "model"
    if staging.exists():
        shutil.rmtree(staging)
    save_model_dir(model, staging, metrics=finite(metrics), training=finite(training))
    if classes and "confusion_matrix" in metrics:  # a classifier's (a plugin task reports its own metrics)
        confusion_png(metrics["confusion_matrix"], classes, staging / "confusion_matrix.png")
    output.parent.mkdir(parents=True, exist_ok=True)
    publish_dir(staging, output, replace=overwrite)
    shutil.rmtree(work, ignore_errors=True)


def finite(value: Any) -> Any:
    """NaN and infinities as None, so the JSON files stay standard JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value
