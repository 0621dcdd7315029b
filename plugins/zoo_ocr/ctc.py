"""CTC decoding: greedy (the best class per column, repeats merged, blanks dropped) and prefix beam search."""
from __future__ import annotations

import math
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


def beam_decode(
    scores: torch.Tensor, labels: Sequence[str], blank: int = 0, *, beam_width: int = 8, top_n: int = 5, prune: float = 1e-4,
) -> list[list[tuple[str, float]]]:
    """The `top_n` most probable texts of each line, by CTC prefix beam search.

    A text's probability sums every column path that collapses to it (greedy decoding follows one
    path), so the most probable text can differ from the greedy reading when the model hesitates.

    Args:
        scores: the model's output [B, T, C], logits or log-probabilities.
        labels: the C class names; `blank` the CTC blank.
        beam_width: the prefixes kept after each column.
        top_n: the texts returned per line (at most `beam_width`).
        prune: a column's classes below this probability do not extend a prefix (the blank always does).

    Returns:
        Per batch row, up to `top_n` ``(text, probability)``, the most probable first.

    Raises:
        ArgumentError: the scores are not [B, T, C] with C == len(labels), or a width or count below 1.
    """
    if scores.dim() != 3 or scores.shape[2] != len(labels):
        raise ArgumentError(
            f"CTC decoding needs scores [batch, time, {len(labels)}], got {list(scores.shape)}",
            "pass the recogniser's output with the labels of its weights (model.zoo.labels)",
        )
    if beam_width < 1 or top_n < 1:
        raise ArgumentError(f"beam_width and top_n must be 1 or more, got {beam_width} and {top_n}")
    floor = math.log(prune)
    results = []
    for row in scores.detach().float().log_softmax(dim=2).tolist():
        beams = _search(row, blank, beam_width, floor)
        ranked = sorted(beams.items(), key=lambda item: -_add(*item[1]))[:top_n]
        results.append([("".join(labels[k] for k in prefix), math.exp(_add(*p))) for prefix, p in ranked])
    return results


_NONE = -math.inf


def _add(a: float, b: float) -> float:
    """log(exp(a) + exp(b)), exact at -inf."""
    if a == _NONE:
        return b
    if b == _NONE:
        return a
    return max(a, b) + math.log1p(math.exp(-abs(a - b)))


def _search(columns: list[list[float]], blank: int, width: int, floor: float) -> dict[tuple[int, ...], tuple[float, float]]:
    """Prefix -> (log p ending in a blank, log p ending in its last character) after every column."""
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, _NONE)}
    for column in columns:
        step: dict[tuple[int, ...], tuple[float, float]] = {}
        candidates = [k for k, lp in enumerate(column) if lp >= floor and k != blank]
        for prefix, (ends_blank, ends_char) in beams.items():
            total = _add(ends_blank, ends_char)
            b, c = step.get(prefix, (_NONE, _NONE))
            step[prefix] = (_add(b, total + column[blank]), c)  # a blank: the prefix stays
            last = prefix[-1] if prefix else None
            for k in candidates:
                lp = column[k]
                extended = prefix + (k,)
                b, c = step.get(extended, (_NONE, _NONE))
                if k == last:  # a repeat extends only across a blank; without one it stays the same character
                    if ends_blank > _NONE:
                        step[extended] = (b, _add(c, ends_blank + lp))
                    b, c = step[prefix]
                    step[prefix] = (b, _add(c, ends_char + lp))
                else:
                    step[extended] = (b, _add(c, total + lp))
        beams = dict(sorted(step.items(), key=lambda item: -_add(*item[1]))[:width])
    return beams
