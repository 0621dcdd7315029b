"""Text for a text model: labelled texts as padded token batches, a corpus as next-token samples.

Language-modelling samples cut each tokenized text into inputs of `n_in` tokens whose last `T`
positions each predict the following token. A model that reads a fixed window (textgenrnn:
40 characters, one prediction) gets `n_in = window, T = 1` and `next_token_logits`; a recurrent
language model gets chunks (`n_in = T = max_length`) and `position_logits`. Either way every
token of a text after its first is a target exactly once.

A corpus holds millions of windows, so neither an epoch nor an evaluation runs over all of them:
an epoch trains on a seeded sample of `EPOCH_WINDOWS` (or --steps-per-epoch batches), drawn anew
each epoch, and the model is scored before and after training on one fixed, seeded sample of
held-out windows (--val-windows; 0 scores them all). lstm-text reads a fixed window through
attention, so it cannot carry a state through the text instead.
"""
from __future__ import annotations

import bisect
import contextlib
import itertools
import os
from typing import Any, Iterator

import torch
from torch import nn

from zoo.data.formats import TrainingData
from zoo.errors import ArgumentError
from zoo.finetuning.inputs import Inputs
from zoo.heads import text_tokenizer

EPOCH_WINDOWS = 16_384  # a corpus epoch's sample when --steps-per-epoch does not say


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


@contextlib.contextmanager
def language_model_threads(task: str, device: torch.device) -> Iterator[None]:
    """One intra-op thread while a language model trains and is scored on the CPU, unless OMP_NUM_THREADS
    chooses. A recurrent step multiplies small matrices (batch × hidden), and threads waiting for each other
    at every step cost more than they share: a lstm-text training step (batch 32 × 40) took 34 ms of CPU on
    one thread and 293 ms on two on this project's shared 2-core machine (benchmarks/lstm_threads.py)."""
    if task != "language-modeling" or device.type != "cpu" or "OMP_NUM_THREADS" in os.environ:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


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
    train = CorpusWindows([t for t, _ in data.train], tokenizer, n_in, targets)
    val = CorpusWindows([t for t, _ in data.val], tokenizer, n_in, targets)
    val_chars = sum(len(t) for t, _ in data.val)
    per_epoch = options.steps_per_epoch * options.batch_size if options.steps_per_epoch else EPOCH_WINDOWS
    sample = WindowSample(train, per_epoch, options.seed, redraw=True)
    return Inputs(
        train=sample, train_eval=sample, val=WindowSample(val, options.val_windows or len(val), options.seed),
        preprocess={"context": n_in}, batch_size=options.batch_size, workers=options.workers,
        forward=next_token_forward if targets == 1 else position_forward,
        tokens_per_char=val.num_targets / max(1, val_chars),
    )


def next_token_forward(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    return model.next_token_logits(ids)[:, None, :]


def position_forward(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    return model.position_logits(ids)


class CorpusWindows:
    """Every window of a corpus, by number: (inputs of n_in ids, the T ids that follow its last T positions).

    Window k of a text starts at token k·T, so each token of a text after its first is a target exactly
    once. Only the texts' ids (int32) and one cumulative count per text are held: a window is found
    from its number by arithmetic, never through a per-window index.
    """

    def __init__(self, texts: list[str], tokenizer: Any, n_in: int, targets: int):
        self.n_in, self.targets = n_in, targets
        dtype = torch.int16 if len(tokenizer) <= 2**15 else torch.int32
        # Left padding lets the first tokens of a text be predicted too, from a shorter context.
        self.ids = [
            torch.tensor([tokenizer.pad_id] * (n_in - targets) + tokenizer.encode(text, bos=True), dtype=dtype)
            for text in texts
        ]
        counts = [max(0, -(-(len(ids) - n_in) // targets)) for ids in self.ids]
        self.offsets = list(itertools.accumulate(counts, initial=0))
        self.num_targets = self.offsets[-1] * targets

    def __len__(self) -> int:
        return self.offsets[-1]

    def __getitem__(self, number: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= number < len(self):
            raise IndexError(f"window {number} of {len(self)}")
        text = bisect.bisect_right(self.offsets, number) - 1
        ids = self.ids[text]
        start = (number - self.offsets[text]) * self.targets
        end = start + self.n_in
        return ids[start:end].long(), ids[end - self.targets + 1 : end + 1].long()


class WindowSample:
    """A seeded sample of `size` windows of a corpus (all of them when it has no more), spread evenly:
    one window drawn at random from each of `size` equal stretches of the corpus.

    Validation keeps one sample, so that the scores before and after training are paired; training
    (`redraw`) draws a new one each epoch (`set_epoch`, which the loop calls), the same for the same
    seed and epoch, so a resumed run replays its epochs. Memory: one int64 per sampled window.
    """

    def __init__(self, corpus: CorpusWindows, size: int, seed: int, *, redraw: bool = False):
        self.corpus, self.seed, self.redraw = corpus, seed, redraw
        self.size = min(size, len(corpus))
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Draw the windows of `epoch` (validation keeps its one sample)."""
        stream = epoch if self.redraw else -1
        # A tuple of ints hashes alike in every process (PYTHONHASHSEED salts str and bytes only).
        generator = torch.Generator().manual_seed(hash((self.seed, stream, 0x5EED)) & (2**63 - 1))
        self.numbers = spread_sample(len(self.corpus), self.size, generator)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.corpus[int(self.numbers[index])]


def spread_sample(total: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """`size` distinct numbers in [0, total), one drawn uniformly from each of `size` equal stretches
    (all of them, in order, when `size >= total`).

    Args:
        total: how many there are to choose from.
        size: how many to choose.
        generator: the seeded source of the draws.

    Returns:
        An int64 tensor of `min(size, total)` ascending numbers.
    """
    if size >= total:
        return torch.arange(total)
    bounds = torch.arange(size + 1, dtype=torch.int64) * total // size
    widths = bounds[1:] - bounds[:-1]
    return bounds[:-1] + (torch.rand(size, generator=generator, dtype=torch.float64) * widths).long()
