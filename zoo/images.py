"""Images in, class scores out: reading any PIL mode, the weights' own preprocessing, top-k."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from zoo.errors import ArgumentError, DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm")
# Transparent pixels are shown on white, as a viewer would show them.
_BACKGROUND = (255, 255, 255)


# Bounds checked on the header, before any pixel is decoded. A model's resize scales the short side
# up to its input (256 px for lite0), so a 1×60000 strip would become 256×15,360,000 pixels (11 GB);
# at 100:1 that is at most 256×25,600. 40 megapixels decode to 160 MB even as RGBA.
MAX_ASPECT = 100
MAX_PIXELS = 40_000_000


class ImageError(DataError):
    """An image that cannot be used; `reason` is the short form a data folder counts skipped files by."""

    def __init__(self, message: str, remedy: str, reason: str):
        super().__init__(message, remedy)
        self.reason = reason


def open_image(path: str | Path, channels: int = 3) -> Any:
    """A PIL image in RGB (or L for 1-channel models), from any mode: L, RGBA, CMYK, P, I;16, ...

    Raises:
        ImageError: the file is missing, unreadable, not an image PIL can read, or of a size
            (pixels, aspect ratio) that would take unbounded memory to preprocess.
    """
    from PIL import Image

    image = decode_image(path)
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        image = _to_8bit(image)
    if image.mode in ("RGBA", "LA", "RGBa", "La"):
        background = Image.new("RGB", image.size, _BACKGROUND)
        background.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
        image = background
    return image.convert("L" if channels == 1 else "RGB")


def decode_image(path: str | Path) -> Any:
    """The decoded image in its own mode, once its header's size is known to be safe (a large JPEG
    is decoded at 1/2, 1/4 or 1/8 scale instead). What `zoo predict` and the data folders both read.

    Raises:
        ImageError: as `open_image`.
    """
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():  # zoo's own limits below are lower than PIL's warning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
        _check_size(image, path)
        image.load()
    except Image.DecompressionBombError as exc:  # not an OSError: PIL refuses to decode it at all
        raise ImageError(
            f"{path} is too large to read safely: {str(exc).split(', could be', 1)[0]}",
            "resize it first; the model sees a small crop of it anyway", "too large to read safely",
        ) from None
    except PermissionError:
        raise ImageError(
            f"{path} cannot be read: permission denied", "make it readable, e.g. chmod u+r, or run as its owner",
            "unreadable: permission denied",
        ) from None
    except (OSError, SyntaxError, ValueError, UnidentifiedImageError) as exc:
        raise ImageError(
            f"{path} cannot be read as an image: {exc}", "pass a PNG or JPEG file", "corrupt or truncated image"
        ) from None
    return image


def _check_size(image: Any, path: str | Path) -> None:
    """Refuse extreme aspect ratios; draft a large JPEG down, refuse other images over MAX_PIXELS."""
    width, height = image.size
    if max(width, height) > MAX_ASPECT * max(1, min(width, height)):
        raise ImageError(
            f"{path} is {width}×{height} pixels, an aspect ratio over {MAX_ASPECT}:1 that no model input needs",
            "crop it to the part that matters first", f"aspect ratio over {MAX_ASPECT}:1",
        )
    if width * height > MAX_PIXELS and image.format == "JPEG":
        scale = next((s for s in (2, 4, 8) if width * height <= MAX_PIXELS * s * s), 8)
        image.draft(image.mode, (width // scale, height // scale))  # DCT scaling: decodes the smaller image only
        width, height = image.size
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"{path} is {width}×{height} pixels ({width * height / 1e6:.1f} megapixels), "
            f"over the {MAX_PIXELS // 1_000_000} megapixels zoo decodes",
            "downscale it first; the model sees a small copy of it anyway", f"over {MAX_PIXELS // 1_000_000} megapixels",
        )


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

    A ``"transform"`` entry names a transform a plugin registered (``"digits"``): data chooses it by
    name, and only the plugin's own ``"module:function"`` is imported.

    Raises:
        ArgumentError: the model declares no image preprocessing.
        RegistryError: the transform it names is not registered.
    """
    if "input_size" not in preprocess:
        raise ArgumentError("this model declares no image preprocessing (input_size)", "is it an image classifier?")
    if "transform" in preprocess:
        return _own_transform(preprocess["transform"])(preprocess)
    from timm.data import create_transform

    keys = ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode")
    args = {k: tuple(v) if isinstance(v, list) else v for k, v in preprocess.items() if k in keys}
    return create_transform(**args, is_training=False)


def _own_transform(name: Any) -> Callable[[Mapping[str, Any]], Callable[[Any], Any]]:
    """The builder of the transform registered as `name` (the digits models: any picture -> 8×8)."""
    from zoo.plugins import import_reference
    from zoo.registry import TransformSpec, named, registered

    spec = named(registered("register_transforms", TransformSpec), name, "image transform")
    return import_reference(spec.build, f"image transform {spec.name!r} ({spec.plugin})")


def image_inputs(inputs: Sequence[str | Path]) -> list[Path]:
    """The image files `inputs` name: each file as given, each folder's own image files in name order
    (hidden files and other suffixes left out).

    Raises:
        DataError: an input does not exist (said before any batch runs), or a folder holds no image.
    """
    paths: list[Path] = []
    for item in map(Path, inputs):
        if not item.exists():
            raise DataError(f"{item} does not exist", "check the path; a text model takes texts, an image model files")
        if not item.is_dir():
            paths.append(item)
            continue
        found = sorted(
            p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()
        )
        if not found:
            raise DataError(f"the folder {item} holds no images ({', '.join(IMAGE_SUFFIXES)})", "put images in it, or name the files")
        paths += found
    return paths


def classify_images(model: Any, paths: Sequence[str | Path], top_k: int = 5, batch_size: int = 32) -> list[dict[str, Any]]:
    """Top-k classes of each image, with the model's labels and preprocessing.

    Args:
        model: a model zoo loaded (``model.zoo.preprocess`` holds ``input_size`` and friends).
        paths: image files, any mode.
        top_k: how many classes per image.
        batch_size: images the model sees at once (memory grows with it, not with `paths`).

    Returns:
        One ``{"input", "predictions": [{"rank", "index", "label", "probability"}]}`` per image.
    """
    return [result for batch in classify_image_batches(model, paths, top_k, batch_size) for result in batch]


def classify_image_batches(
    model: Any, paths: Sequence[str | Path], top_k: int = 5, batch_size: int = 32
) -> Iterator[list[dict[str, Any]]]:
    """`classify_images`, one list per batch of `batch_size` images, each yielded as soon as it is done."""
    import torch

    info = model.zoo
    transform = image_transform(info.preprocess)
    channels = int(info.preprocess["input_size"][0])
    model = model.eval()
    for start in range(0, len(paths), batch_size):
        chunk = paths[start : start + batch_size]
        batch = torch.stack([transform(open_image(p, channels)) for p in chunk])
        with torch.inference_mode():
            probabilities = model(batch).softmax(dim=-1)
        yield ranked([str(path) for path in chunk], probabilities, info.labels, top_k)


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
