"""Splitting labelled samples into train and validation, checking classes, fingerprinting data."""
from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Sequence, TypeVar

from zoo.errors import DataError

T = TypeVar("T", bound=tuple)


def stratified_split(samples: Sequence[T], val_split: float, seed: int) -> tuple[list[T], list[T]]:
    """Hold out `val_split` of each class, chosen by a seeded shuffle (the same seed, the same split).

    Args:
        samples: tuples whose second element is the class index, in a stable order.
        val_split: the fraction of each class to hold out, between 0 and 1.
        seed: the shuffle's seed.

    Returns:
        (train, val), each in the input's order. A class with a single sample stays in train.
    """
    train, val = stratified_indices([sample[1] for sample in samples], val_split, seed)
    return [samples[i] for i in train], [samples[i] for i in val]


def stratified_indices(targets: Sequence[int], val_split: float, seed: int) -> tuple[list[int], list[int]]:
    """`stratified_split` on the class indices alone: (train positions, val positions), each ascending."""
    by_class: dict[int, list[int]] = defaultdict(list)
    for index, target in enumerate(targets):
        by_class[target].append(index)
    held_out: set[int] = set()
    for target in sorted(by_class):
        indices = by_class[target]
        random.Random(f"{seed}:{target}").shuffle(indices)
        n_val = min(len(indices) - 1, max(1, round(len(indices) * val_split)))
        held_out.update(indices[:n_val])
    if not held_out:
        raise DataError(
            "the validation split is empty: every class has a single example, and a class keeps its last one for training",
            "add a second example to some classes, or give a train/ and a val/ folder",
        )
    return [i for i in range(len(targets)) if i not in held_out], sorted(held_out)


def check_classes(
    classes: Sequence[str], counts: dict[str, int], where: Path, skipped: dict[str, list[str]] | None = None,
    min_classes: int = 2,
) -> None:
    """At least `min_classes` classes (one or two), each with at least one usable example (`skipped`:
    reason -> the paths set aside, so an emptied class folder says why)."""
    if not classes:
        raise DataError(f"no class sub-folders in {str(where)!r}", "make one sub-folder per class, each holding examples")
    if len(classes) < min_classes:
        raise DataError(
            f"only one class ({classes[0]!r}) in {str(where)!r}", "classification needs at least two classes"
        )
    empty = [name for name in classes if counts.get(name, 0) == 0]
    if empty:
        folder = where / empty[0]
        reasons = [
            f"{sum(1 for p in paths if Path(p).is_relative_to(folder))} skipped: {reason}"
            for reason, paths in (skipped or {}).items()
            if any(Path(p).is_relative_to(folder) for p in paths)
        ]
        raise DataError(
            f"class {empty[0]!r} in {str(where)!r} has no usable examples" + (f" ({'; '.join(reasons)})" if reasons else ""),
            "add examples to it or remove the class",
        )


def check_val_classes(train_classes: Sequence[str], val_classes: Iterable[str], where: Path) -> None:
    """Every validation class must also be a training class."""
    unknown = sorted(set(val_classes) - set(train_classes))
    if unknown:
        raise DataError(
            f"validation class {unknown[0]!r} in {str(where)!r} is not a training class "
            f"(training classes: {', '.join(train_classes)})",
            "add it to train/ or remove it from val/",
        )


def fingerprint(entries: Iterable[str]) -> str:
    """A sha256 over the entries (file name, size, mtime, label, split...), in order."""
    digest = hashlib.sha256()
    for entry in entries:
        digest.update(entry.encode("utf-8", "surrogateescape"))
        digest.update(b"\0")
    return digest.hexdigest()


def file_entry(path: Path, root: Path, target: int, split: str) -> str:
    """What identifies one file of a data set for the fingerprint: name, size, mtime, label, split."""
    stat = path.stat()
    return f"{split}\t{target}\t{path.relative_to(root).as_posix()}\t{stat.st_size}\t{stat.st_mtime_ns}"
