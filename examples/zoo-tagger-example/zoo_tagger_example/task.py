"""The step-tagging task's code: batching, decoding, printing and scoring a tag per token."""
from __future__ import annotations

from typing import Any, Sequence

import torch

from zoo.finetuning.inputs import Inputs
from zoo_tagger_example.model import PAD_ID, pad, token_ids

IGNORE = -100  # padding positions: no loss, not scored


def collate(items: list[tuple[str, list[int]]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Sentences and their tags as ids [B, T] and targets [B, T], padded (targets with -100)."""
    return pad([token_ids(text) for text, _ in items], PAD_ID), pad([tags for _, tags in items], IGNORE)


def inputs(model: Any, data: Any, options: Any) -> Inputs:
    """The training data as it is: lists of (sentence, tags), batched by `collate`."""
    return Inputs(
        train=data.train, train_eval=data.train, val=data.val, preprocess={},
        batch_size=options.batch_size, workers=options.workers, collate=collate,
    )


def prepare(model: Any, texts: list[str]) -> torch.Tensor:
    """What `zoo predict` feeds the model: the sentences' ids [B, T]."""
    return pad([token_ids(text) for text in texts], PAD_ID)


def decode(outputs: torch.Tensor, labels: Sequence[str] | None, top_k: int) -> list[dict[str, Any]]:
    """Each sentence's best tag per token and its probability."""
    probabilities, best = outputs.float().softmax(-1).max(-1)
    names = list(labels or [])
    return [
        {
            "tags": [names[i] if i < len(names) else str(i) for i in row.tolist()],
            "probabilities": [round(p, 6) for p in probs.tolist()],
        }
        for row, probs in zip(best, probabilities)
    ]


def rows(prediction: dict[str, Any]) -> list[tuple[str]]:
    return [(" ".join(prediction["tags"]),)]


class TagAccuracy:
    """Tags right over all tokens, and sentences with every tag right."""

    def __init__(self, labels: Sequence[str] | None = None):
        self.right = self.tokens = self.sentences_right = self.sentences = 0

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        mask = targets != IGNORE
        hit = (outputs.argmax(-1) == targets) & mask
        self.right += int(hit.sum())
        self.tokens += int(mask.sum())
        self.sentences_right += int((hit == mask).all(-1).sum())
        self.sentences += len(targets)

    def merge(self, other: TagAccuracy) -> None:
        """Add another rank's counts (`zoo finetune --nproc`: each rank scores its share of the sentences)."""
        self.right += other.right
        self.tokens += other.tokens
        self.sentences_right += other.sentences_right
        self.sentences += other.sentences

    def result(self) -> dict[str, float]:
        nan = float("nan")
        return {
            "tag_accuracy": self.right / self.tokens if self.tokens else nan,
            "sentence_accuracy": self.sentences_right / self.sentences if self.sentences else nan,
        }
