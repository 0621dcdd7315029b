"""Reading one image file: any PIL mode, bounded by its header before decoding; the weights' evaluation transform.

Shared by training data (zoo.data.images) and prediction (zoo.predict.images)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

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


class ImageReader:
    """One image file as a model's evaluation transform makes it (`open_image`, then `image_transform`):
    a C×H×W tensor. A class, not a closure, so that DataLoader workers can be sent it.

    Raises:
        ArgumentError: (when made) the model declares no image preprocessing.
        DataError: (when called) the file cannot be used: unreadable, not an image, too large to decode
            safely, or refused by the model's own transform.
    """

    def __init__(self, preprocess: Mapping[str, Any]):
        self.transform = image_transform(preprocess)  # first: it says so when a model takes no images
        self.channels = int(preprocess["input_size"][0])

    def __call__(self, path: str | Path) -> Any:
        return self.transform(open_image(path, self.channels))


def _own_transform(name: Any) -> Callable[[Mapping[str, Any]], Callable[[Any], Any]]:
    """The builder of the transform registered as `name` (the digits models: any picture -> 8×8)."""
    from zoo.plugins import import_reference
    from zoo.registry import TransformSpec, named, registered

    spec = named(registered("register_transforms", TransformSpec), name, "image transform")
    return import_reference(spec.build, f"image transform {spec.name!r} ({spec.plugin})")
