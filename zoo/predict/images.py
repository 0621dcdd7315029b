"""Images in, class scores out: the image files an input names, batches through the model, top-k."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from zoo.data.image_files import IMAGE_SUFFIXES, ImageError, ImageReader
from zoo.errors import DataError

# What `ImageFiles` gives for a file it cannot use: (message, remedy, short reason), plain strings
# so that it crosses from a DataLoader worker process.
Problem = tuple[str, str, str]


def image_inputs(inputs: Sequence[str | Path], recursive: bool = False) -> list[Path]:
    """The image files `inputs` name: each file as given, each folder's own image files in name order
    (with `recursive`, those at any depth, in path order); hidden files and folders, and other
    suffixes, are left out.

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
        found = sorted(_folder_images(item, recursive), key=lambda p: p.relative_to(item).parts)
        if not found:
            raise DataError(f"the folder {item} holds no images ({', '.join(IMAGE_SUFFIXES)})", "put images in it, or name the files")
        paths += found
    return paths


def _folder_images(folder: Path, recursive: bool) -> Iterator[Path]:
    """The image files in `folder` (and, with `recursive`, under it); hidden files and hidden folders
    (zoo's temporary ones among them) are left out, and links to folders are not followed."""
    for root, folders, files in os.walk(folder):
        folders[:] = [name for name in folders if recursive and not name.startswith(".")]
        for name in files:
            path = Path(root, name)
            if not name.startswith(".") and path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                yield path


class ImageFiles:
    """Image files as a map-style data set for a `torch.utils.data.DataLoader`: item i is
    ``(i, tensor, None)``, or ``(i, None, problem)`` for a file that cannot be used (unreadable, not
    an image, too large to decode safely), so that one bad file never stops a batch."""

    def __init__(self, paths: Sequence[str | Path], preprocess: dict[str, Any]):
        self.paths = list(paths)
        self.read = ImageReader(preprocess)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, Any, Problem | None]:
        try:
            return index, self.read(self.paths[index]), None
        except DataError as exc:  # an ImageError, or a model's own transform refusing the picture
            return index, None, (exc.message, exc.remedy or "", getattr(exc, "reason", exc.message))


Batch = tuple[list[int], Any, list[tuple[int, Problem]]]


def collate(items: Sequence[tuple[int, Any, Problem | None]]) -> Batch:
    """A batch of `ImageFiles` items: the usable images' indices, their stacked tensor (None when
    there is none), and (index, problem) of the others."""
    import torch

    good = [(index, x) for index, x, _ in items if x is not None]
    tensor = torch.stack([x for _, x in good]) if good else None
    return [index for index, _ in good], tensor, [(index, problem) for index, x, problem in items if x is None]


def image_batches(model: Any, paths: Sequence[str | Path], batch_size: int = 32, workers: int = 0) -> Iterator[Batch]:
    """`paths` in order, `batch_size` at a time, preprocessed the model's way by `workers` processes
    (0: this one); memory holds at most two batches per worker.

    Returns:
        An iterator of `collate`'s (indices, tensor or None, skipped (index, problem)) per batch.

    Raises:
        ArgumentError: the model declares no image preprocessing (said now, before any batch).
    """
    from torch.utils.data import DataLoader

    data = ImageFiles(paths, model.zoo.preprocess)
    return iter(DataLoader(data, batch_size=batch_size, num_workers=workers, collate_fn=collate))


def prefetched(items: Iterator[Any], depth: int = 2) -> Iterator[Any]:
    """`items`, made by a thread of this process up to `depth` ahead of the consumer: decoding the
    next batch overlaps the model's run of this one where the runtime releases the GIL (ONNX Runtime,
    PyTorch's kernels). An exception in the thread is raised here; leaving early stops the thread.
    """
    import queue
    import threading

    box: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def put(entry: tuple[Any, BaseException | None]) -> bool:
        while not stop.is_set():
            with contextlib.suppress(queue.Full):
                box.put(entry, timeout=0.1)
                return True
        return False

    def fill() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((end, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            put((end, exc))

    thread = threading.Thread(target=fill, name="zoo-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, error = box.get()
            if error is not None:
                raise error
            if item is end:
                return
            yield item
    finally:
        stop.set()
        thread.join()


@contextlib.contextmanager
def running(model: Any) -> Iterator[Callable[[Any], Any]]:
    """For the block, a function from a batch to the model's raw outputs (evaluation mode, no
    autograd). A convolutional PyTorch model runs image batches [N, C, H, W] in channels-last
    layout (twice as fast on CPU for lite0 at batch 32) and gets its own layout back afterwards, so
    that it saves as before; an ONNX model runs as it is."""
    import torch

    model = model.eval()
    convolutional = isinstance(model, torch.nn.Module) and any(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    layout = torch.channels_last if convolutional else torch.contiguous_format

    def run(batch: Any) -> Any:
        with torch.inference_mode():
            if isinstance(batch, torch.Tensor) and batch.dim() == 4:
                batch = batch.contiguous(memory_format=layout)
            return model(batch)

    if not convolutional:
        yield run
        return
    model.to(memory_format=torch.channels_last)
    try:
        yield run
    finally:
        model.to(memory_format=torch.contiguous_format)


@contextlib.contextmanager
def forward_pass(model: Any) -> Iterator[Callable[[Any], Any]]:
    """For the block, a function from a batch [N, C, H, W] to the model's class probabilities
    (`running`'s output, softmaxed)."""
    with running(model) as run:
        yield lambda batch: run(batch).float().softmax(dim=-1)


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
    """`classify_images`, one list per batch of `batch_size` images, each yielded as soon as it is done.

    Raises:
        ImageError: an image cannot be used (the first such one is named); `zoo.predict.files`
            skips those instead.
    """
    with forward_pass(model) as forward:
        for indices, batch, skipped in image_batches(model, paths, batch_size):
            if skipped:
                message, remedy, reason = skipped[0][1]
                raise ImageError(message, remedy, reason)
            yield ranked([str(paths[i]) for i in indices], forward(batch), model.zoo.labels, top_k)


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
