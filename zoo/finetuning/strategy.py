"""Fine-tuning strategies, defined on the head protocol's freeze groups so they mean the same everywhere.

`head` trains the last group (the classifier); `last-n:K` also the K groups before it; `full` every
group. Trainable groups get discriminative learning rates: `lr * lr_decay**d` for the group `d`
steps below the head. Modules whose parameters are all frozen stay in eval mode, so a frozen
BatchNorm keeps its running statistics and a frozen dropout stays off.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

from torch import nn

from zoo.errors import ArgumentError
from zoo.heads import freeze_groups


class RandomBackboneWarning(UserWarning):
    """A model without pretrained weights: the strategy trains more than a head, or only a head on random features."""


# The frame of the code that called zoo.finetune: finetune -> engine.run -> engine._run -> choose_strategy.
_CALLER = 5


def choose_strategy(given: str | None, task: str, model_name: str, pretrained: bool) -> Strategy:
    """The strategy asked for, or the default: `full` for a language model adapting to a corpus and for a
    model with no pretrained weights (a head on a random backbone learns next to nothing), else `head`.

    Warns (`RandomBackboneWarning`) when the backbone is random: a note when the default becomes `full`,
    a warning when `head` is asked for all the same.
    """
    if given is None:
        if task == "language-modeling":
            return Strategy("full")
        if pretrained:
            return Strategy("head")
        warnings.warn(
            f"{model_name} has no pretrained weights, so all of it trains (strategy full), not only a new head",
            RandomBackboneWarning, stacklevel=_CALLER,
        )
        return Strategy("full")
    strategy = Strategy.parse(given)
    if strategy.frozen_backbone and not pretrained:
        warnings.warn(
            f"{model_name} has no pretrained weights: strategy head trains a new head on a random, frozen backbone, "
            "which rarely beats the majority baseline (use strategy full)",
            RandomBackboneWarning, stacklevel=_CALLER,
        )
    return strategy


@dataclass(frozen=True)
class Strategy:
    """Which freeze groups train: `head`, `last-n:K` or `full`."""

    name: str
    n: int = 0

    @classmethod
    def parse(cls, text: str) -> Strategy:
        """`head`, `full`, or `last-n:K` with K a positive integer."""
        if text in ("head", "full"):
            return cls(text)
        prefix, _, count = text.partition(":")
        if prefix == "last-n" and count.isdigit() and int(count) > 0:
            return cls("last-n", int(count))
        raise ArgumentError(f"unknown strategy {text!r}", "use head, last-n:K (K a positive integer) or full")

    def __str__(self) -> str:
        return f"last-n:{self.n}" if self.name == "last-n" else self.name

    @property
    def frozen_backbone(self) -> bool:
        """Only the classifier trains: the backbone's features can be computed once and cached."""
        return self.name == "head"

    def trainable(self, num_groups: int) -> range:
        """The indices of the groups that train, out of `num_groups` ordered stem → head."""
        if self.name == "full":
            return range(num_groups)
        return range(max(0, num_groups - 1 - self.n), num_groups)


def apply_strategy(model: nn.Module, strategy: Strategy, lr: float, lr_decay: float) -> list[dict[str, Any]]:
    """Freeze what `strategy` leaves frozen; return AdamW parameter groups with discriminative rates.

    Args:
        model: a model following the head protocol (its classifier already reset).
        strategy: which groups train.
        lr: the head's learning rate.
        lr_decay: the factor between one group's rate and the next group's, towards the stem.

    Returns:
        Parameter groups (``params``, ``lr``, ``name``), stem → head, only the trainable ones.
    """
    groups = freeze_groups(model)
    if not groups:
        raise ArgumentError(f"{type(model).__name__} declares no freeze groups")
    if strategy.name == "last-n" and strategy.n > len(groups) - 1:
        names = ", ".join(name for name, _ in groups)
        raise ArgumentError(
            f"strategy {strategy} asks for more groups than {_label(model)} has: it has {len(groups)} freeze groups "
            f"({names}), the head and {len(groups) - 1} below it",
            f"use last-n:K with K from 1 to {len(groups) - 1}, or full" if len(groups) > 1 else "use head or full",
        )
    trainable = strategy.trainable(len(groups))
    grouped = {id(p) for _, params in groups for p in params}
    # Parameters no group names belong with the stem: they train only under `full`.
    stray = [p for p in model.parameters() if id(p) not in grouped]
    groups = [(groups[0][0], [*stray, *groups[0][1]]), *groups[1:]]
    for param in model.parameters():
        param.requires_grad_(False)
    param_groups = []
    for index in trainable:
        name, params = groups[index]
        for param in params:
            param.requires_grad_(True)
        if params:
            rate = lr * lr_decay ** (len(groups) - 1 - index)
            param_groups.append({"params": params, "lr": rate, "name": name})
    return param_groups


def _label(model: nn.Module) -> str:
    info = getattr(model, "zoo", None)
    return getattr(info, "name", None) or type(model).__name__


def train_mode(model: nn.Module) -> None:
    """`model.train()`, except the modules whose parameters are all frozen, which stay in eval."""
    model.train()
    for module in frozen_modules(model):
        module.eval()


def trains_batchnorm(model: nn.Module) -> bool:
    """Whether `train_mode` leaves a BatchNorm layer training (it needs batches of two or more)."""
    frozen = {id(sub) for module in frozen_modules(model) for sub in module.modules()}
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) and id(m) not in frozen for m in model.modules())


def frozen_modules(model: nn.Module) -> list[nn.Module]:
    """The outermost modules that have parameters and none of them trainable."""
    found: list[nn.Module] = []

    def visit(module: nn.Module) -> None:
        params = list(module.parameters())
        if params and not any(p.requires_grad for p in params):
            found.append(module)
            return
        for child in module.children():
            visit(child)

    visit(model)
    return found
