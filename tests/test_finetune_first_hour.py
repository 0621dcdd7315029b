"""Issue 11's first hour of fine-tuning: a model without pretrained weights trains in full by default,
and an interrupted run keeps its checkpoint and says how to resume it."""
from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch

import zoo
from finetune_data import real_digits, subset
from helpers import run_zoo
from zoo.errors import ArgumentError
from zoo.finetuning.strategy import RandomBackboneWarning
from zoo.modeldir import read_config

QUICK = dict(epochs=1, steps_per_epoch=2, batch_size=16)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """20 real handwritten digits per class."""
    return real_digits(tmp_path_factory, per_class=20)


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """scikit-image's 100 LFW faces and 100 non-faces, as `zoo data lfw-faces` writes them."""
    folder = tmp_path_factory.mktemp("lfw") / "faces"
    result = run_zoo("data", "lfw-faces", str(folder))
    assert result.returncode == 0, result.stderr
    return folder


def random_backbone_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, RandomBackboneWarning)]


# -- 4. fine-tuning what has no pretrained weights -----------------------------------------------
@pytest.mark.slow
def test_zoo_finetune_vgg_mini_on_faces_beats_the_majority_by_ten_points_with_default_options(faces, tmp_path):
    result = run_zoo("finetune", "vgg-mini", "--data", str(faces), "--output", str(tmp_path / "o"), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["val_accuracy"] >= summary["majority_baseline"] + 0.10, summary["history"]
    assert summary["epochs_run"] <= 5 and summary["features"] == "none"
    assert result.stderr.splitlines() == [
        "Warning: vgg-mini has no pretrained weights, so all of it trains (strategy full), not only a new head"
    ]
    config = read_config(tmp_path / "o")
    assert config["training"]["strategy"] == "full"


def test_random_init_defaults_to_full_with_a_note(digits, tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = zoo.finetune("lenet5", digits, output=str(tmp_path / "o"), pretrained=False, **QUICK)
    assert random_backbone_warnings(caught) == [
        "lenet5 has no pretrained weights, so all of it trains (strategy full), not only a new head"
    ]
    assert result.features == "none"
    assert read_config(tmp_path / "o")["training"]["strategy"] == "full"


def test_an_explicit_head_on_a_random_backbone_warns_and_is_kept(digits, tmp_path):
    with pytest.warns(RandomBackboneWarning, match="vgg-mini has no pretrained weights: strategy head trains a new "
                      r"head on a random, frozen backbone.*\(use strategy full\)"):
        result = zoo.finetune("vgg-mini", digits, output=str(tmp_path / "o"), strategy="head", image_size=16, **QUICK)
    assert result.features == "computed"


def test_the_cli_says_so_in_one_line(digits, tmp_path):
    result = run_zoo("finetune", "lenet5", "--random-init", "--strategy", "head", "--data", str(digits),
                     "-o", str(tmp_path / "o"), "--epochs", "1", "--steps-per-epoch", "2", "--quiet")
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "Warning: lenet5 has no pretrained weights: strategy head trains a new head on a random, frozen backbone, "
        "which rarely beats the majority baseline (use strategy full)"
    ]


def test_pretrained_weights_keep_head_as_the_default_and_say_nothing(digits, tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = zoo.finetune("lenet5.digits", digits, output=str(tmp_path / "o"), **QUICK)
    assert random_backbone_warnings(caught) == [] and result.features == "computed"


def test_last_n_beyond_the_models_groups_is_refused_and_says_how_many_it_has(digits, tmp_path):
    with pytest.raises(ArgumentError, match=r"strategy last-n:99 asks for more groups than lenet5 has: it has 5 "
                       r"freeze groups \(conv1, conv2, fc1, fc2, head\).*use last-n:K with K from 1 to 4, or full"):
        zoo.finetune("lenet5", digits, output=str(tmp_path / "o"), strategy="last-n:99", **QUICK)
    assert not (tmp_path / "o").exists()
    result = run_zoo("finetune", "lenet5", "--data", str(digits), "-o", str(tmp_path / "o"), "--strategy", "last-n:99")
    assert result.returncode == 1 and result.stderr.startswith("Error: strategy last-n:99 asks for more groups")
    zoo.finetune("lenet5", digits, output=str(tmp_path / "o"), strategy="last-n:4", **QUICK)  # the most there is


# -- 5. interruption -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def more_digits(tmp_path_factory):
    """40 real handwritten digits per class: epochs long enough to be interrupted."""
    from zoo.data.packaged import write_dataset

    root = tmp_path_factory.mktemp("digits40")
    write_dataset("digits", root / "all")
    return subset(root / "all", root / "small", per_class=40)


def interrupt_after_first_checkpoint(args: list[str], checkpoint, signum: int) -> subprocess.CompletedProcess:
    """Run `zoo *args`, send `signum` once its first epoch's checkpoint exists, and wait for it to stop."""
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "zoo"), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ),
    )
    deadline = time.monotonic() + 300
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=300)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_after_the_step_keeps_the_checkpoint_and_prints_the_resume_command(more_digits, tmp_path, signum):
    out = tmp_path / "out"
    checkpoint = tmp_path / ".out.partial" / "checkpoint.pt"
    args = ["finetune", "lenet5", "--data", str(more_digits), "--strategy", "full", "--epochs", "8", "--no-cache", "-o", str(out)]
    stopped = interrupt_after_first_checkpoint(args, checkpoint, signum)
    assert stopped.returncode == 128 + signum, stopped.stderr
    epoch = torch.load(checkpoint, weights_only=True)["epoch"]
    assert 1 <= epoch < 8 and not out.exists()
    assert stopped.stderr.splitlines() == [
        f"Interrupted: {signal.Signals(signum).name} after epoch {epoch} of 8: the checkpoint {checkpoint} is kept; "
        f"to continue: {shlex.join(['zoo', *args, '--resume'])}"
    ]
    assert stopped.stdout == ""

    again = run_zoo(*args)  # the same command without --resume: refused before any training, checkpoint kept
    assert again.returncode == 1
    assert again.stderr == (
        f"Error: an interrupted run left a checkpoint in '{checkpoint.parent}' "
        "(pass --resume to continue it, or --overwrite to start over)\n"
    )
    assert torch.load(checkpoint, weights_only=True)["epoch"] == epoch

    resumed = run_zoo(*args, "--resume", "--json")
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert [h["epoch"] for h in summary["history"]] == list(range(1, 9))
    assert read_config(out)["training"]["resumed_from_epoch"] == epoch
    assert not checkpoint.parent.exists()


def test_overwrite_starts_over_from_a_left_checkpoint(digits, tmp_path):
    from zoo.finetuning.loop import _save_checkpoint

    _save_checkpoint(tmp_path / ".o.partial" / "checkpoint.pt", {"key": "an interrupted run", "epoch": 1})
    with pytest.raises(ArgumentError, match=r"an interrupted run left a checkpoint in .*\.o\.partial.*"
                       r"pass --resume to continue it, or --overwrite to start over"):
        zoo.finetune("lenet5.digits", digits, output=str(tmp_path / "o"), **QUICK)
    assert (tmp_path / ".o.partial" / "checkpoint.pt").is_file()
    result = zoo.finetune("lenet5.digits", digits, output=str(tmp_path / "o"), overwrite=True, **QUICK)
    config = read_config(result.output)
    assert config["training"]["resumed_from_epoch"] == 0 and not (tmp_path / ".o.partial").exists()


def test_the_loop_stops_after_the_current_step_and_names_the_last_checkpoint(tmp_path):
    from zoo.finetuning.jobs import HeadOnFeatures
    from zoo.finetuning.loop import LoopOptions, StopRequest, TrainingInterrupted, fit

    torch.manual_seed(0)
    head = torch.nn.Linear(4, 2)
    data = (torch.randn(64, 4), torch.randint(0, 2, (64,)))
    job = HeadOnFeatures(head, [{"params": list(head.parameters()), "lr": 1e-2}], data, data, batch_size=8, seed=0)
    options = LoopOptions(epochs=3, seed=0, label_smoothing=0, weight_decay=0, warmup=0, patience=0, max_grad_norm=0)
    stop, steps = StopRequest(), []

    def progress(stage: str, done: int, total: int, info: dict) -> None:
        if stage == "train":
            steps.append((info["epoch"], done))
            if (info["epoch"], done) == (2, 3):  # a signal arrives during the third step of epoch 2
                stop.signum = signal.SIGINT

    checkpoint = tmp_path / "checkpoint.pt"
    with pytest.raises(TrainingInterrupted, match=rf"SIGINT after epoch 1 of 3: the checkpoint {checkpoint} is kept"):
        fit(job, options, torch.device("cpu"), checkpoint, "key", False, progress, stop)
    assert steps[-1] == (2, 3) and len(steps) == 8 + 3
    assert torch.load(checkpoint, weights_only=True)["epoch"] == 1


def test_a_signal_before_the_first_checkpoint_says_there_is_nothing_to_resume(tmp_path):
    from zoo.finetuning.loop import TrainingInterrupted

    stopped = TrainingInterrupted(signal.SIGTERM, tmp_path / "checkpoint.pt", 0, 5)
    assert stopped.checkpoint is None
    assert str(stopped) == "SIGTERM during epoch 1 of 5, before its first checkpoint (run it again to start over)"
