"""The text-lines data format: a folder of line images and their transcripts, the layout OCR tools use.

    LINES/labels.csv   file,text       (a header row `file,text` is optional; CSV quoting as usual)
    LINES/labels.txt   file<TAB>text   (one line each)
    LINES/a.png, LINES/sub/b.jpg, ...  named relative to the folder

Every file named must lie inside the folder (no absolute paths, no `..`, no link out of it) and exist;
every transcript must hold a character. The items are ``(image path, transcript)``; there are no classes
(the model's character list stays).
"""
from __future__ import annotations

import csv
import io
import random
from pathlib import Path

from zoo.data.formats import ReadOptions, TrainingData
from zoo.data.split import fingerprint
from zoo.errors import DataError

LABEL_FILES = ("labels.csv", "labels.txt")
TASK = "text-recognition"


def detect(path: Path) -> bool:
    """A folder holding labels.csv or labels.txt."""
    return path.is_dir() and any((path / name).is_file() for name in LABEL_FILES)


def load(path: Path, options: ReadOptions) -> TrainingData:
    """The lines of `path`, split train/val by the seed.

    Raises:
        DataError: no or two label files, a malformed row, an empty transcript, a file missing or outside
            the folder (each named with its row).
    """
    labels = _label_file(path)
    lines = [(_image(path, labels, number, name), text) for number, name, text in _rows(labels)]
    if len(lines) < 2:
        raise DataError(f"{str(labels)!r} names {len(lines)} line(s)", "give two or more: some train, some validate")
    order = list(range(len(lines)))
    random.Random(options.seed).shuffle(order)
    cut = max(1, round(len(lines) * options.val_split))
    val, train = [lines[i] for i in sorted(order[:cut])], [lines[i] for i in sorted(order[cut:])]
    digest = fingerprint(
        [f"{Path(p).relative_to(path.resolve())}\t{Path(p).stat().st_size}\t{text}" for p, text in lines]
        + [f"split\t{options.val_split}\t{options.seed}"]
    )
    return TrainingData("text-lines", TASK, path, [], train, val, fingerprint=digest)


def _label_file(path: Path) -> Path:
    found = [path / name for name in LABEL_FILES if (path / name).is_file()]
    if len(found) != 1:
        raise DataError(
            f"{str(path)!r} holds {' and '.join(p.name for p in found) or 'neither labels.csv nor labels.txt'}",
            "keep one label file: labels.csv (file,text) or labels.txt (file<TAB>text)",
        )
    return found[0]


def _rows(labels: Path) -> list[tuple[int, str, str]]:
    """(row number, file, text) of each non-blank row; a header row `file,text` is skipped."""
    try:
        content = labels.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{str(labels)!r} is not UTF-8 text ({exc.reason})", "save the label file as UTF-8") from None
    if labels.suffix == ".csv":
        rows = [(n, row) for n, row in enumerate(csv.reader(io.StringIO(content)), 1) if row]
        if rows and [c.strip().lower() for c in rows[0][1]] == ["file", "text"]:
            rows = rows[1:]
        shape = "file,text (quote a text holding commas)"
    else:
        rows = [(n, line.split("\t", 1)) for n, line in enumerate(content.splitlines(), 1) if line.strip()]
        shape = "file<TAB>text"
    out = []
    for number, row in rows:
        if len(row) != 2 or not row[0].strip():
            raise DataError(f"{labels}:{number}: need {shape}, got {_show(row)}", f"write one line a row: {shape}")
        name, text = row[0].strip(), row[1].strip()  # a line's transcript neither starts nor ends with a space
        if not text.strip():
            raise DataError(
                f"{labels}:{number}: {name!r} has an empty transcript",
                "write the text the image shows, or drop the row (a line needs at least one character to learn from)",
            )
        out.append((number, name, text))
    return out


def _image(root: Path, labels: Path, number: int, name: str) -> str:
    """The absolute path of a file the label file names, checked to lie inside `root` and to exist."""
    given = Path(name)
    inside = root.resolve()
    target = (inside / given).resolve()
    if given.is_absolute() or ".." in given.parts or not target.is_relative_to(inside):
        raise DataError(
            f"{labels}:{number}: {name!r} is not a file inside {str(root)!r}",
            "name each image relative to the data folder (no absolute paths, no '..', no link out of it)",
        )
    if not target.is_file():
        raise DataError(f"{labels}:{number}: {name!r} does not exist in {str(root)!r}", "add the image, or drop its row")
    return str(target)


def _show(row: list[str]) -> str:
    return repr(",".join(row))[:80]
