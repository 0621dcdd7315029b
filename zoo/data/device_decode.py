"""Image batches for the feature pass: uint8 pixels per sample, converted and normalised per batch
on the device; on a GPU, JPEGs are decoded there too (nvjpeg, through torchvision.io.decode_jpeg).

The per-sample work of the evaluation transform is its geometry (resize, centre crop) on uint8
pixels; `to_tensor` and `Normalize` run once per batch, where they are one vectorised operation
(per sample, on a busy CPU, they cost more than the ONNX Runtime forward). The pixels are the
transform's own, so the batches are those of the per-sample transform up to float rounding. A
transform that is not timm's resize / crop / to-tensor / normalise (a plugin's, say) keeps the
per-sample path: `pixel_pipeline` says None.

On CUDA, a JPEG in RGB or grey whose header passes zoo's size checks is read as bytes and decoded
on the GPU in batches, then resized and cropped there by the same torchvision transforms (tensor
kernels: within a few grey levels of PIL's); any other file takes the CPU path.
"""
from __future__ import annotations

import contextlib
import queue
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from zoo.data.images import ImageSamples, ImageTransform

JPEG_MODES = ("RGB", "L")


@dataclass(frozen=True)
class PixelPipeline:
    """The evaluation transform split in two: `geometry` on one image (PIL or uint8 tensor), and the
    per-batch conversion to normalised floats."""

    geometry: Callable[[Any], Any]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    channels: int

    def normalise(self, pixels: torch.Tensor, device: torch.device) -> torch.Tensor:
        """uint8 N×C×H×W on the GPU -> normalised float32, channels_last (what to_tensor + Normalize give)."""
        x = pixels.to(device, non_blocking=True).float().div_(255)
        mean = torch.tensor(self.mean, device=device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=device).view(1, -1, 1, 1)
        return x.sub_(mean).div_(std).contiguous(memory_format=torch.channels_last)

    def normalise_hwc(self, pixels: np.ndarray) -> torch.Tensor:
        """uint8 N×H×W×C on the CPU -> normalised float32 N×C×H×W, channels_last in memory.

        In numpy: the same float32 operations in the same order as to_tensor + Normalize (so the
        same values), single-threaded; torch's threaded elementwise kernels on a busy 2-core machine
        took 100× longer for a batch than numpy (a stack of 32 images: 0.3-1.9 s against 1 ms).
        """
        x = pixels.astype(np.float32)
        x /= np.float32(255)
        x -= np.asarray(self.mean, dtype=np.float32)
        x /= np.asarray(self.std, dtype=np.float32)
        return torch.from_numpy(x).permute(0, 3, 1, 2)


def pixel_pipeline(transform: ImageTransform) -> PixelPipeline | None:
    """The split of `transform`, or None when it is not timm's resize / crop / to-tensor / normalise."""
    from torchvision import transforms as T

    steps = list(getattr(transform.evaluate, "transforms", []))
    if transform.augment or len(steps) < 2 or not isinstance(steps[-2], T.ToTensor) or not isinstance(steps[-1], T.Normalize):
        return None
    geometry = steps[:-2]
    if not all(isinstance(step, (T.Resize, T.CenterCrop)) for step in geometry):
        return None
    return PixelPipeline(T.Compose(geometry), tuple(steps[-1].mean), tuple(steps[-1].std), transform.channels)


class PixelSamples:
    """A dataset of (uint8 H×W×C pixels, target) after the transform's geometry, read on the CPU."""

    def __init__(self, samples: ImageSamples, pipeline: PixelPipeline):
        self.samples, self.pipeline = samples, pipeline

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        from zoo.data.image_files import open_image

        path, target = self.samples.samples[index]
        pixels = np.array(self.pipeline.geometry(open_image(path, self.pipeline.channels)), dtype=np.uint8)  # writable
        return (pixels[..., None] if pixels.ndim == 2 else pixels), target


class JpegOrPixels(PixelSamples):
    """For the GPU path: a JPEG it can decode as its raw bytes (decoded later, in a batch, on the
    device), any other image as CPU pixels. Items: (tensor, is_jpeg, target)."""

    def __getitem__(self, index: int) -> tuple[torch.Tensor, bool, int]:  # type: ignore[override]
        path, target = self.samples.samples[index]
        if device_decodable(Path(path)):
            from torchvision.io import read_file

            with _codecs():
                return read_file(str(path)), True, target
        pixels, target = super().__getitem__(index)
        return torch.from_numpy(pixels).permute(2, 0, 1), False, target


def device_decodable(path: Path) -> bool:
    """A JPEG in RGB or grey whose size passes zoo's checks (read from its header only)."""
    from PIL import Image

    from zoo.data.image_files import ImageError, MAX_PIXELS, _check_size

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                if image.format != "JPEG" or image.mode not in JPEG_MODES:
                    return False
                width, height = image.size
                _check_size(image, path)
    except (OSError, SyntaxError, ValueError, ImageError, Image.DecompressionBombError):
        return False  # the CPU path reads it again and reports it
    return width * height <= MAX_PIXELS  # a JPEG that would be drafted down goes the CPU way


def _samples_and_rows(dataset: Any) -> tuple[ImageSamples, list[int]] | None:
    """The ImageSamples under (nested) Subsets, and the rows of it that `dataset` holds."""
    from torch.utils.data import Subset

    rows: list[int] | None = None
    while isinstance(dataset, Subset):
        picked = list(dataset.indices)
        rows = picked if rows is None else [picked[r] for r in rows]
        dataset = dataset.dataset
    if not isinstance(dataset, ImageSamples):
        return None
    return dataset, rows if rows is not None else list(range(len(dataset)))


def fast_batches(dataset: Any, batch_size: int, device: torch.device, workers: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]] | None:
    """Normalised (images, targets) batches of `dataset` in order, decoded as the module docstring says,
    or None when `dataset` is not an image dataset with timm's evaluation transform.

    Args:
        dataset: ImageSamples, or Subsets of one.
        batch_size: images per batch.
        device: where the batches go (and, on CUDA, where JPEGs are decoded).
        workers: DataLoader processes reading and resizing on the CPU (0: a thread beside the main one).
    """
    from torch.utils.data import DataLoader, Subset

    found = _samples_and_rows(dataset)
    pipeline = pixel_pipeline(found[0].transform) if found is not None else None
    if found is None or pipeline is None:
        return None
    samples, rows = found
    gpu = device.type == "cuda"
    reader = (JpegOrPixels if gpu else PixelSamples)(samples, pipeline)
    loader = DataLoader(
        Subset(reader, rows), batch_size=batch_size, num_workers=workers, pin_memory=gpu,
        collate_fn=_collate_mixed if gpu else _collate_hwc,
    )
    batches = loader if workers else prefetched(loader)
    if gpu:
        return ((pipeline.normalise(_decode_on_device(items, flags, pipeline, device), device), targets)
                for items, flags, targets in batches)
    return ((pipeline.normalise_hwc(pixels), targets) for pixels, targets in batches)


def _collate_hwc(items: list[tuple[np.ndarray, int]]) -> tuple[np.ndarray, torch.Tensor]:
    pixels, targets = zip(*items)
    return np.stack(pixels), torch.as_tensor(targets)


def _collate_mixed(items: list[tuple[torch.Tensor, bool, int]]) -> tuple[list[torch.Tensor], list[bool], torch.Tensor]:
    tensors, flags, targets = zip(*items)
    return list(tensors), list(flags), torch.as_tensor(targets)


def _decode_on_device(items: Sequence[torch.Tensor], flags: Sequence[bool], pipeline: PixelPipeline, device: torch.device) -> torch.Tensor:
    """uint8 N×C×H×W on `device`: the JPEG bytes decoded there in one call and given the transform's
    geometry there; the other items are CPU pixels already."""
    from torchvision.io import ImageReadMode, decode_jpeg

    jpegs = [t for t, is_jpeg in zip(items, flags) if is_jpeg]
    mode = ImageReadMode.GRAY if pipeline.channels == 1 else ImageReadMode.RGB
    with _codecs():
        try:
            decoded = iter(decode_jpeg(jpegs, mode=mode, device=device) if jpegs else [])
        except RuntimeError:  # a JPEG PIL reads and nvjpeg does not: each one alone, PIL for the ones it refuses
            decoded = iter([_decode_one(t, mode, pipeline, device) for t in jpegs])
    out = [pipeline.geometry(next(decoded)) if is_jpeg else t.to(device, non_blocking=True) for t, is_jpeg in zip(items, flags)]
    return torch.stack(out)


def _decode_one(data: torch.Tensor, mode: Any, pipeline: PixelPipeline, device: torch.device) -> torch.Tensor:
    """One JPEG's full-size pixels on `device`: decoded there, or by PIL when the device's decoder fails."""
    import io

    from PIL import Image
    from torchvision.io import decode_jpeg

    try:
        return decode_jpeg(data, mode=mode, device=device)
    except RuntimeError:
        image = Image.open(io.BytesIO(data.numpy().tobytes())).convert("L" if pipeline.channels == 1 else "RGB")
        pixels = np.asarray(image, dtype=np.uint8)
        return torch.from_numpy(pixels[..., None] if pixels.ndim == 2 else pixels).permute(2, 0, 1).to(device)


@contextlib.contextmanager
def _codecs() -> Iterator[None]:
    """torchvision 0.29 warns on each call that its image codecs will move to torchcodec: nothing a user can act on."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


_DONE = object()


def prefetched(batches: Any, depth: int = 2) -> Iterator[Any]:
    """The items of `batches`, produced by a thread one step ahead of the consumer: PIL's decoding and
    resizing release the GIL, so they overlap the forward pass of the batch before."""
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in batches:
                if stop.is_set():
                    return
                ready.put(item)
            ready.put(_DONE)
        except BaseException as exc:  # handed to the consumer, raised there
            ready.put(exc)

    thread = threading.Thread(target=produce, name="zoo-prefetch", daemon=True)
    thread.start()
    try:
        while (item := ready.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                ready.get_nowait()
            except queue.Empty:
                thread.join(0.05)
