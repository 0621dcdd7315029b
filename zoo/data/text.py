"""Text data: a folder of class sub-folders of .txt files, a CSV file, and a corpus for language modelling."""
from __future__ import annotations

import csv
import io
from pathlib import Path

from zoo.data.folders import Skip, has_split_folders, holds_files, read_class_folders, require_folder
from zoo.data.formats import ReadOptions, TrainingData
from zoo.data.split import check_classes, file_entry, fingerprint, stratified_split
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
    """Rows with a text column and a label column; rows with an empty text are skipped and counted."""
    if path.is_dir():
        raise DataError(f"{str(path)!r} is a folder, and the csv format reads a .csv or .tsv file", "give the file to --data, or another --format")
    text = read_text(path)
    dialect = "excel-tab" if path.suffix.lower() == ".tsv" else "excel"
    # Not str.splitlines(): it also breaks at U+0085 (a latin-1 byte 0x85, Windows' "…"), U+2028 and
    # others, cutting rows in two; the csv module itself knows where a record ends (quoted newlines too).
    reader = csv.DictReader(io.StringIO(text, newline=""), dialect=dialect)
    columns = reader.fieldnames or []
    for option, column in (("--text-column", options.text_column), ("--label-column", options.label_column)):
        if column not in columns:
            raise DataError(
                f"{str(path)!r} has no column {column!r} (columns: {', '.join(columns) or 'none'})",
                f"name the column with {option}",
            )
    rows, skipped = [], []
    for row in reader:
        line = reader.line_num  # the record's last physical line, right even after a quoted newline
        value, label = (row.get(options.text_column) or "").strip(), (row.get(options.label_column) or "").strip()
        if not value or not label:
            if options.strict:
                raise DataError(f"{str(path)!r} line {line}: empty text or label", "fill it in, or run without --strict-data")
            skipped.append(f"{path}:{line}")
            continue
        rows.append((value, label))
    classes = sorted({label for _, label in rows})
    counts = {name: sum(1 for _, label in rows if label == name) for name in classes}
    check_classes(classes, counts, path)
    index = {name: i for i, name in enumerate(classes)}
    train, val = stratified_split([(value, index[label]) for value, label in rows], options.val_split, options.seed)
    stat = path.stat()
    return TrainingData(
        format="csv",
        task="text-classification",
        root=path,
        classes=classes,
        train=train,
        val=val,
        skipped={"empty text or label": skipped} if skipped else {},
        fingerprint=fingerprint(
            [f"{options.seed}\t{options.val_split}\t{options.text_column}\t{options.label_column}",
             f"{path.resolve()}\t{stat.st_size}\t{stat.st_mtime_ns}"]
        ),
    )


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
