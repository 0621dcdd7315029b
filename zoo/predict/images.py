"""Images in, class scores out: the image files an input names, batches through the model, top-k."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Sequence

from zoo.data.image_files import IMAGE_SUFFIXES, image_transform, open_image
from zoo.errors import DataError


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
