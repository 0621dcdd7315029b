"""The class-folder layout shared by image and text folders: one sub-folder per class.

`root/<class>/<file>`, split by a stratified seeded shuffle, or `root/train/<class>/...` and
`root/val/<class>/...` used as given. Files with other suffixes and hidden files are ignored and
counted; files the format's `check` rejects are skipped and counted, or fatal with `strict`.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from zoo.data.formats import ReadOptions, TrainingData
from zoo.data.split import check_classes, check_val_classes, file_entry, fingerprint, stratified_split
from zoo.errors import DataError


OUTSIDE = "folder symlink leading outside the data folder (not followed)"


class Skip(Exception):
    """Raised by a format's `check` for an input that cannot be used; the message is the reason."""


def listing(folder: Path) -> list[Path]:
    """The entries of `folder`; an unreadable folder is a DataError naming it as a permission problem."""
    try:
        return [Path(entry.path) for entry in os.scandir(folder)]
    except PermissionError:
        raise DataError(
            f"cannot read the folder {str(folder)!r}: permission denied",
            "fix its permissions (chmod/chown), or move it out of the data folder",
        ) from None


def visible_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in listing(folder) if p.is_dir() and not p.name.startswith("."))


def require_folder(path: Path, format_name: str) -> None:
    """A DataError unless `path` is a folder: missing, or a file given to a folder format (--data-format)."""
    if not path.exists():
        raise DataError(f"data folder {str(path)!r} does not exist", "check the path given to --data")
    if not path.is_dir():
        raise DataError(
            f"{str(path)!r} is a file, and the {format_name} format reads a folder",
            "give a folder to --data, or --data-format csv for a .csv file",
        )


def has_split_folders(root: Path) -> bool:
    """Whether `root` holds both a train/ and a val/ folder."""
    return (root / "train").is_dir() and (root / "val").is_dir()


def class_dirs(root: Path) -> list[Path]:
    """The class folders: those of train/ when `root` is split, else `root`'s sub-folders."""
    return visible_dirs(root / "train") if has_split_folders(root) else visible_dirs(root)


def holds_files(root: Path, suffixes: Iterable[str]) -> bool:
    """Whether any class folder holds a file with one of `suffixes` (the cheap test `detect` uses)."""
    wanted = set(suffixes)
    return any(p.suffix.lower() in wanted for folder in class_dirs(root) for p in listing(folder) if p.is_file())


def read_class_folders(
    root: Path,
    *,
    task: str,
    suffixes: Iterable[str],
    check: Callable[[Path], Any],
    options: ReadOptions,
    kind: str,
) -> TrainingData:
    """Scan a class-folder layout into train/val samples.

    Args:
        root: the data folder.
        task: the task the samples serve (image-classification, text-classification).
        suffixes: the file suffixes that hold examples (lower case, with the dot).
        check: path -> the sample's item (the path itself, or the text it holds); raises Skip
            for an unusable file.
        options: split, seed, strictness, workers.
        kind: what an example is, for messages ("images", ".txt files").

    Returns:
        The samples; the classes are the training folders' names, sorted.
    """
    require_folder(root, task.replace("-classification", "") + "-folder")
    scan = _Scanner(root, set(suffixes), check, options, kind)
    if has_split_folders(root):
        train_files = scan.files(root / "train")
        val_files = scan.files(root / "val")
        classes = sorted(train_files)
        check_val_classes(classes, val_files, root / "val")
        train = scan.samples(train_files, classes)
        val = scan.samples(val_files, classes)
        check_classes(classes, _counts(train, classes), root / "train", scan.skipped, options.min_classes)
    else:
        files = scan.files(root)
        classes = sorted(files)
        samples = scan.samples(files, classes)
        check_classes(classes, _counts(samples, classes), root, scan.skipped, options.min_classes)
        train, val = stratified_split(samples, options.val_split, options.seed)
    if not val:
        raise DataError(f"the validation folder {str(root / 'val')!r} holds no {kind}", f"add {kind} to it")
    entries = [file_entry(p, root, t, "train") for p, t in scan.paths(train)]
    entries += [file_entry(p, root, t, "val") for p, t in scan.paths(val)]
    return TrainingData(
        format="",
        task=task,
        root=root,
        classes=classes,
        train=[(item, target) for item, target, _ in train],
        val=[(item, target) for item, target, _ in val],
        skipped=scan.skipped,
        ignored=scan.ignored,
        fingerprint=fingerprint([f"{options.seed}\t{options.val_split}", *entries]),
    )


def _counts(samples: list[tuple[Any, int, Path]], classes: list[str]) -> dict[str, int]:
    counts = {name: 0 for name in classes}
    for _, target, _ in samples:
        counts[classes[target]] += 1
    return counts


class _Scanner:
    """Lists class folders, checks their files (in threads), and tallies what it skips.

    Folder symlinks are followed only while they stay inside the data folder (each real folder
    once, so a link loop ends); one that leaves it (a class folder linked to `/`) is counted in
    the skip report, never walked.
    """

    def __init__(self, root: Path, suffixes: set[str], check: Callable[[Path], Any], options: ReadOptions, kind: str):
        self.root = os.path.realpath(root)
        self.suffixes = suffixes
        self.check = check
        self.options = options
        self.kind = kind
        self.skipped: dict[str, list[str]] = {}
        self.ignored = 0

    def files(self, folder: Path) -> dict[str, list[Path]]:
        """class name -> its files with a wanted suffix, sorted; other files are counted as ignored."""
        found: dict[str, list[Path]] = {}
        self.ignored += sum(1 for p in listing(folder) if p.is_file())
        for class_dir in visible_dirs(folder):
            if not self._followed(class_dir):
                continue
            paths = []
            for path in sorted(self._walk(class_dir, {os.path.realpath(class_dir)})):
                hidden = any(part.startswith(".") for part in path.relative_to(class_dir).parts)
                if hidden or path.suffix.lower() not in self.suffixes:
                    self.ignored += 1
                else:
                    paths.append(path)
            if not paths:
                raise DataError(
                    f"class folder {str(class_dir)!r} holds no {self.kind}",
                    f"add {self.kind} ({', '.join(sorted(self.suffixes))}) to it, or remove it",
                )
            found[class_dir.name] = paths
        return found

    def _followed(self, folder: Path) -> bool:
        """Whether to walk `folder`: not a symlink, or one into the data folder; else it is counted."""
        real = os.path.realpath(folder)
        if not folder.is_symlink() or real == self.root or real.startswith(self.root.rstrip(os.sep) + os.sep):
            return True
        self.skipped.setdefault(OUTSIDE, []).append(str(folder))
        return False

    def _walk(self, folder: Path, seen: set[str]) -> Iterator[Path]:
        """Every file under `folder`, following folder symlinks that stay in the data folder."""
        for path in listing(folder):
            if not path.is_dir():
                if path.is_file():
                    yield path
                continue
            real = os.path.realpath(path)
            if real not in seen and self._followed(path):
                seen.add(real)
                yield from self._walk(path, seen)

    def samples(self, files: dict[str, list[Path]], classes: list[str]) -> list[tuple[Any, int, Path]]:
        """(item, class index, path) for every file `check` accepts, in class then file order."""
        pairs = [(path, classes.index(name)) for name in classes for path in files.get(name, [])]
        with ThreadPoolExecutor(max_workers=max(1, self.options.workers)) as pool:
            checked = list(pool.map(self._check, (path for path, _ in pairs)))
        out = []
        for (path, target), (item, reason) in zip(pairs, checked):
            if reason is None:
                out.append((item, target, path))
                continue
            if self.options.strict:
                raise DataError(f"{str(path)!r}: {reason}", "fix or remove the file, or run without --strict-data")
            self.skipped.setdefault(reason, []).append(str(path))
        return out

    def _check(self, path: Path) -> tuple[Any, str | None]:
        try:
            return self.check(path), None
        except Skip as exc:
            return None, str(exc)

    @staticmethod
    def paths(samples: list[tuple[Any, int, Path]]) -> list[tuple[Path, int]]:
        return [(path, target) for _, target, path in samples]
