"""Issue 11's first hour of fine-tuning: a model without pretrained weights trains in full by default,
and an interrupted run keeps its checkpoint and says how to resume it."""
from __future__ import annotations

import json
import warnings

import pytest

import zoo
from finetune_data import subset
from helpers import run_zoo
from zoo.errors import ArgumentError
from zoo.finetuning.strategy import RandomBackboneWarning

QUICK = dict(epochs=1, steps_per_epoch=2, batch_size=16)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """20 real handwritten digits per class."""
    from zoo.data.packaged import write_dataset

    root = tmp_path_factory.mktemp("digits")
    write_dataset("digits", root / "all")
    return subset(root / "all", root / "small", per_class=20)


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
    config = json.loads((tmp_path / "o" / "config.json").read_text())
    assert config["training"]["strategy"] == "full"


def test_random_init_defaults_to_full_with_a_note(digits, tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = zoo.finetune("lenet5", digits, output=str(tmp_path / "o"), pretrained=False, **QUICK)
    assert random_backbone_warnings(caught) == [
        "lenet5 has no pretrained weights, so all of it trains (strategy full), not only a new head"
    ]
    assert result.features == "none"
    assert json.loads((tmp_path / "o" / "config.json").read_text())["training"]["strategy"] == "full"


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
