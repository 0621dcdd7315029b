"""Image folders: finding and checking the images, converting their modes, turning them into tensors."""
from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any, Mapping

from zoo.data.folders import Skip, holds_files, read_class_folders
from zoo.data.formats import ReadOptions, TrainingData
from zoo.errors import ArgumentError
from zoo.data.image_files import IMAGE_SUFFIXES, ImageError, decode_image, open_image

INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def detect_image_folder(path: Path) -> bool:
    """A folder whose class sub-folders (or train/ ones) hold image files."""
    return path.is_dir() and holds_files(path, IMAGE_SUFFIXES)


def read_image_folder(path: Path, options: ReadOptions) -> TrainingData:
    """One sub-folder per class of images; corrupt or truncated images are skipped and counted."""
    return read_class_folders(
        path, task="image-classification", suffixes=IMAGE_SUFFIXES, check=check_image, options=options, kind="images"
    )


def check_image(path: Path) -> Path:
    """Decode the whole image once, as training will (sizes checked first), so a truncated, unreadable
    or hostile file is caught here and not mid-training."""
    try:
        decode_image(path).close()
    except ImageError as exc:
        raise Skip(exc.reason) from None
    return path


def complete_preprocess(preprocess: Mapping[str, Any]) -> dict[str, Any]:
    """Every key the transforms read, defaults filled in, so a model directory records exactly what ran.

    Args:
        preprocess: at least ``input_size`` (C, H, W); timm's keys (mean, std, interpolation, crop_pct).

    Returns:
        input_size, mean, std, interpolation, crop_pct (1.0, no crop, unless the weights say otherwise).
    """
    if "input_size" not in preprocess:
        raise ArgumentError("the model's preprocessing has no input_size", "pass image_size=... (--image-size)")
    channels = int(preprocess["input_size"][0])
    interpolation = str(preprocess.get("interpolation", "bilinear"))
    return {
        "input_size": [int(v) for v in preprocess["input_size"]],
        "mean": [float(v) for v in preprocess.get("mean", (0.5,) * channels if channels != 3 else IMAGENET_MEAN)],
        "std": [float(v) for v in preprocess.get("std", (0.5,) * channels if channels != 3 else IMAGENET_STD)],
        "interpolation": interpolation if interpolation in INTERPOLATIONS else "bilinear",
        "crop_pct": float(preprocess.get("crop_pct", 1.0)),
    }


class ImageTransform:
    """The model's evaluation transform (the one `zoo predict` uses); with `augment`, random
    resized crops and flips drawn from the generator each sample is given."""

    def __init__(self, preprocess: Mapping[str, Any], augment: bool = False):
        from zoo.data.image_files import image_transform

        self.preprocess = complete_preprocess(preprocess)
        self.channels = self.preprocess["input_size"][0]
        self.augment = augment
        self.evaluate = image_transform(self.preprocess)

    def __call__(self, image: Any, rng: random.Random | None = None) -> Any:
        """A normalised C×H×W float tensor; `rng` drives the augmentation (ignored without `augment`)."""
        if not (self.augment and rng is not None):
            return self.evaluate(image)
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms import functional as F

        size = self.preprocess["input_size"][1:]
        top, left, height, width = _random_crop_box(image.size, rng)
        image = F.resized_crop(image, top, left, height, width, size, InterpolationMode(self.preprocess["interpolation"]))
        if rng.random() < 0.5:
            image = F.hflip(image)
        return F.normalize(F.to_tensor(image), self.preprocess["mean"], self.preprocess["std"])


def _random_crop_box(size: tuple[int, int], rng: random.Random) -> tuple[int, int, int, int]:
    """A random-resized-crop box (scale 0.5–1 of the area, aspect 3/4–4/3), drawn from `rng`."""
    width, height = size
    area = width * height
    for _ in range(10):
        target = area * rng.uniform(0.5, 1.0)
        aspect = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            return rng.randint(0, height - h), rng.randint(0, width - w), h, w
    return 0, 0, height, width


class ImageSamples:
    """A map-style dataset of (tensor, target); augmentation is seeded by (seed, epoch, index)."""

    def __init__(self, samples: list[tuple[Any, int]], transform: ImageTransform, seed: int = 0):
        self.samples = samples
        self.transform = transform
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw new augmentations for `epoch` (a resumed run draws the same ones)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        path, target = self.samples[index]
        rng = random.Random(f"{self.seed}:{self.epoch}:{index}") if self.transform.augment else None
        return self.transform(open_image(path, self.transform.channels), rng), target
