"""Turning training data into what the model eats: image tensors, token batches, corpus windows."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import DataLoader

from zoo.data.formats import TrainingData, unsuited_data
from zoo.data.images import ImageSamples, ImageTransform
from zoo.errors import ArgumentError


@dataclass
class Inputs:
    """The datasets of one run, and how to batch them and run the model on them."""

    train: Any  # with augmentation when asked for
    train_eval: Any  # the same samples, never augmented: what the cached features are made of
    val: Any
    preprocess: dict[str, Any]  # recorded in the model directory, part of the feature cache's key
    batch_size: int
    workers: int = 0
    pin_memory: bool = False
    collate: Callable[[list], Any] | None = None
    forward: Callable[[nn.Module, Any], torch.Tensor] | None = None
    tokens_per_char: float = 1.0

    def loader(self, dataset: Any) -> DataLoader:
        """Batches of `dataset` in order (the feature pass)."""
        return DataLoader(
            dataset, batch_size=self.batch_size, num_workers=self.workers,
            pin_memory=self.pin_memory, collate_fn=self.collate,
        )


def image_inputs(model: nn.Module, data: TrainingData, options: Any) -> Inputs:
    transform = ImageTransform(image_preprocess(model, data, options.image_size))
    augmented = ImageTransform(transform.preprocess, augment=options.augment)
    return Inputs(
        train=ImageSamples(data.train, augmented, options.seed),
        train_eval=ImageSamples(data.train, transform, options.seed),
        val=ImageSamples(data.val, transform, options.seed),
        preprocess=transform.preprocess,
        batch_size=options.batch_size,
        workers=options.workers,
    )


def image_preprocess(model: nn.Module, data: TrainingData, image_size: int | None) -> dict[str, Any]:
    """The model's preprocessing: its weights' (model.zoo), else timm's config, else its architecture's input."""
    preprocess = dict(getattr(model.zoo, "preprocess", None) or {})
    if "input_size" not in preprocess:
        config = getattr(model, "pretrained_cfg", None) or {}
        keys = ("input_size", "mean", "std", "interpolation", "crop_pct")
        preprocess.update({k: config[k] for k in keys if k in config and k not in preprocess})
    if "input_size" not in preprocess:
        preprocess["input_size"] = _arch_input_shape(model, data)
    if image_size is not None:
        preprocess["input_size"] = [preprocess["input_size"][0], image_size, image_size]
    return preprocess


def _arch_input_shape(model: nn.Module, data: TrainingData) -> list[int]:
    from zoo.registry import default_registry

    arch = model.zoo.arch
    spec = default_registry().archs.get(arch)
    if spec is not None and spec.input.kind != "image":  # a text model given images, say
        raise unsuited_data(model.zoo.name, spec.input.kind, data)
    if spec is None or len(spec.input.shape) != 3:
        raise ArgumentError(
            f"{arch} does not say what image size it takes", "pass image_size=... (--image-size), or a model with preprocessing"
        )
    return list(spec.input.shape)
