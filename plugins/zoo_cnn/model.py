"""The classic CNNs people learn first, written in the project: LeNet-5 and a small VGG."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from zoo.errors import ArgumentError
from zoo.heads import ZooModel, activation as make_activation

ACTIVATIONS = ("tanh", "relu")


class LeNet5(ZooModel):
    """LeCun et al. (1998): conv 5×5 (6) → pool → conv 5×5 (16) → pool → fc 120 → fc 84 → classes.

    The classic takes 1×32×32 and uses tanh with average pooling ("subsampling"); `activation="relu"`
    is the common modern variant.
    """

    group_names = ("conv1", "conv2", "fc1", "fc2", "head")

    def __init__(self, in_chans: int = 1, img_size: int = 32, num_classes: int = 10, activation: str = "tanh"):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ArgumentError(f"unknown LeNet-5 activation {activation!r}", f"use one of: {', '.join(ACTIVATIONS)}")
        side = ((img_size - 4) // 2 - 4) // 2  # two valid 5×5 convolutions, each followed by a 2×2 pool
        if side < 1:
            raise ArgumentError(f"LeNet-5 needs img_size >= 16, got {img_size}")
        self.img_size = img_size
        self.conv1 = nn.Sequential(nn.Conv2d(in_chans, 6, 5), make_activation(activation), nn.AvgPool2d(2))
        self.conv2 = nn.Sequential(nn.Conv2d(6, 16, 5), make_activation(activation), nn.AvgPool2d(2))
        self.fc1 = nn.Sequential(nn.Flatten(), nn.Linear(16 * side * side, 120), make_activation(activation))
        self.fc2 = nn.Sequential(nn.Linear(120, 84), make_activation(activation))
        self.num_features = 84
        self.num_classes = num_classes
        self.head = self.make_head(num_classes)

    def make_head(self, num_classes: int) -> nn.Module:
        return nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != (self.img_size, self.img_size):  # its fully connected layers fix the size
            raise ArgumentError(
                f"this LeNet-5 takes {self.img_size}×{self.img_size} images, got {x.shape[-2]}×{x.shape[-1]}",
                f"resize the images to {self.img_size} px, or build it with img_size={x.shape[-1]}",
            )
        return self.fc2(self.fc1(self.conv2(self.conv1(x))))


class VGGMini(ZooModel):
    """VGG's recipe at small scale: stages of 3×3 conv → ReLU (× convs), then a 2×2 max pool;
    global average pooling, dropout, and a linear head."""

    def __init__(
        self,
        in_chans: int = 3,
        num_classes: int = 10,
        widths: Sequence[int] = (32, 64, 128),
        convs_per_stage: int = 2,
        batch_norm: bool = False,
        dropout: float = 0.0,
    ):
        super().__init__()
        if not widths or any(int(w) < 1 for w in widths) or convs_per_stage < 1:
            raise ArgumentError(f"widths must be positive and convs_per_stage >= 1, got {list(widths)} and {convs_per_stage}")
        if not 0.0 <= dropout < 1.0:
            raise ArgumentError(f"dropout must be in [0, 1), got {dropout}")
        stages, channels = [], in_chans
        for width in map(int, widths):
            layers: list[nn.Module] = []
            for _ in range(convs_per_stage):
                layers += [nn.Conv2d(channels, width, 3, padding=1, bias=not batch_norm)]
                layers += [nn.BatchNorm2d(width)] if batch_norm else []
                layers += [nn.ReLU(inplace=True)]
                channels = width
            stages.append(nn.Sequential(*layers, nn.MaxPool2d(2)))
        self.stages = nn.ModuleList(stages)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout))
        self.num_features = channels
        self.num_classes = num_classes
        self.head = self.make_head(num_classes)

    def make_head(self, num_classes: int) -> nn.Module:
        return nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            x = stage(x)
        return self.pool(x)

    def freeze_groups(self) -> list[tuple[str, list[nn.Parameter]]]:
        stages = [(f"stages.{i}", list(stage.parameters())) for i, stage in enumerate(self.stages)]
        return [*stages, ("head", list(self.head.parameters()))]


def lenet5(*, in_chans: int = 1, img_size: int = 32, num_classes: int = 10, activation: str = "tanh") -> LeNet5:
    """LeNet-5; `activation` is "tanh" (the classic) or "relu"."""
    return LeNet5(in_chans, img_size, num_classes, activation)


def vgg_mini(
    *,
    in_chans: int = 3,
    num_classes: int = 10,
    widths: Sequence[int] = (32, 64, 128),
    convs_per_stage: int = 2,
    batch_norm: bool = False,
    dropout: float = 0.0,
) -> VGGMini:
    """A small VGG: one stage per width, each `convs_per_stage` 3×3 convolutions and a max pool."""
    return VGGMini(in_chans, num_classes, widths, convs_per_stage, batch_norm, dropout)
