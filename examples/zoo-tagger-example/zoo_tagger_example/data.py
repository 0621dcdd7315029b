"""The tagged-lines format (a .tags file): one sentence a line, `token token ...<TAB>TAG TAG ...`, a tag per token."""
from __future__ import annotations

import random
from pathlib import Path

from zoo.data.formats import ReadOptions, TrainingData
from zoo.data.split import fingerprint
from zoo.errors import DataError


def detect(path: Path) -> bool:
    """A .tags file whose first line holds a tab."""
    if not (path.is_file() and path.suffix.lower() == ".tags"):
        return False
    with path.open(encoding="utf-8", errors="replace") as f:
        return "\t" in f.readline()


def load(path: Path, options: ReadOptions) -> TrainingData:
    """The sentences, split train/val by the seed; each item ``(text, [tag index per token])``.

    Raises:
        DataError: a line without a tab, or with a different number of tokens and tags (its number named).
    """
    sentences = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        text, tab, tags = line.partition("\t")
        if not tab or len(text.split()) != len(tags.split()) or not text.split():
            raise DataError(
                f"{path}:{number}: need 'tokens<TAB>tags' with one tag per token, got {line[:60]!r}",
                "write one sentence a line: the tokens, a tab, then as many tags",
            )
        sentences.append((text, tags.split()))
    classes = sorted({tag for _, tags in sentences for tag in tags})
    index = {tag: i for i, tag in enumerate(classes)}
    items = [(text, [index[t] for t in tags]) for text, tags in sentences]
    order = list(range(len(items)))
    random.Random(options.seed).shuffle(order)
    cut = max(1, round(len(items) * options.val_split))
    if len(items) < 2:
        raise DataError(f"{path} holds {len(items)} sentence(s)", "give two or more: some train, some validate")
    val, train = [items[i] for i in sorted(order[:cut])], [items[i] for i in sorted(order[cut:])]
    digest = fingerprint([f"{text}\t{tags}" for text, tags in items] + [f"split\t{options.val_split}\t{options.seed}"])
    return TrainingData("tagged-lines", "step-tagging", path, classes, train, val, fingerprint=digest)
