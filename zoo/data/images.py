"""Image folders: finding and checking the images, converting their modes, turning them into tensors."""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from zoo.data.folders import Skip, holds_files, read_class_folders
from zoo.data.formats import ReadOptions, TrainingData
from zoo.errors import ArgumentError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm")
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")


def detect_image_folder(path: Path) -> bool:
    """A folder whose class sub-folders (or train/ ones) hold image files."""
    return path.is_dir() and holds_files(path, IMAGE_SUFFIXES)


def read_image_folder(path: Path, options: ReadOptions) -> TrainingData:
    """One sub-folder per class of images; corrupt or truncated images are skipped and counted."""
    return read_class_folders(
        path, task="image-classification", suffixes=IMAGE_SUFFIXES, check=check_image, options=options, kind="images"
    )


def check_image(path: Path) -> Path:
    """Decode the whole image once, so a truncated file is caught here and not mid-training."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise Skip("corrupt or truncated image") from None
    return path


def open_image(path: str | Path, channels: int = 3) -> Any:
    """The image as RGB (or L for one channel): palette, CMYK, 16-bit and alpha images are converted.

    Transparent pixels are composited over white, which is what a viewer shows.
    """
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        if image.mode in ("I;16", "I;16B", "I;16L", "I"):
            image = image.point(lambda v: v / 256 if image.mode != "I" else v).convert("L")
        if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
            rgba = image.convert("RGBA")
            image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
        return image.convert("L" if channels == 1 else "RGB")


@dataclass(frozen=True)
class ImageTransform:
    """Resize, crop and normalise as the model's preprocessing says; random crops and flips with `augment`."""

    size: tuple[int, int]
    channels: int = 3
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    interpolation: str = "bilinear"
    crop_pct: float = 1.0
    augment: bool = False

    @classmethod
    def from_preprocess(cls, preprocess: Mapping[str, Any], augment: bool = False) -> ImageTransform:
        """From a model's preprocessing (timm's keys: input_size, mean, std, interpolation, crop_pct)."""
        if "input_size" not in preprocess:
            raise ArgumentError("the model's preprocessing has no input_size", "pass image_size=...")
        channels, height, width = (int(v) for v in preprocess["input_size"])
        interpolation = str(preprocess.get("interpolation", "bilinear"))
        if interpolation not in INTERPOLATIONS:
            interpolation = "bilinear"
        default_mean = (0.5,) if channels == 1 else cls.mean
        default_std = (0.5,) if channels == 1 else cls.std
        return cls(
            size=(height, width),
            channels=channels,
            mean=tuple(float(v) for v in preprocess.get("mean", default_mean)),
            std=tuple(float(v) for v in preprocess.get("std", default_std)),
            interpolation=interpolation,
            crop_pct=float(preprocess.get("crop_pct", 1.0)),
            augment=augment,
        )

    def __call__(self, image: Any, rng: random.Random | None = None) -> Any:
        """A normalised C×H×W float tensor; `rng` drives the augmentation (ignored without `augment`)."""
        import torch
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms import functional as F

        mode = InterpolationMode(self.interpolation)
        if self.augment and rng is not None:
            top, left, height, width = _random_crop_box(image.size, rng)
            image = F.resized_crop(image, top, left, height, width, list(self.size), mode)
            if rng.random() < 0.5:
                image = F.hflip(image)
        else:
            scaled = [math.floor(s / self.crop_pct) for s in self.size]
            image = F.resize(image, scaled[0] if self.size[0] == self.size[1] else scaled, mode)
            image = F.center_crop(image, list(self.size))
        tensor = F.pil_to_tensor(image).to(torch.float32).div_(255.0)
        return F.normalize(tensor, self.mean, self.std)

    def describe(self) -> dict[str, Any]:
        """The preprocessing as a model directory records it."""
        return {
            "input_size": [self.channels, *self.size],
            "mean": list(self.mean),
            "std": list(self.std),
            "interpolation": self.interpolation,
            "crop_pct": self.crop_pct,
        }


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
