"""What the loop trains: a head on cached features, or a model on a data loader."""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable

import torch
from torch import nn
from torch.utils.data import DataLoader, RandomSampler, Subset

from zoo.errors import ArgumentError
from zoo.finetuning.distributed import Ranks, Wrapped, shard
from zoo.finetuning.features import pre_logits
from zoo.finetuning.loop import epoch_seed
from zoo.finetuning.strategy import Strategy, train_mode


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _samples_per_epoch(size: int, batch_size: int, steps: int | None) -> int:
    """The whole training set, or `steps` batches of it (a random subset, new each epoch); one sample
    fewer when the last batch would hold a single one, which BatchNorm cannot normalise in training."""
    samples = size if steps is None else min(size, steps * batch_size)
    if batch_size > 1 and samples > 1 and samples % batch_size == 1:
        samples -= 1
    return samples


def _rank_batches(order: torch.Tensor, batch_size: int, ranks: Ranks, least: int) -> list[list[int]]:
    """This rank's part of each global batch of `order`: the batch split in `ranks.world` parts whose
    sizes differ by one at most. A last batch too small to give every rank `least` samples is dropped."""
    batches = list(order.split(batch_size))
    if batches and len(batches[-1]) < ranks.world * least:
        batches.pop()
    return [batch.tensor_split(ranks.world)[ranks.rank].tolist() for batch in batches]


def _epoch_order(size: int, seed: int, epoch: int) -> torch.Tensor:
    # The same permutation RandomSampler draws in ModelOnLoader: both paths see the same batches.
    return torch.randperm(size, generator=_generator(epoch_seed(seed, epoch)))


def drawn_rows(size: int, batch_size: int, seed: int, steps: int | None, epochs: int) -> torch.Tensor | None:
    """The training rows (ascending) that `epochs` epochs of `steps` batches draw; None when each epoch
    takes them all. Features are computed for these rows only."""
    if steps is None:
        return None
    samples = _samples_per_epoch(size, batch_size, steps)
    return torch.cat([_epoch_order(size, seed, epoch)[:samples] for epoch in range(epochs)]).unique()


class HeadOnFeatures:
    """The classifier alone, trained on features the frozen backbone computed once (for every training
    row, or for the `rows` of `size` that the epochs draw)."""

    def __init__(
        self,
        classifier: nn.Module,
        param_groups: list[dict[str, Any]],
        train: tuple[torch.Tensor, torch.Tensor],
        val: tuple[torch.Tensor, torch.Tensor],
        batch_size: int,
        seed: int,
        steps_per_epoch: int | None = None,
        rows: torch.Tensor | None = None,
        size: int | None = None,
    ):
        self.module = classifier
        self.param_groups = param_groups
        self.train, self.val = train, val
        self.rows, self.size = rows, len(train[1]) if size is None else size
        self.batch_size = batch_size
        self.seed = seed
        self.samples = _samples_per_epoch(self.size, batch_size, steps_per_epoch)
        self.steps_per_epoch = math.ceil(self.samples / batch_size)
        self.sharded = False  # every rank trains the head on all the features, identically

    def train_mode(self) -> None:
        self.module.train()

    def logits(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.module(inputs)

    def train_batches(self, epoch: int) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        order = _epoch_order(self.size, self.seed, epoch)[: self.samples]
        if self.rows is not None:  # positions among the rows whose features were computed
            order = torch.searchsorted(self.rows, order)
        for start in range(0, len(order), self.batch_size):
            index = order[start : start + self.batch_size]
            yield self.train[0][index], self.train[1][index]

    def val_batches(self) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        features, targets = self.val
        for start in range(0, len(targets), self.batch_size):
            yield features[start : start + self.batch_size], targets[start : start + self.batch_size]


class ModelOnLoader:
    """The model run on every batch: what `last-n`, `full`, augmentation and language models need.

    With several ranks, each global batch of `batch_size` is split between them, training runs under
    DistributedDataParallel (`wrap`), and each rank validates its shard of the validation set.
    """

    def __init__(
        self,
        model: nn.Module,
        strategy: Strategy,
        param_groups: list[dict[str, Any]],
        train: Any,
        val: Any,
        *,
        batch_size: int,
        seed: int,
        workers: int,
        steps_per_epoch: int | None = None,
        pin_memory: bool = False,
        collate: Callable[[list], Any] | None = None,
        forward: Callable[[nn.Module, Any], torch.Tensor] | None = None,
        ranks: Ranks | None = None,
    ):
        self.module = model
        self.strategy = strategy
        self.param_groups = param_groups
        self.train, self.val = train, val
        self.batch_size = batch_size
        self.seed = seed
        self.loader_args = {"num_workers": workers, "pin_memory": pin_memory, "collate_fn": collate}
        self.forward = forward
        self.samples = _samples_per_epoch(len(train), batch_size, steps_per_epoch)
        self.steps_per_epoch = math.ceil(self.samples / batch_size)
        self.ranks = ranks or Ranks()
        self.sharded = self.ranks.active
        self.wrapped: Wrapped | None = None
        self.least = 1

    def wrap(self, device: torch.device, batchnorm: bool) -> None:
        """Train through DistributedDataParallel (the classifier alone when the backbone is frozen); with
        BatchNorm layers training, each rank gets two samples of a batch at least (SyncBatchNorm on CUDA)."""
        if batchnorm and device.type != "cuda":
            self.least = 2  # on the CPU each rank normalises its own share of the batch
        if len(_rank_batches(torch.arange(self.batch_size), self.batch_size, self.ranks, self.least)) == 0:
            raise ArgumentError(
                f"--batch-size {self.batch_size} is split between {self.ranks.world} ranks, and each needs "
                f"{self.least} sample{'s' if self.least > 1 else ''} of it at least",
                f"use --batch-size {self.ranks.world * self.least} or more: it is the global batch",
            )
        self.wrapped = Wrapped(self.module, self._logits, device, batchnorm=batchnorm)
        self.steps_per_epoch = len(_rank_batches(torch.arange(self.samples), self.batch_size, self.ranks, self.least))

    def unwrap(self) -> None:
        """The module as it was before `wrap` (its original BatchNorm layers), holding what it learned."""
        if self.wrapped is not None:
            self.wrapped.unwrap()
            self.wrapped = None

    def train_mode(self) -> None:
        if self.strategy.frozen_backbone:
            # Exactly what the cached path computes: the whole backbone in eval, the classifier training.
            self.module.eval()
            self.module.get_classifier().train()
        else:
            train_mode(self.module)

    def logits(self, inputs: Any) -> torch.Tensor:
        if self.wrapped is not None and torch.is_grad_enabled():  # a training step, through DDP
            return self.wrapped.ddp(inputs)
        return self._logits(self.module, inputs)  # evaluation: the module itself, on this rank's shard

    def _logits(self, model: nn.Module, inputs: Any) -> torch.Tensor:
        if self.forward is not None:
            return self.forward(model, inputs)
        if self.strategy.frozen_backbone:
            return model.get_classifier()(pre_logits(model, inputs))
        return model(inputs)

    def train_batches(self, epoch: int) -> Iterable[tuple[Any, torch.Tensor]]:
        if hasattr(self.train, "set_epoch"):
            self.train.set_epoch(epoch)
        seed = epoch_seed(self.seed, epoch)
        if self.sharded:  # the one-process order, each global batch split between the ranks
            order = _epoch_order(len(self.train), self.seed, epoch)[: self.samples]
            batches = _rank_batches(order, self.batch_size, self.ranks, self.least)
            return DataLoader(self.train, batch_sampler=batches, generator=_generator(seed + 1), **self.loader_args)
        sampler = RandomSampler(self.train, num_samples=self.samples, generator=_generator(seed))
        # The loader's own generator seeds its workers, so no draw from the global RNG happens here.
        return DataLoader(
            self.train, batch_size=self.batch_size, sampler=sampler, generator=_generator(seed + 1), **self.loader_args
        )

    def val_batches(self) -> Iterable[tuple[Any, torch.Tensor]]:
        val = Subset(self.val, list(shard(len(self.val), self.ranks))) if self.sharded else self.val
        return DataLoader(val, batch_size=self.batch_size, shuffle=False, **self.loader_args)
