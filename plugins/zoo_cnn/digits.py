"""Any picture of a digit -> what the `*-digits` models were trained on: scikit-learn's 8×8 digits.

scikit-learn's digits (UCI optdigits) are 32×32 black-and-white bitmaps of handwritten digits,
size-normalised, then counted in 4×4 blocks: 8×8 images of 0..16, bright ink on black. A photo or
a drawing is brought to that form: grey levels, inverted when the background is light, cropped to
the ink, scaled to fill the bitmap's height, centred, binarised at 32×32, and counted in blocks.
The models then see the 8×8 image scaled to 0..1 (mlp-digits) or upsampled to 32×32
(lenet5-digits), as in training.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch.nn import functional as F

from zoo.errors import DataError

BITMAP = 32  # the optdigits bitmap side
BLOCK = 4  # its counting blocks: 32 / 4 = 8
THRESHOLD = 0.35  # grey level above which a bitmap pixel is ink


def to_model_input(digits8: torch.Tensor, size: int) -> torch.Tensor:
    """8×8 digits [N, 1, 8, 8] in 0..1 -> the model's input side (bilinear upsampling when it is not 8)."""
    if size == digits8.shape[-1]:
        return digits8
    return F.interpolate(digits8, size=(size, size), mode="bilinear", align_corners=False)


def image_to_digit(image: Any) -> torch.Tensor:
    """A PIL image of one digit (any mode) -> [1, 8, 8] in 0..1, like scikit-learn's digits / 16.

    Raises:
        DataError: the image is blank (no ink to find).
    """
    from PIL import Image

    gray = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    background = float(np.median(border))
    if background > 0.5:  # dark ink on a light page: make the ink bright, as in the data
        gray, background = 1.0 - gray, 1.0 - background
    ink = np.clip(gray - background, 0.0, None)
    if ink.max() <= 0.05:
        raise DataError("the image is blank: no digit found", "pass a picture of one digit on a plain background")
    ink /= ink.max()
    rows, cols = np.nonzero(ink > THRESHOLD)
    ink = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    # The data's digits fill the bitmap's height (every one touches the top and bottom rows), centred.
    scale = BITMAP / max(ink.shape)
    height, width = max(1, round(ink.shape[0] * scale)), max(1, round(ink.shape[1] * scale))
    resized = Image.fromarray((ink * 255).astype(np.uint8)).resize((width, height), Image.Resampling.BOX)
    bitmap = np.zeros((BITMAP, BITMAP), dtype=np.float32)
    top, left = (BITMAP - height) // 2, (BITMAP - width) // 2
    bitmap[top : top + height, left : left + width] = np.asarray(resized, dtype=np.float32) / 255.0 > THRESHOLD
    counts = bitmap.reshape(BITMAP // BLOCK, BLOCK, BITMAP // BLOCK, BLOCK).sum(axis=(1, 3))
    return torch.from_numpy(counts / (BLOCK * BLOCK))[None].float()


def digit_transform(preprocess: Mapping[str, Any]) -> Callable[[Any], torch.Tensor]:
    """The transform `zoo predict` applies for a digits model: a PIL image -> its input [C, H, W]."""
    size = int(preprocess["input_size"][-1])

    def transform(image: Any) -> torch.Tensor:
        return to_model_input(image_to_digit(image)[None], size)[0]

    return transform
