"""The multilayer perceptron: hidden blocks of Linear → [BatchNorm] → activation → [Dropout]."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from zoo.errors import ArgumentError
from zoo.heads import ZooModel, activation as make_activation


class MLP(ZooModel):
    """Flattens its input, runs the hidden blocks (the features), then a linear head."""

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int],
        num_classes: int,
        activation: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
    ):
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ArgumentError(f"dropout must be in [0, 1), got {dropout}")
        if any(int(width) < 1 for width in hidden):
            raise ArgumentError(f"hidden widths must be positive integers, got {list(hidden)}")
        widths = [in_features, *(int(w) for w in hidden)]
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.Linear(a, b, bias=not batch_norm),
                *([nn.BatchNorm1d(b)] if batch_norm else []),
                make_activation(activation),
                *([nn.Dropout(dropout)] if dropout else []),
            )
            for a, b in zip(widths, widths[1:])
        )
        self.num_features = widths[-1]
        self.num_classes = num_classes
        self.head = self.make_head(num_classes)

    def make_head(self, num_classes: int) -> nn.Module:
        return nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for block in self.blocks:
            x = block(x)
        return x

    def freeze_groups(self) -> list[tuple[str, list[nn.Parameter]]]:
        blocks = [(f"blocks.{i}", list(block.parameters())) for i, block in enumerate(self.blocks)]
        return [*blocks, ("head", list(self.head.parameters()))]


def mlp(
    *,
    in_features: int = 64,
    hidden: Sequence[int] = (128, 64),
    num_classes: int = 10,
    activation: str = "relu",
    dropout: float = 0.0,
    batch_norm: bool = False,
) -> MLP:
    """A multilayer perceptron; `activation` is one of zoo_mlp.ACTIVATIONS."""
    return MLP(in_features, hidden, num_classes, activation, dropout, batch_norm)
