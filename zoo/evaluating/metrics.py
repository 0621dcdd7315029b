"""What an evaluation measured: the report, the running tally over batches, the per-class figures."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any


@dataclass
class EvaluationReport:
    """What `zoo.evaluate` measured. Classification fills accuracy, top-k, per-class and the confusion
    matrix (rows: true labels, columns: predicted, over the model's labels that occur in either);
    a language model fills the per-character figures and the window counts."""

    model: str
    task: str
    split: str
    n: int
    loss: float  # mean cross-entropy in nats: per example, or per predicted token for a language model
    seconds: float
    data: dict[str, Any] = field(default_factory=dict)
    accuracy: float | None = None  # a language model's: of the next token
    top_k: int | None = None
    top_k_accuracy: float | None = None
    labels: list[str] = field(default_factory=list)
    per_class: dict[str, dict[str, Any]] = field(default_factory=dict)
    macro: dict[str, float] = field(default_factory=dict)
    confusion_matrix: list[list[int]] = field(default_factory=list)
    nats_per_char: float | None = None
    bits_per_char: float | None = None
    perplexity: float | None = None  # per token: exp(loss)
    windows: int | None = None
    windows_total: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)  # a plugin task's (its accumulator's result)

    @property
    def examples_per_second(self) -> float:
        return self.n / self.seconds if self.seconds > 0 else math.inf

    def to_dict(self) -> dict[str, Any]:
        """Plain data (what `zoo eval --json` prints): the figures that apply to the task, NaN as None."""
        from zoo.finetuning.report import finite

        values = {**dataclasses.asdict(self), "examples_per_second": round(self.examples_per_second, 3)}
        return {k: finite(v) for k, v in values.items() if v not in (None, [], {})}


class Tally:
    """Running sums over batches: loss, correct, top-k correct, and the confusion counts (memory: one batch)."""

    def __init__(self, num_classes: int | None, top_k: int | None):
        import torch

        self.loss, self.count, self.correct, self.top_k_correct = 0.0, 0, 0, 0
        self.top_k = top_k
        self.num_classes = num_classes
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.long) if num_classes else None

    def add(self, logits: Any, targets: Any) -> None:
        """Add a batch: logits [n, classes] and target indices [n] (-100: no target)."""
        import torch.nn.functional as F

        keep = targets != -100
        logits, targets = logits[keep], targets[keep]
        self.loss += float(F.cross_entropy(logits, targets, reduction="sum"))
        predicted = logits.argmax(-1)
        self.correct += int((predicted == targets).sum())
        self.count += len(targets)
        if self.top_k is not None:
            self.top_k_correct += int((logits.topk(self.top_k, dim=-1).indices == targets[:, None]).any(-1).sum())
        if self.confusion is not None:
            n = self.num_classes
            self.confusion += (targets * n + predicted).bincount(minlength=n * n).view(n, n).cpu()

    @property
    def mean_loss(self) -> float:
        return self.loss / self.count if self.count else math.nan

    @property
    def accuracy(self) -> float:
        return self.correct / self.count if self.count else math.nan


def classification_report(report: EvaluationReport, tally: Tally, labels: list[str]) -> None:
    """Fill top-k, per-class precision/recall/F1/support, macro averages and the confusion matrix of `report`.

    The matrix keeps the model's labels that are true or predicted at least once, in the model's order;
    a precision without predictions and a recall without support are None, F1 is 2TP / (support + predicted).
    """
    full = tally.confusion.tolist() if tally.confusion is not None else []
    kept = [i for i in range(len(labels)) if sum(full[i]) or sum(row[i] for row in full)]
    matrix = [[full[i][j] for j in kept] for i in kept]
    report.labels = [labels[i] for i in kept]
    report.confusion_matrix = matrix
    if tally.top_k is not None:
        report.top_k, report.top_k_accuracy = tally.top_k, tally.top_k_correct / max(1, tally.count)
    for position, label in enumerate(report.labels):
        hits = matrix[position][position]
        support, predicted = sum(matrix[position]), sum(row[position] for row in matrix)
        report.per_class[label] = {
            "precision": hits / predicted if predicted else None,
            "recall": hits / support if support else None,
            "f1": 2 * hits / (support + predicted),
            "support": support,
        }
    present = [m for m in report.per_class.values() if m["support"]]
    report.macro = {
        key: sum(m[key] or 0.0 for m in present) / len(present) for key in ("precision", "recall", "f1")
    } if present else {}


