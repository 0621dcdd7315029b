"""Small real image folders for the fine-tuning and data-format tests, written with PIL."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def write_image(path: Path, mode: str = "RGB", size: tuple[int, int] = (12, 12), value: int = 0) -> Path:
    """A small image of `mode` whose pixels depend on `value`, saved in the format its suffix names."""
    rng = np.random.default_rng(value)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(pixels).convert(mode) if mode != "P" else Image.fromarray(pixels).quantize(16)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def write_folder(root: Path, counts: dict[str, int], suffix: str = ".png") -> Path:
    """`root/<class>/<i>.png` for each class, `counts[class]` images each."""
    for label, n in counts.items():
        for i in range(n):
            write_image(root / label / f"{i:03d}{suffix}", value=hash((label, i)) % 10_000)
    return root


def subset(source: Path, target: Path, per_class: int) -> Path:
    """The first `per_class` files of each class folder of `source`, copied to `target`."""
    for folder in sorted(p for p in source.iterdir() if p.is_dir()):
        (target / folder.name).mkdir(parents=True)
        for file in sorted(folder.iterdir())[:per_class]:
            (target / folder.name / file.name).write_bytes(file.read_bytes())
    return target


def real_digits(tmp_path_factory, per_class: int) -> Path:
    """scikit-learn's real handwritten digits as `zoo data digits` writes them, `per_class` of each."""
    from zoo.data.packaged import write_dataset

    root = tmp_path_factory.mktemp("digits")
    write_dataset("digits", root / "all")
    return subset(root / "all", root / "small", per_class=per_class)
