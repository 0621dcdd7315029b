"""Rendered text lines: pictures of lines of text in a TrueType font, written as a text-lines data set
(a folder of PNGs and `labels.csv`) that `zoo finetune` and `zoo eval` read."""
from __future__ import annotations

import csv
import random
from pathlib import Path
from typing import Any, Sequence

from zoo.errors import ArgumentError
from zoo.fsio import atomic_path, write_text


def render_line(text: str, font: str | Path, size: int = 32) -> Any:
    """One line of black text on white in `font` (a .ttf/.otf file), with a margin of a quarter of `size`.

    Raises:
        ArgumentError: the font file cannot be read.
    """
    from PIL import Image, ImageDraw, ImageFont

    try:
        face = ImageFont.truetype(str(font), size)
    except OSError as exc:
        raise ArgumentError(f"cannot read the font {str(font)!r}: {exc}", "name a TrueType font file (`fc-list` lists them)") from None
    left, top, right, bottom = face.getbbox(text or " ")
    margin = size // 4
    image = Image.new("L", (max(1, right - left) + 2 * margin, max(1, bottom - top) + 2 * margin), 255)
    ImageDraw.Draw(image).text((margin - left, margin - top), text, font=face, fill=0)
    return image


def random_lines(words: Sequence[str], n: int, seed: int = 0, numbers: float = 0.4) -> list[str]:
    """`n` lines of two to four tokens: a word of `words`, or (with probability `numbers`) a number 0..9999."""
    rng = random.Random(seed)
    return [
        " ".join(str(rng.randint(0, 9999)) if rng.random() < numbers else rng.choice(words) for _ in range(rng.randint(2, 4)))
        for _ in range(n)
    ]


def write_lines(folder: str | Path, texts: Sequence[str], font: str | Path, size: int = 32) -> Path:
    """Render `texts` into `folder` as line-00000.png, ... and write their `labels.csv` (file,text).

    Returns:
        The folder.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, text in enumerate(texts):
        name = f"line-{i:05d}.png"
        with atomic_path(folder / name) as tmp:
            render_line(text, font, size).save(tmp, format="PNG")
        rows.append((name, text))
    write_text(folder / "labels.csv", _csv(rows))
    return folder


def _csv(rows: list[tuple[str, str]]) -> str:
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("file", "text"))
    writer.writerows(rows)
    return out.getvalue()
