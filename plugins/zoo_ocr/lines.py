"""The `text-line` transform: a picture of one line of text -> what the recogniser reads.

Grey levels, scaled to the model's height with the aspect ratio kept (EasyOCR's recogniser input:
height 64, width in proportion), normalised with the weights' mean and std. Lines of different
widths are batched by repeating each line's last column up to the widest (EasyOCR's padding).
"""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import torch

from zoo.errors import ArgumentError
from zoo_ocr.model import MIN_WIDTH

_RESAMPLING = {"nearest": 0, "bilinear": 2, "bicubic": 3, "lanczos": 1, "box": 4, "hamming": 5}


def text_line_transform(preprocess: Mapping[str, Any]) -> Callable[[Any], torch.Tensor]:
    """The transform of a line recogniser's preprocessing.

    Args:
        preprocess: ``input_size`` [1, H, W] (H is the height every line is scaled to; W only a
            nominal width), ``mean`` and ``std`` (one value each), ``interpolation``.

    Returns:
        A function from a PIL image to a tensor [1, H, width], width = H × the image's aspect ratio
        (at least the model's smallest width).
    """
    height = int(preprocess["input_size"][1])
    mean, std = float(preprocess.get("mean", [0.5])[0]), float(preprocess.get("std", [0.5])[0])
    interpolation = str(preprocess.get("interpolation", "bilinear"))
    if interpolation not in _RESAMPLING:
        raise ArgumentError(f"unknown interpolation {interpolation!r}", f"use one of: {', '.join(_RESAMPLING)}")

    def transform(image: Any) -> torch.Tensor:
        gray = image.convert("L")
        width = max(1, math.floor(height * gray.width / gray.height))
        resized = gray.resize((width, height), _RESAMPLING[interpolation])
        pixels = torch.frombuffer(bytearray(resized.tobytes()), dtype=torch.uint8).reshape(1, height, width)
        return pad_width((pixels.float() / 255 - mean) / std, MIN_WIDTH)

    return transform


def pad_width(line: torch.Tensor, width: int) -> torch.Tensor:
    """A line [C, H, W] widened to `width` by repeating its last column (unchanged when wide enough)."""
    missing = width - line.shape[-1]
    return torch.cat([line, line[..., -1:].expand(*line.shape[:-1], missing)], dim=-1) if missing > 0 else line


def batch_lines(lines: Sequence[torch.Tensor]) -> torch.Tensor:
    """Lines [C, H, W_i] -> one batch [B, C, H, max W_i], each padded with its own last column."""
    if not lines:
        raise ArgumentError("no lines to batch", "pass at least one image")
    width = max(line.shape[-1] for line in lines)
    return torch.stack([pad_width(line, width) for line in lines])
