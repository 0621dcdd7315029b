"""Text data: a folder of class sub-folders of .txt files, a CSV file, and a corpus for language modelling."""
from __future__ import annotations

import collections.abc
import csv
from array import array
from collections import Counter
from pathlib import Path
from typing import BinaryIO, Iterator, Sequence

from zoo.data.folders import Skip, has_split_folders, holds_files, read_class_folders, require_folder
from zoo.data.formats import ReadOptions, TrainingData
from zoo.data.split import check_classes, file_entry, fingerprint, stratified_indices, stratified_split
from zoo.errors import DataError

CORPUS_SUFFIXES = (".txt", ".md")


def read_text(path: Path) -> str:
    """A file's text: UTF-8, or Latin-1 when it is not valid UTF-8 (every byte decodes)."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def check_text(path: Path) -> str:
    """The text of a file, or Skip for an empty one."""
    text = read_text(path).strip()
    if not text:
        raise Skip("empty text file")
    return text


def detect_text_folder(path: Path) -> bool:
    """A folder whose class sub-folders (or train/ ones) hold .txt files."""
    return path.is_dir() and holds_files(path, (".txt",))


def read_text_folder(path: Path, options: ReadOptions) -> TrainingData:
    """One sub-folder per class of .txt files, one example per file; empty files are skipped and counted."""
    return read_class_folders(
        path, task="text-classification", suffixes=(".txt",), check=check_text, options=options, kind=".txt files"
    )


def detect_csv(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in (".csv", ".tsv")


def read_csv(path: Path, options: ReadOptions) -> TrainingData:
    """Rows with a text column and a label column; rows with an empty text are skipped and counted.

    The file is streamed: the scan keeps each row's byte offset and class, not its text, and the
    samples read their text back from the file when asked for (`CsvRows`).
    """
    if path.is_dir():
        raise DataError(f"{str(path)!r} is a folder, and the csv format reads a .csv or .tsv file", "give the file to --data, or another --data-format")
    dialect = "excel-tab" if path.suffix.lower() == ".tsv" else "excel"
    try:
        scan = _CsvScan(path, "utf-8-sig", dialect, options)
    except UnicodeDecodeError:  # not UTF-8 somewhere: the whole file is Latin-1, where every byte decodes
        scan = _CsvScan(path, "latin-1", dialect, options)
    classes = sorted(scan.labels)
    order = {scan.labels[name]: i for i, name in enumerate(classes)}
    targets = array("l", (order[t] for t in scan.targets))
    counts = Counter(targets)
    check_classes(classes, {name: counts[i] for i, name in enumerate(classes)}, path, min_classes=options.min_classes)
    train, val = stratified_indices(targets, options.val_split, options.seed)
    rows = CsvRows(path, scan.encoding, dialect, scan.column, scan.offsets, targets)
    stat = path.stat()
    return TrainingData(
        format="csv",
        task="text-classification",
        root=path,
        classes=classes,
        train=rows.take(train),
        val=rows.take(val),
        skipped={"empty text or label": scan.skipped} if scan.skipped else {},
        fingerprint=fingerprint(
            [f"{options.seed}\t{options.val_split}\t{options.text_column}\t{options.label_column}",
             f"{path.resolve()}\t{stat.st_size}\t{stat.st_mtime_ns}"]
        ),
    )


class _Lines:
    """The decoded lines of a binary file from where it stands; `offset` is where the next line starts.

    Not str.splitlines(): it also breaks at U+0085 (a latin-1 byte 0x85, Windows' "…"), U+2028 and
    others, cutting rows in two; the csv module itself knows where a record ends (quoted newlines too).
    """

    def __init__(self, file: BinaryIO, encoding: str):
        self.file, self.encoding, self.offset = file, encoding, file.tell()

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = self.file.readline()
        if not line:
            raise StopIteration
        self.offset += len(line)
        return line.decode(self.encoding)


class _CsvScan:
    """One pass over a CSV file: each usable row's byte offset and label, the rows skipped."""

    def __init__(self, path: Path, encoding: str, dialect: str, options: ReadOptions):
        self.path, self.encoding = path, encoding
        self.offsets, self.targets = array("q"), array("l")
        self.labels: dict[str, int] = {}
        self.skipped: list[str] = []
        with path.open("rb") as file:
            lines = _Lines(file, encoding)
            reader = csv.reader(lines, dialect=dialect)
            columns = next(reader, [])
            self.column = self._column(columns, options.text_column, "--text-column")
            label_column = self._column(columns, options.label_column, "--label-column")
            start = lines.offset
            for row in reader:
                if row:  # a blank line is no record (as csv.DictReader has it)
                    self._add(row, start, label_column, reader.line_num, options.strict)
                start = lines.offset

    def _column(self, columns: list[str], name: str, option: str) -> int:
        if name not in columns:
            raise DataError(
                f"{str(self.path)!r} has no column {name!r} (columns: {', '.join(columns) or 'none'})", f"name the column with {option}"
            )
        return len(columns) - 1 - columns[::-1].index(name)  # the last of equal names, as csv.DictReader has it

    def _add(self, row: list[str], offset: int, label_column: int, line: int, strict: bool) -> None:
        value = row[self.column].strip() if self.column < len(row) else ""
        label = row[label_column].strip() if label_column < len(row) else ""
        if value and label:
            self.offsets.append(offset)
            self.targets.append(self.labels.setdefault(label, len(self.labels)))
        elif strict:  # line: the record's last physical line, right even after a quoted newline
            raise DataError(f"{str(self.path)!r} line {line}: empty text or label", "fill it in, or run without --strict-data")
        else:
            self.skipped.append(f"{self.path}:{line}")


class CsvRows(collections.abc.Sequence):
    """(text, class index) samples that stay in their CSV file: only each row's byte offset and class
    are held, and a text is read from the file when asked for (any process may, a DataLoader worker too)."""

    def __init__(self, path: Path, encoding: str, dialect: str, column: int, offsets: array, targets: array):
        self.path, self.encoding, self.dialect, self.column = path, encoding, dialect, column
        self.offsets, self.targets = offsets, targets

    def __len__(self) -> int:
        return len(self.offsets)

    def __getitem__(self, index: int) -> tuple[str, int]:  # type: ignore[override]
        with self.path.open("rb") as file:
            return self._read(file, index)

    def __iter__(self) -> Iterator[tuple[str, int]]:
        with self.path.open("rb") as file:
            for index in range(len(self)):
                yield self._read(file, index)

    def __add__(self, other: Sequence[tuple[str, int]]) -> list[tuple[str, int]]:
        return [*self, *other]

    def take(self, indices: Sequence[int]) -> CsvRows:
        """The samples at `indices`, still in the file."""
        offsets, targets = array("q", (self.offsets[i] for i in indices)), array("l", (self.targets[i] for i in indices))
        return CsvRows(self.path, self.encoding, self.dialect, self.column, offsets, targets)

    def _read(self, file: BinaryIO, index: int) -> tuple[str, int]:
        file.seek(self.offsets[index])
        row = next(csv.reader(_Lines(file, self.encoding), dialect=self.dialect))
        return row[self.column].strip(), self.targets[index]


def _corpus_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in CORPUS_SUFFIXES
    )


def detect_corpus(path: Path) -> bool:
    """A folder holding .txt or .md files itself (or in train/ and val/)."""
    if not path.is_dir():
        return False
    return bool(_corpus_files(path)) or (has_split_folders(path) and bool(_corpus_files(path / "train")))


def read_corpus(path: Path, options: ReadOptions) -> TrainingData:
    """Whole texts for language modelling: train/ and val/ as given, or a seeded split by file."""
    require_folder(path, "corpus")
    if has_split_folders(path):
        train_files, val_files = _corpus_files(path / "train"), _corpus_files(path / "val")
    else:
        files = _corpus_files(path)
        if len(files) < 2:
            raise DataError(
                f"{str(path)!r} holds {len(files)} .txt/.md file(s); a corpus needs two or more to hold one out",
                "add files, or give a train/ and a val/ folder",
            )
        train_pairs, val_pairs = stratified_split([(p, 0) for p in files], options.val_split, options.seed)
        train_files, val_files = [p for p, _ in train_pairs], [p for p, _ in val_pairs]
    skipped: dict[str, list[str]] = {}
    splits = []
    for files in (train_files, val_files):
        texts = []
        for file in files:
            try:
                texts.append((check_text(file), -1))
            except Skip as exc:
                if options.strict:
                    raise DataError(f"{str(file)!r}: {exc}", "fix or remove the file, or run without --strict-data") from None
                skipped.setdefault(str(exc), []).append(str(file))
        splits.append(texts)
    for texts, name in zip(splits, ("training", "validation")):
        if not texts:
            raise DataError(f"no {name} text in {str(path)!r}", "add non-empty .txt or .md files")
    entries = [file_entry(p, path, -1, "train") for p in train_files] + [file_entry(p, path, -1, "val") for p in val_files]
    return TrainingData(
        format="corpus",
        task="language-modeling",
        root=path,
        classes=[],
        train=splits[0],
        val=splits[1],
        skipped=skipped,
        fingerprint=fingerprint([f"{options.seed}\t{options.val_split}", *entries]),
    )
