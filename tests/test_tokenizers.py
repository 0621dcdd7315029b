"""Character and word vocabularies: building, encoding, padded batches, vocab.json, and bad files."""
from __future__ import annotations

import json

import pytest
import torch

from zoo.data.tokenizers import Tokenizer, load_tokenizer
from zoo.errors import ArgumentError, DataError

TEXTS = ["to be or not to be", "that is the question"]


def test_char_vocabulary_puts_specials_first_then_the_most_frequent():
    tokenizer = Tokenizer.build(TEXTS)
    assert tokenizer.tokens[:3] == ["<pad>", "<unk>", " "]  # the space is the most frequent character
    assert tokenizer.pad_id == 0 and tokenizer.unk_id == 1 and tokenizer.bos_id is None
    ids = tokenizer.encode("to be!")
    assert ids[-1] == tokenizer.unk_id  # "!" was never seen
    assert tokenizer.decode(ids) == "to be<unk>"


def test_word_vocabulary_splits_words_and_punctuation_and_can_lowercase():
    tokenizer = Tokenizer.build(["The cat, the hat.", "THE END"], kind="word", lowercase=True, min_freq=2)
    assert tokenizer.tokens == ["<pad>", "<unk>", "the"]
    assert tokenizer.split("The cat, the hat.") == ["the", "cat", ",", "the", "hat", "."]
    assert tokenizer.decode(tokenizer.encode("the dog")) == "the <unk>"
    assert len(Tokenizer.build(TEXTS, kind="word", max_size=4)) == 4


def test_batches_pad_on_the_vocabularys_side_and_report_lengths():
    right = Tokenizer.build(TEXTS)
    ids, lengths = right.batch(["to", "be or"])
    assert ids.shape == (2, 5) and lengths.tolist() == [2, 5]
    assert ids[0, 2:].tolist() == [right.pad_id] * 3 and ids[0, :2].tolist() == right.encode("to")
    left = Tokenizer(right.tokens, padding_side="left")
    ids, _ = left.batch(["to", "be or"], max_length=4)
    assert ids[0].tolist() == [0, 0] + left.encode("to")
    assert ids[1].tolist() == left.encode("e or")  # "be or" cut to its last 4 characters
    assert ids.dtype == torch.long


def test_bos_and_aliases_round_trip():
    tokenizer = Tokenizer(["<pad>", "a", "b", "<s>"], pad="<pad>", unk="<pad>", bos="<s>", aliases={"\n": "<s>"})
    ids = tokenizer.encode("ab\nc", bos=True)
    assert ids == [3, 1, 2, 3, 0]  # bos, a, b, the line end as <s>, unknown as the pad id
    assert tokenizer.decode(ids[1:]) == "ab\n"


def test_vocab_json_round_trips_through_a_file_and_a_registered_name(tmp_path):
    tokenizer = Tokenizer.build(TEXTS, kind="word", bos=True)
    path = tokenizer.save(tmp_path / "vocab.json")
    assert json.loads(path.read_text())["format"] == "zoo-vocab"
    assert not list(tmp_path.glob(".*tmp"))  # written atomically, nothing left behind
    loaded = load_tokenizer(path)
    assert loaded.to_dict() == tokenizer.to_dict()
    bundled = load_tokenizer("lstm-text")  # registered by zoo_rnn (register_vocabularies)
    assert len(bundled) == 465 and bundled.padding_side == "left"


def test_bad_vocabularies_are_refused_and_named(tmp_path):
    with pytest.raises(DataError, match=r"vocabulary '.*missing.json' not found \(pass a vocab.json path"):
        load_tokenizer(tmp_path / "missing.json")
    with pytest.raises(DataError, match="'package:path' reference, which zoo no longer imports"):
        load_tokenizer("zoo_rnn:weights/lstm-text.vocab.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="is not valid JSON"):
        load_tokenizer(bad)
    bad.write_text(json.dumps({"format": "other"}))
    with pytest.raises(DataError, match="is not a zoo-vocab file of version 1"):
        load_tokenizer(bad)
    with pytest.raises(DataError, match=r"repeats tokens: \['a'\]"):
        Tokenizer(["<pad>", "<unk>", "a", "a"])
    with pytest.raises(DataError, match="the bos token '<s>' is not in the vocabulary"):
        Tokenizer(["<pad>", "<unk>"], bos="<s>")
    with pytest.raises(DataError, match="unknown vocabulary kind 'byte'"):
        Tokenizer(["<pad>", "<unk>"], kind="byte")
    with pytest.raises(ArgumentError, match="min_freq must be >= 1"):
        Tokenizer.build(TEXTS, min_freq=0)
