"""Greedy CTC decoding: the best class per column, repeats merged, blanks dropped."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from zoo.errors import ArgumentError


@dataclass(frozen=True)
class Reading:
    """One line's text and, per character, the probability of the column that gave it."""

    text: str
    confidences: tuple[float, ...]


def greedy_decode(scores: torch.Tensor, labels: Sequence[str], blank: int = 0) -> list[Reading]:
    """Decode per-column scores [B, T, C] (logits or log-probabilities) into text.

    Args:
        scores: the model's output, one row of C class scores per column.
        labels: the C class names; a character per class, `blank` the CTC blank.
        blank: the index of the blank class.

    Returns:
        One Reading per batch row.

    Raises:
        ArgumentError: the scores are not [B, T, C] with C == len(labels).
    """
    if scores.dim() != 3 or scores.shape[2] != len(labels):
        raise ArgumentError(
            f"CTC decoding needs scores [batch, time, {len(labels)}], got {list(scores.shape)}",
            "pass the recogniser's output with the labels of its weights (model.zoo.labels)",
        )
    probs = scores.detach().float().softmax(dim=2)
    best, index = probs.max(dim=2)
    readings = []
    for row, prob in zip(index.tolist(), best.tolist()):
        chars, confidences, previous = [], [], blank
        for k, p in zip(row, prob):
            if k != blank and k != previous:
                chars.append(labels[k])
                confidences.append(p)
            previous = k
        readings.append(Reading("".join(chars), tuple(confidences)))
    return readings
