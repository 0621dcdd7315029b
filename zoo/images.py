"""Images in, class scores out: reading any PIL mode, the weights' own preprocessing, top-k."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from zoo.errors import ArgumentError, DataError, PluginError

# Transparent pixels are shown on white, as a viewer would show them.
_BACKGROUND = (255, 255, 255)


def open_image(path: str | Path, channels: int = 3) -> Any:
    """A PIL image in RGB (or L for 1-channel models), from any mode: L, RGBA, CMYK, P, I;16, ...

    Raises:
        DataError: the file is missing or not an image PIL can read.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(path)
        image.load()
    except Image.DecompressionBombError as exc:  # not an OSError: PIL refuses to decode it at all
        raise DataError(
            f"{path} is too large to read safely: {str(exc).split(', could be', 1)[0]}",
            "resize it first; the model sees a small crop of it anyway",
        ) from None
    except (OSError, UnidentifiedImageError) as exc:
        raise DataError(f"{path} cannot be read as an image: {exc}", "pass a PNG or JPEG file") from None
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        image = _to_8bit(image)
    if image.mode in ("RGBA", "LA", "RGBa", "La"):
        background = Image.new("RGB", image.size, _BACKGROUND)
        background.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
        image = background
    return image.convert("L" if channels == 1 else "RGB")


def _to_8bit(image: Any) -> Any:
    """16-bit or float grey levels stretched to 0..255."""
    import numpy as np
    from PIL import Image

    array = np.asarray(image, dtype=np.float64)
    low, high = float(array.min()), float(array.max())
    scaled = (array - low) / (high - low) * 255 if high > low else np.zeros_like(array)
    return Image.fromarray(scaled.astype(np.uint8), mode="L")


def image_transform(preprocess: Mapping[str, Any]) -> Callable[[Any], Any]:
    """The evaluation transform of a weights' preprocessing (timm's: resize, centre crop, normalise).

    Raises:
        ArgumentError: the model declares no image preprocessing.
    """
    if "input_size" not in preprocess:
        raise ArgumentError("this model declares no image preprocessing (input_size)", "is it an image classifier?")
    if "transform" in preprocess:  # the model's own, "module:function" (the digits models: any picture -> 8×8)
        return _own_transform(preprocess["transform"])(preprocess)
    from timm.data import create_transform

    keys = ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode")
    args = {k: tuple(v) if isinstance(v, list) else v for k, v in preprocess.items() if k in keys}
    return create_transform(**args, is_training=False)


def _own_transform(target: str) -> Callable[[Mapping[str, Any]], Callable[[Any], Any]]:
    import importlib

    module, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise PluginError(f"image transform {target!r} cannot be imported: {exc}", "reinstall the plugin that declares it") from None


def classify_images(model: Any, paths: Sequence[str | Path], top_k: int = 5) -> list[dict[str, Any]]:
    """Top-k classes of each image, with the model's labels and preprocessing.

    Args:
        model: a model zoo loaded (``model.zoo.preprocess`` holds ``input_size`` and friends).
        paths: image files, any mode.
        top_k: how many classes per image.

    Returns:
        One ``{"input", "predictions": [{"rank", "index", "label", "probability"}]}`` per image.
    """
    import torch

    info = model.zoo
    transform = image_transform(info.preprocess)
    channels = int(info.preprocess["input_size"][0])
    batch = torch.stack([transform(open_image(p, channels)) for p in paths])
    with torch.inference_mode():
        probabilities = model.eval()(batch).softmax(dim=-1)
    return ranked([str(path) for path in paths], probabilities, info.labels, top_k)


def ranked(inputs: Sequence[str], probabilities: Any, labels: Sequence[str] | None, top_k: int) -> list[dict[str, Any]]:
    """Each input's `top_k` classes from probabilities [batch, classes], named by `labels` (else by index).

    Returns:
        One ``{"input", "predictions": [{"rank", "index", "label", "probability"}]}`` per input.
    """
    values, indices = probabilities.topk(min(top_k, probabilities.shape[-1]), dim=-1)
    labels = labels or []
    return [
        {
            "input": item,
            "predictions": [
                {
                    "rank": rank + 1,
                    "index": int(index),
                    "label": labels[int(index)] if int(index) < len(labels) else str(int(index)),
                    "probability": round(float(value), 6),
                }
                for rank, (value, index) in enumerate(zip(row_values, row_indices))
            ],
        }
        for item, row_values, row_indices in zip(inputs, values, indices)
    ]
