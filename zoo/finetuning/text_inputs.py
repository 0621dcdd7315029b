"""Text for a text model: labelled texts as padded token batches, a corpus as next-token samples.

Language-modelling samples cut each tokenized text into inputs of `n_in` tokens whose last `T`
positions each predict the following token. A model that reads a fixed window (textgenrnn:
40 characters, one prediction) gets `n_in = window, T = 1` and `next_token_logits`; a recurrent
language model gets chunks (`n_in = T = max_length`) and `position_logits`. Either way every
token of a text after its first is a target exactly once.
"""
from __future__ import annotations

import bisect
import itertools
from typing import Any

import torch
from torch import nn

from zoo.data.formats import TrainingData
from zoo.errors import ArgumentError
from zoo.finetuning.inputs import Inputs
from zoo.heads import text_tokenizer


def text_inputs(model: nn.Module, data: TrainingData, options: Any) -> Inputs:
    tokenizer = text_tokenizer(model)
    if tokenizer is None:
        raise ArgumentError(
            f"{model.zoo.name} has no tokenizer, so it cannot read text",
            "fine-tune a text model (such as lstm-text) on text, or an image model on images",
        )
    if data.task == "language-modeling":
        return corpus_inputs(model, tokenizer, data, options)
    collate = TextBatch(tokenizer, options.max_length)
    return Inputs(
        train=data.train, train_eval=data.train, val=data.val, preprocess={"max_length": options.max_length},
        batch_size=options.batch_size, workers=options.workers, collate=collate,
    )


class TextBatch:
    """Collate (text, target) pairs into (padded ids, targets) with the model's own tokenizer."""

    def __init__(self, tokenizer: Any, max_length: int):
        self.tokenizer = tokenizer
        self.max_length = max_length

    def __call__(self, samples: list[tuple[str, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        ids, _ = self.tokenizer.batch([text for text, _ in samples], max_length=self.max_length)
        return ids, torch.tensor([target for _, target in samples], dtype=torch.long)


def corpus_inputs(model: nn.Module, tokenizer: Any, data: TrainingData, options: Any) -> Inputs:
    if not callable(getattr(model, "position_logits", None)):
        raise ArgumentError(f"{model.zoo.name} is not a language model", "adapt a language model such as lstm-text to a corpus")
    window = getattr(model, "window", None)
    n_in, targets = (window, 1) if window else (options.max_length, options.max_length)
    train = NextTokenSamples([t for t, _ in data.train], tokenizer, n_in, targets)
    val = NextTokenSamples([t for t, _ in data.val], tokenizer, n_in, targets)
    val_chars = sum(len(t) for t, _ in data.val)
    return Inputs(
        train=train, train_eval=train, val=val, preprocess={"context": n_in},
        batch_size=options.batch_size, workers=options.workers,
        forward=next_token_forward if targets == 1 else position_forward,
        tokens_per_char=val.num_targets / max(1, val_chars),
    )


def next_token_forward(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    return model.next_token_logits(ids)[:, None, :]


def position_forward(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    return model.position_logits(ids)


class NextTokenSamples:
    """(inputs of n_in ids, the T ids that follow its last T positions), over every text."""

    def __init__(self, texts: list[str], tokenizer: Any, n_in: int, targets: int):
        self.n_in, self.targets = n_in, targets
        # Left padding lets the first tokens of a text be predicted too, from a shorter context.
        self.ids = [
            torch.tensor([tokenizer.pad_id] * (n_in - targets) + tokenizer.encode(text, bos=True), dtype=torch.long)
            for text in texts
        ]
        counts = [max(0, -(-(len(ids) - n_in) // targets)) for ids in self.ids]
        self.offsets = list(itertools.accumulate(counts, initial=0))
        self.num_targets = self.offsets[-1] * targets

    def __len__(self) -> int:
        return self.offsets[-1]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        text = bisect.bisect_right(self.offsets, index) - 1
        ids = self.ids[text]
        start = (index - self.offsets[text]) * self.targets
        end = start + self.n_in
        return ids[start:end], ids[end - self.targets + 1 : end + 1]
