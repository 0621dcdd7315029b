"""CTC prefix beam search (zoo_ocr.ctc.beam_decode) against the exact answer and against greedy decoding."""
from __future__ import annotations

import itertools
import math
from collections import defaultdict

import pytest
import torch

from zoo_ocr.ctc import beam_decode, greedy_decode

LABELS = ["[blank]", "a", "b"]


def exact(log_probs: torch.Tensor, labels, blank: int = 0) -> dict[str, float]:
    """Every text's probability, summed over all C**T column paths that collapse to it."""
    probs = log_probs.softmax(-1).tolist()
    texts: dict[str, float] = defaultdict(float)
    for path in itertools.product(range(len(labels)), repeat=len(probs)):
        p = math.prod(column[k] for column, k in zip(probs, path))
        collapsed = [k for i, k in enumerate(path) if k != blank and (i == 0 or k != path[i - 1])]
        texts["".join(labels[k] for k in collapsed)] += p
    return texts


@pytest.mark.parametrize("seed", range(6))
def test_a_wide_beam_gives_the_exact_probabilities_of_the_most_probable_texts(seed):
    torch.manual_seed(seed)
    scores = torch.randn(1, 6, 3) * 2
    truth = sorted(exact(scores[0], LABELS).items(), key=lambda item: -item[1])
    found = beam_decode(scores, LABELS, beam_width=3 ** 6, top_n=5, prune=1e-300)[0]
    assert [t for t, _ in found] == [t for t, _ in truth[:5]]
    assert [p for _, p in found] == pytest.approx([p for _, p in truth[:5]], rel=1e-5)


def test_summing_paths_can_prefer_another_text_than_the_greedy_path():
    # Columns: 'a' at 0.4 (blank 0.3, 'b' 0.3), twice. The best path 'aa' gives "a" (0.16), but "a" also
    # comes from a-blank, blank-a, a-a... and "b" from its own paths; the exact sums decide.
    probs = torch.tensor([[[0.3, 0.4, 0.3], [0.3, 0.4, 0.3]]]).log()
    assert greedy_decode(probs, LABELS)[0].text == "a"
    found = dict(beam_decode(probs, LABELS, beam_width=9, top_n=9)[0])
    assert found == pytest.approx(exact(probs[0], LABELS))
    assert sum(found.values()) == pytest.approx(1.0)


def test_a_confident_line_reads_the_same_greedy_and_by_beam():
    labels = ["[blank]", *"helo"]
    path = [1, 0, 2, 3, 0, 3, 4]  # h e l - l o: the blank keeps the double l
    scores = torch.full((1, len(path), len(labels)), -8.0)
    for t, k in enumerate(path):
        scores[0, t, k] = 8.0
    assert greedy_decode(scores, labels)[0].text == "hello"
    best, probability = beam_decode(scores, labels, top_n=1)[0][0]
    assert best == "hello" and probability > 0.99


def test_bad_shapes_and_widths_are_refused():
    from zoo.errors import ArgumentError

    with pytest.raises(ArgumentError, match=r"CTC decoding needs scores \[batch, time, 3\], got \[2, 4\]"):
        beam_decode(torch.zeros(2, 4), LABELS)
    with pytest.raises(ArgumentError, match="beam_width and top_n must be 1 or more"):
        beam_decode(torch.zeros(1, 4, 3), LABELS, beam_width=0)
