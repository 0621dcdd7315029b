"""The text-recognition task's code: batching lines and transcripts, CTC loss, decoding, scoring.

Targets of a batch are three tensors: the transcripts' class indices end to end, each transcript's
length, and each line's number of output columns (its own width's, not the padded batch's).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

import torch

from zoo.errors import DataError
from zoo.finetuning.inputs import Inputs
from zoo_ocr.ctc import beam_decode, greedy_decode
from zoo_ocr.lines import batch_lines, text_line_transform
from zoo_ocr.model import time_steps
from zoo_ocr.scoring import TextScore

BLANK = 0
Targets = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def charset(labels: Sequence[str]) -> dict[str, int]:
    """Character -> class index: every one-character label but the blank's."""
    return {label: i for i, label in enumerate(labels) if i != BLANK and len(label) == 1}


class LineSamples:
    """``(line tensor [1, H, W], class indices)`` for each ``(image path, transcript)``."""

    def __init__(self, items: Sequence[tuple[str, str]], preprocess: dict[str, Any], classes: dict[str, int]):
        self.items, self.classes = items, classes
        self.transform = text_line_transform(preprocess)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, list[int]]:
        from zoo.data.image_files import open_image

        path, text = self.items[index]
        return self.transform(open_image(path, 1)), [self.classes[c] for c in text]


def collate(items: list[tuple[torch.Tensor, list[int]]]) -> tuple[torch.Tensor, Targets]:
    """Lines -> one batch (each padded with its own last column) and the CTC targets."""
    lines = [line for line, _ in items]
    targets = torch.tensor([k for _, indices in items for k in indices], dtype=torch.long)
    target_lengths = torch.tensor([len(indices) for _, indices in items], dtype=torch.long)
    input_lengths = torch.tensor([time_steps(line.shape[-1]) for line in lines], dtype=torch.long)
    return batch_lines(lines), (targets, target_lengths, input_lengths)


def check_charset(data: Any, classes: dict[str, int], model_name: str) -> None:
    """Every transcript's characters are in the model's character list.

    Raises:
        DataError: naming the characters it lacks and a line that holds each.
    """
    missing: dict[str, str] = {}
    for path, text in [*data.train, *data.val]:
        for c in text:
            if c not in classes and c not in missing:
                missing[c] = path
    if missing:
        shown = ", ".join(f"{c!r} (in {Path(p).name})" for c, p in list(missing.items())[:8])
        more = f" and {len(missing) - 8} more" if len(missing) > 8 else ""
        raise DataError(
            f"the transcripts hold {len(missing)} character(s) {model_name} cannot write: {shown}{more}",
            "replace or remove them in the label file, or fine-tune a recogniser whose character list has them",
        )


def inputs(model: Any, data: Any, options: Any) -> Inputs:
    """The lines as the model's preprocessing makes them, batched by `collate`."""
    labels = list(getattr(model.zoo, "labels", None) or [])
    classes = charset(labels)
    check_charset(data, classes, model.zoo.name)
    preprocess = dict(model.zoo.preprocess or {})
    return Inputs(
        train=LineSamples(data.train, preprocess, classes), train_eval=LineSamples(data.train, preprocess, classes),
        val=LineSamples(data.val, preprocess, classes), preprocess=preprocess,
        batch_size=options.batch_size, workers=options.workers, collate=collate,
    )


def loss(outputs: torch.Tensor, targets: Targets, label_smoothing: float = 0.0) -> tuple[torch.Tensor, int]:
    """CTC loss summed over the batch's lines, and their number of characters (the mean is per character).

    A line too narrow for its transcript (fewer columns than CTC needs) adds nothing (zero_infinity).
    """
    flat, target_lengths, input_lengths = targets
    log_probs = outputs.float().log_softmax(-1).permute(1, 0, 2)  # [T, B, C]
    input_lengths = input_lengths.clamp(max=log_probs.shape[0])
    summed = torch.nn.functional.ctc_loss(
        log_probs, flat, input_lengths, target_lengths, blank=BLANK, reduction="sum", zero_infinity=True
    )
    return summed, max(1, int(target_lengths.sum()))


def _names(labels: Sequence[str] | None, classes: int) -> list[str]:
    return list(labels) if labels else ["" if k == BLANK else f"[{k}]" for k in range(classes)]


def decode(outputs: torch.Tensor, labels: Sequence[str] | None, top_k: int = 1) -> list[dict[str, Any]]:
    """Each line's text (greedy CTC), the probability of each character, and the least of them; with
    `top_k` above 1 also the `top_k` most probable texts and their probabilities (prefix beam search)."""
    names = _names(labels, outputs.shape[-1])
    readings = greedy_decode(outputs, names, BLANK)
    decoded = [
        {
            "text": r.text,
            "confidence": round(min(r.confidences), 6) if r.confidences else 0.0,
            "confidences": [round(p, 6) for p in r.confidences],
        }
        for r in readings
    ]
    if top_k > 1:
        beams = beam_decode(outputs, names, BLANK, beam_width=max(8, 2 * top_k), top_n=top_k)
        for prediction, texts in zip(decoded, beams):
            prediction["alternatives"] = [{"text": text, "probability": round(p, 6)} for text, p in texts]
    return decoded


def rows(prediction: dict[str, Any]) -> list[tuple[str, float]]:
    return [(prediction["text"], prediction["confidence"])]


def prepare(model: Any, paths: list[str]) -> torch.Tensor:
    """What `zoo predict` feeds the model: the line images, batched."""
    from zoo.data.image_files import open_image

    transform = text_line_transform(model.zoo.preprocess)
    return batch_lines([transform(open_image(path, 1)) for path in paths])


def transcripts(targets: Targets, labels: Sequence[str]) -> list[str]:
    """The batch's transcripts back from its targets."""
    flat, lengths, _ = targets
    texts, start = [], 0
    for n in lengths.tolist():
        texts.append("".join(labels[k] for k in flat[start:start + n].tolist()))
        start += n
    return texts


class Metrics:
    """Character error rate, word accuracy and line accuracy of the greedy readings (zoo_ocr.scoring)."""

    def __init__(self, labels: Sequence[str] | None = None):
        self.labels, self.score = labels, TextScore()

    def update(self, outputs: torch.Tensor, targets: Targets) -> None:
        names = _names(self.labels, outputs.shape[-1])
        columns = targets[2].clamp(max=outputs.shape[1]).tolist()  # each line's own columns, not its padding
        for truth, row, n in zip(transcripts(targets, names), outputs, columns):
            self.score.add(truth, greedy_decode(row[None, :n], names, BLANK)[0].text)

    def merge(self, other: Metrics) -> None:
        """Add another rank's totals (`zoo finetune --nproc`: each rank scores its share of the lines)."""
        for field in dataclasses.fields(self.score):
            setattr(self.score, field.name, getattr(self.score, field.name) + getattr(other.score, field.name))

    def result(self) -> dict[str, float]:
        return self.score.result()
