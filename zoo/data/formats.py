"""Data formats for fine-tuning: what a plugin registers, how a folder or file finds its format.

A `DataFormat` is metadata plus two `"module:function"` strings, imported only when data is read,
so registering formats costs nothing. `detect(path) -> bool` says whether a path looks like the
format; `load(path, options: ReadOptions) -> TrainingData` scans it into labelled train/val samples.
"""
from __future__ import annotations

import functools
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from zoo.data.split import fingerprint as data_fingerprint
from zoo.errors import ArgumentError, DataError


@dataclass(frozen=True)
class DataFormat:
    """A kind of training data: an image folder, a text folder, a CSV file, a text corpus, ...

    `task` names the registered task (`zoo.tasks`, the `register_tasks` hook) whose targets it reads;
    a format naming a task no plugin registers is refused when it is used.
    """

    name: str
    task: str
    detect: str
    load: str
    description: str = ""
    plugin: str | None = None

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str) or any(c.isspace() for c in self.name):
            raise ArgumentError(f"data format name {self.name!r} must be a non-empty string without spaces")
        if not isinstance(self.task, str) or not self.task or any(c.isspace() for c in self.task):
            raise ArgumentError(f"data format {self.name!r}: task {self.task!r} must name a registered task (zoo.tasks)")
        for attr in ("detect", "load"):
            if ":" not in getattr(self, attr):
                raise ArgumentError(f"data format {self.name!r}: {attr} must be 'module:function'")

    def function(self, attr: str) -> Callable[..., Any]:
        """Import the `detect` or `load` function."""
        from zoo.plugins import import_reference

        return import_reference(getattr(self, attr), f"data format {self.name!r} ({self.plugin})")


@dataclass(frozen=True)
class ReadOptions:
    """What every `load` function is given; a format uses the options that concern it."""

    val_split: float = 0.2
    seed: int = 0
    strict: bool = False
    text_column: str = "text"
    label_column: str = "label"
    workers: int = 0
    max_val: int | None = None  # classification: validate on a seeded sample of at most this many
    min_classes: int = 2  # training needs two; an evaluation (zoo eval) reads a folder of one class too

    def __post_init__(self) -> None:
        if not 0.0 < self.val_split < 1.0:
            raise ArgumentError(f"val_split must be between 0 and 1 (exclusive), got {self.val_split}")
        if self.max_val is not None and self.max_val < 1:
            raise ArgumentError(f"max_val must be at least 1, got {self.max_val}")


@dataclass
class TrainingData:
    """Labelled samples split into train and validation, and what was skipped on the way.

    `train` and `val` hold `(item, target)` pairs: an image path or a text, and a class index
    (-1 for a language-modelling corpus, whose items are whole texts). They are lists, or sequences
    that read each item from the file when asked for (a CSV's rows), with a `take(indices)` method.
    """

    format: str
    task: str
    root: Path
    classes: list[str]
    train: Sequence[tuple[Any, int]]
    val: Sequence[tuple[Any, int]]
    skipped: dict[str, list[str]] = field(default_factory=dict)
    ignored: int = 0
    fingerprint: str = ""
    val_sampled_from: int | None = None

    def sample_val(self, size: int, seed: int) -> None:
        """Keep a seeded sample of `size` validation items, in their order (a bounded run's validation)."""
        keep = sorted(random.Random(f"{seed}:val").sample(range(len(self.val)), size))
        take = getattr(self.val, "take", None)
        self.val_sampled_from = len(self.val)
        self.val = take(keep) if take is not None else [self.val[i] for i in keep]
        self.fingerprint = data_fingerprint([self.fingerprint, f"val sample\t{size}\t{seed}"])

    def skipped_counts(self) -> dict[str, int]:
        """How many inputs were skipped, by reason."""
        return {reason: len(items) for reason, items in self.skipped.items()}

    def skip_report(self, named: int = 3) -> list[str]:
        """One line per reason: how many inputs were skipped for it, and the first `named` of them."""
        lines = []
        for reason, items in self.skipped.items():
            more = f" and {len(items) - named} more" if len(items) > named else ""
            lines.append(f"skipped {len(items)} file(s): {reason}: {', '.join(items[:named])}{more}")
        return lines

    def summary(self) -> dict[str, Any]:
        """Plain data for the training arguments and the `--json` summary."""
        return {
            "format": self.format,
            "task": self.task,
            "path": str(self.root.absolute()),
            "classes": list(self.classes),
            "train_size": len(self.train),
            "val_size": len(self.val),
            "skipped": self.skipped_counts(),
            "skip_report": self.skip_report(),
            "ignored_files": self.ignored,
            "fingerprint": self.fingerprint,
            **({"val_sampled_from": self.val_sampled_from} if self.val_sampled_from is not None else {}),
        }


# What a model reads (its InputSpec kind), in words, and the data a fine-tune may give it.
_READS = {
    "image": ("images", "an image folder, one sub-folder of images per class"),
    "tokens": ("text", "a text folder (one sub-folder of .txt files per class) or a CSV file"),
    "features": ("feature vectors", "feature vectors in Python (model.fit, or your own training loop)"),
}


def unsuited_data(model: str, reads: str, data: TrainingData) -> DataError:
    """The error for data of one kind (images, text) given to a model that reads another.

    Args:
        model: the model as the user named it.
        reads: the kind of input it takes (an InputSpec kind: image, tokens, features).
        data: the data that was read.
    """
    holds = "images" if data.task == "image-classification" else "text"
    what, feed = _READS.get(reads, (reads, "data of that kind"))
    suited = "an image model" if holds == "images" else "a text model"
    task = "image-classification" if holds == "images" else data.task
    return DataError(
        f"{model} reads {what}, but {str(data.root)!r} holds {holds}",
        f"give {model} {feed}; or fine-tune {suited} on this data (`zoo list --task {task}`)",
    )


ZOO_FORMATS = "zoo.data.plugin"  # the plugin that registers zoo's own formats


def data_formats() -> dict[str, DataFormat]:
    """Every format the installed plugins register, in registration order."""
    from zoo.plugins import default_plugin_manager

    return _collect(default_plugin_manager())


@functools.lru_cache(maxsize=4)
def _collect(pm: Any) -> dict[str, DataFormat]:
    """The formats of plugin manager `pm`, collected once per manager (a fresh manager collects again)."""
    from zoo.plugins import accept_instances

    return pm.collect("register_data_formats", accept_instances(DataFormat), key=lambda f: f.name)


def find_format(path: str | Path, name: str | None = None, formats: dict[str, DataFormat] | None = None) -> DataFormat:
    """The format `name` names, or the first registered one whose `detect` accepts `path`.

    Args:
        path: the data folder or file.
        name: a format name (``"image-folder"``, ``"csv"``, ...); None detects it.
        formats: the formats to choose from (default: the registered ones).

    Returns:
        The DataFormat to read `path` with.
    """
    formats = data_formats() if formats is None else formats
    path = Path(path)
    if name is not None:
        if name not in formats:
            raise ArgumentError(f"unknown data format {name!r}", f"use one of: {', '.join(formats)}")
        return formats[name]
    if not path.exists():
        raise DataError(f"data path {str(path)!r} does not exist", "check the path given to --data")
    if path.is_dir() and not any(p for p in path.iterdir() if not p.name.startswith(".")):
        raise DataError(f"data folder {str(path)!r} is empty", "put one sub-folder per class in it, each holding examples")
    # zoo's own formats are catch-alls (any folder of .txt files is a corpus): a plugin's, more specific, go first.
    for fmt in sorted(formats.values(), key=lambda f: f.plugin == ZOO_FORMATS):
        if fmt.function("detect")(path):
            return fmt
    raise DataError(
        f"{str(path)!r} is not a data set zoo can read",
        "use a folder with one sub-folder per class (images or .txt files), a .csv file, "
        "or a folder of .txt/.md files; or name the format with --data-format",
    )


def read_data(path: str | Path, name: str | None = None, options: ReadOptions | None = None) -> TrainingData:
    """Read `path` with its format (detected unless `name` is given).

    Args:
        path: the data folder or file.
        name: a format name; None detects it.
        options: split, seed, strictness, column names, and a bound on the validation samples.

    Returns:
        The labelled train/val samples, with the skipped inputs counted.
    """
    fmt = find_format(path, name)
    from zoo.tasks import get_task

    get_task(fmt.task, f"data format {fmt.name!r} ({fmt.plugin})")
    if not Path(path).exists():
        raise DataError(f"data path {str(path)!r} does not exist", "check the path given to --data")
    options = options or ReadOptions()
    data = fmt.function("load")(Path(path), options)
    data.format = fmt.name
    if options.max_val is not None and data.task != "language-modeling" and len(data.val) > options.max_val:
        data.sample_val(options.max_val, options.seed)
    return data
