"""How far a reading is from the truth: edit distance, character error rate, word accuracy."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


def edit_distance(a: Sequence, b: Sequence) -> int:
    """Levenshtein distance: the insertions, deletions and substitutions that turn `a` into `b`."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (x != y))
    return row[-1]


def common_words(truth: Sequence[str], read: Sequence[str]) -> int:
    """How many words of `truth` the reading holds in order (their longest common subsequence)."""
    row = [0] * (len(read) + 1)
    for x in truth:
        previous = 0
        for j, y in enumerate(read, 1):
            previous, row[j] = row[j], previous + 1 if x == y else max(row[j], row[j - 1])
    return row[-1]


@dataclass
class TextScore:
    """Running totals over lines: character edits, words found, lines read exactly."""

    edits: int = 0
    characters: int = 0
    words_right: int = 0
    words: int = 0
    lines_right: int = 0
    lines: int = 0

    def add(self, truth: str, read: str) -> None:
        """Score one line's reading against its transcript."""
        self.edits += edit_distance(truth, read)
        self.characters += len(truth)
        self.words_right += common_words(truth.split(), read.split())
        self.words += len(truth.split())
        self.lines_right += truth == read
        self.lines += 1

    def result(self) -> dict[str, float]:
        """``cer``: character edits / transcript characters; ``word_accuracy``: transcript words read
        (in order) / transcript words; ``line_accuracy``: lines read exactly / lines. NaN with no lines."""
        nan = float("nan")
        return {
            "cer": self.edits / self.characters if self.characters else nan,
            "word_accuracy": self.words_right / self.words if self.words else nan,
            "line_accuracy": self.lines_right / self.lines if self.lines else nan,
        }
