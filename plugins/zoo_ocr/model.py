"""CRNN: a convolutional feature extractor, bidirectional LSTMs over its columns, and a class per column.

    image [B, 1, 64, W] -> VGG features [B, C, 3, W/4 - 1] -> mean over height -> columns [B, T, C]
      -> BiLSTM -> BiLSTM -> [B, T, hidden] (forward_features) -> Linear (head) -> [B, T, classes]

The layout is EasyOCR's recogniser (`easyocr.model.vgg_model.Model`, "generation2"), so its
`english_g2` checkpoint loads key for key (`zoo_ocr.convert`). Class 0 is the CTC blank. Any width of
at least `MIN_WIDTH` pixels works: the sequence length T follows the width.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn

from zoo.heads import ZooModel

MIN_WIDTH = 8  # two 2×2 pools and a 2×2 convolution leave at least one column from 8 pixels


def time_steps(width: int) -> int:
    """The number of output columns (CTC time steps) of a line `width` pixels wide: W/4 - 1."""
    return max(1, width // 4 - 1)


def vgg_features(in_chans: int, channels: int) -> nn.Sequential:
    """EasyOCR's VGG_FeatureExtractor.ConvNet: 7 convolutions, 4 pools; the height shrinks 64 -> 3."""
    c1, c2, c3 = channels // 8, channels // 4, channels // 2
    return nn.Sequential(
        nn.Conv2d(in_chans, c1, 3, 1, 1), nn.ReLU(True),
        nn.MaxPool2d(2, 2),
        nn.Conv2d(c1, c2, 3, 1, 1), nn.ReLU(True),
        nn.MaxPool2d(2, 2),
        nn.Conv2d(c2, c3, 3, 1, 1), nn.ReLU(True),
        nn.Conv2d(c3, c3, 3, 1, 1), nn.ReLU(True),
        nn.MaxPool2d((2, 1), (2, 1)),
        nn.Conv2d(c3, channels, 3, 1, 1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(True),
        nn.Conv2d(channels, channels, 3, 1, 1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(True),
        nn.MaxPool2d((2, 1), (2, 1)),
        nn.Conv2d(channels, channels, 2, 1, 0), nn.ReLU(True),
    )


class BidirectionalLSTM(nn.Module):
    """A bidirectional LSTM over [B, T, F] and a linear layer on both directions' outputs."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int):
        super().__init__()
        self.rnn = nn.LSTM(input_size, hidden_size, bidirectional=True, batch_first=True)
        self.linear = nn.Linear(hidden_size * 2, output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.rnn(x)[0])


class CRNN(ZooModel):
    """Text-line recogniser: outputs [B, T, num_classes] scores per column (class 0: the CTC blank)."""

    group_names = ("features", "sequence", "head")

    def __init__(self, *, in_chans: int = 1, channels: int = 256, hidden_size: int = 256, num_classes: int = 97):
        super().__init__()
        self.features = vgg_features(in_chans, channels)
        self.sequence = nn.Sequential(
            BidirectionalLSTM(channels, hidden_size, hidden_size),
            BidirectionalLSTM(hidden_size, hidden_size, hidden_size),
        )
        self.num_features = hidden_size
        self.num_classes = num_classes
        self.head = self.make_head(num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        columns = self.features(x).mean(dim=2).permute(0, 2, 1)  # EasyOCR's AdaptiveAvgPool2d((None, 1))
        with onednn_off(columns):
            return self.sequence(columns)

    def make_head(self, num_classes: int) -> nn.Module:
        return nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()


@contextlib.contextmanager
def onednn_off(x: torch.Tensor) -> Iterator[None]:
    """oneDNN off while the LSTMs run on the CPU: it builds its kernels anew for every sequence length,
    and lines come in every width (one line at a new width: BiLSTMs ~0.55 s with it off, ~9 s on, on
    this shared 2-core CPU; docs/performance.md). Left alone while tracing or compiling an export."""
    tracing = torch.jit.is_tracing() or torch.compiler.is_compiling()
    if x.device.type != "cpu" or tracing or not torch.backends.mkldnn.enabled:
        yield
        return
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = True


def crnn(*, in_chans: int = 1, channels: int = 256, hidden_size: int = 256, num_classes: int = 97) -> CRNN:
    """The CRNN builder (EasyOCR generation2 sizes by default)."""
    return CRNN(in_chans=in_chans, channels=channels, hidden_size=hidden_size, num_classes=num_classes)
