"""tinycnn: conv → relu → conv → relu → global average pool → linear, with zoo's head protocol."""
from __future__ import annotations

import torch
from torch import nn

from zoo.heads import ZooModel


class TinyCNN(ZooModel):
    group_names = ("stem", "body", "head")

    def __init__(self, num_classes: int, width: int):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.ReLU())
        self.body = nn.Sequential(nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.num_features = 2 * width
        self.num_classes = num_classes
        self.head = self.make_head(num_classes)

    def make_head(self, num_classes: int) -> nn.Module:
        return nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.stem(x)).flatten(1)


def tinycnn(*, num_classes: int = 10, width: int = 8) -> TinyCNN:
    """The example plugin's small CNN for 1×28×28 images."""
    return TinyCNN(num_classes, width)
