"""zoo.finetune / zoo finetune on small real data (scikit-learn's digits) with the zoo's own CNNs."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import zoo
from helpers import run_zoo
from finetune_data import real_digits, write_folder
from zoo.errors import ArgumentError, DataError
from zoo.modeldir import read_config

DIGITS_ARGS = dict(epochs=2, batch_size=32, seed=0, strategy="head")  # vgg-mini has no weights: head is asked for


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """40 real handwritten digits per class (400 images, 8×8 grey)."""
    return real_digits(tmp_path_factory, per_class=40)


def weights_of(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


# -- the run and its outputs ---------------------------------------------------------------------
@pytest.mark.slow
def test_the_model_directory_holds_labels_metrics_and_plot_and_load_predict_info_take_it(digits, tmp_path):
    result = zoo.finetune("lenet5", digits, output=str(tmp_path / "out"), epochs=3, strategy="full", lr=3e-3)
    out = tmp_path / "out"
    assert result.output == out and result.val_accuracy > 0.5
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "confusion_matrix.png", "model.safetensors"]
    config = read_config(out)
    assert config["labels"] == [str(d) for d in range(10)] and config["num_classes"] == 10
    metrics = config["metrics"]
    assert metrics["val_accuracy"] == pytest.approx(result.val_accuracy)
    assert set(metrics["per_class_accuracy"]) == set(config["labels"])
    matrix = metrics["confusion_matrix"]
    assert sum(map(sum, matrix)) == metrics["val_size"] == 80
    assert sum(matrix[i][i] for i in range(10)) / 80 == pytest.approx(metrics["val_accuracy"])
    assert config["training"]["args"]["strategy"] == "full" and config["training"]["args"]["epochs"] == 3
    assert config["preprocess"]["input_size"] == [1, 32, 32]
    assert not any(p.name.startswith(".out") for p in tmp_path.iterdir())  # no partial or temporary folder left

    model = zoo.load(str(out))
    assert model.zoo.labels == config["labels"]
    shown = run_zoo("predict", str(out), str(digits / "7" / "0000.png"), "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)[0]["predictions"][0]["label"] in config["labels"]
    info = run_zoo("info", str(out), "--json")
    assert json.loads(info.stdout)["labels"] == config["labels"]


@pytest.mark.slow
def test_cli_json_prints_only_the_summary_on_stdout(digits, tmp_path):
    result = run_zoo("finetune", "lenet5.digits", "--data", str(digits), "--output", str(tmp_path / "o"), "--epochs", "1", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert 0 <= summary["val_accuracy"] <= 1 and summary["output"] == str(tmp_path / "o")
    assert summary["features"] == "computed" and summary["epochs_run"] == 1
    assert summary["data"]["train_size"] == 320 and result.stderr == ""


@pytest.mark.slow
def test_cli_reports_skipped_files_and_one_line_errors(tmp_path):
    write_folder(tmp_path / "data", {"a": 6, "b": 6})
    (tmp_path / "data" / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    ok = run_zoo("finetune", "lenet5", "--data", str(tmp_path / "data"), "-o", str(tmp_path / "o"), "--epochs", "1")
    assert ok.returncode == 0, ok.stderr
    assert "Warning: skipped 1 file(s): corrupt or truncated image" in ok.stderr
    assert ok.stdout.splitlines()[0].split() == ["output", str(tmp_path / "o")]
    strict = run_zoo("finetune", "lenet5", "--data", str(tmp_path / "data"), "-o", str(tmp_path / "s"), "--strict-data")
    assert strict.returncode == 1 and strict.stderr.count("\n") == 1
    assert "broken.png': corrupt or truncated image" in strict.stderr
    missing = run_zoo("finetune", "lenet5", "--data", str(tmp_path / "nope"))
    assert missing.returncode == 1
    assert missing.stderr == f"Error: data path '{tmp_path / 'nope'}' does not exist (check the path given to --data)\n"
    typo = run_zoo("finetune", "lenet", "--data", str(tmp_path / "nope"))  # the name is checked before the data
    assert typo.returncode == 1 and typo.stderr.startswith("Error: unknown model 'lenet' (did you mean 'lenet5'")


def test_an_existing_output_is_kept_unless_overwrite(digits, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    with pytest.raises(ArgumentError, match="already exists.*--overwrite"):
        zoo.finetune("lenet5", digits, output=str(out), epochs=1)
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    # --overwrite replaces only a zoo model directory or an empty folder (tests/test_ownership.py).
    with pytest.raises(ArgumentError, match="is not a zoo model directory"):
        zoo.finetune("lenet5", digits, output=str(out), epochs=1, overwrite=True)
    assert [p.name for p in out.iterdir()] == ["mine.txt"]


def test_the_output_may_not_hold_the_data_or_lie_inside_it(tmp_path):
    data = write_folder(tmp_path / "data", {"a": 3, "b": 3})
    before = sorted(p.relative_to(data) for p in data.rglob("*"))
    # --overwrite on the data folder (or a parent) would delete the data.
    for output in (data, tmp_path):
        with pytest.raises(ArgumentError, match="holds the data"):
            zoo.finetune("lenet5", data, output=str(output), epochs=1, overwrite=True)
    # Inside it, the model directory (its confusion_matrix.png) would be read as a class next time.
    with pytest.raises(ArgumentError, match="is inside the data folder.*outside the data folder"):
        zoo.finetune("lenet5", data, output=str(data / "out"), epochs=1)
    assert sorted(p.relative_to(data) for p in data.rglob("*")) == before


def test_bad_data_leaves_nothing_behind(tmp_path):
    write_folder(tmp_path / "data", {"only": 4})
    with pytest.raises(DataError, match="only one class"):
        zoo.finetune("lenet5", tmp_path / "data", output=str(tmp_path / "out"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


@pytest.mark.parametrize(
    "options, message",
    [
        ({"strategy": "last-n:0"}, "unknown strategy 'last-n:0'"),
        ({"strategy": "half"}, "use head, last-n:K"),
        ({"epochs": 0}, "epochs must be a positive integer"),
        ({"lr": -1.0}, "lr must be positive"),
        ({"val_split": 1.0}, "val_split must be between 0 and 1"),
        ({"device": "tpu"}, "unknown device 'tpu'"),
        ({"epoch": 3}, "finetune takes no option 'epoch'"),
    ],
)
def test_bad_options_are_refused_before_any_work(digits, tmp_path, options, message):
    with pytest.raises(ArgumentError, match=message):
        zoo.finetune("lenet5", digits, output=str(tmp_path / "o"), **options)
    assert not (tmp_path / "o").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error of a machine without a GPU")
def test_cuda_without_a_gpu_is_an_error(digits, tmp_path):
    with pytest.raises(ArgumentError, match="no CUDA GPU is available.*--device cpu or auto"):
        zoo.finetune("lenet5", digits, output=str(tmp_path / "o"), device="cuda")


def test_an_image_model_refuses_text_and_a_model_without_the_head_protocol_is_named(tmp_path):
    for label in ("a", "b"):
        (tmp_path / "t" / label).mkdir(parents=True)
        for i in range(3):
            (tmp_path / "t" / label / f"{i}.txt").write_text(f"text {label} {i}")
    with pytest.raises(ArgumentError, match="lenet5 has no tokenizer, so it cannot read text"):
        zoo.finetune("lenet5", tmp_path / "t", output=str(tmp_path / "o"))
    with pytest.raises(ArgumentError, match="--augment applies to images.*drop --augment"):
        zoo.finetune("lenet5", tmp_path / "t", output=str(tmp_path / "o"), augment=True)
    with pytest.raises(ArgumentError, match="sequential has no forward_features"):
        zoo.finetune(torch.nn.Sequential(torch.nn.Linear(2, 2)), tmp_path / "t", output=str(tmp_path / "o"))


def test_a_module_zoo_could_not_load_back_is_refused_before_training_and_left_untouched(digits, tmp_path):
    import timm

    bare = timm.create_model("resnet18", pretrained=False, num_classes=3)
    with pytest.raises(ArgumentError, match="resnet: it carries no zoo metadata.*could not be loaded back.*zoo.load"):
        zoo.finetune(bare, digits, output=str(tmp_path / "o"), epochs=1)
    assert not hasattr(bare, "zoo") and bare.get_classifier().out_features == 3
    model = zoo.load("lenet5")
    model.zoo.arch = "my-lenet"
    with pytest.raises(ArgumentError, match="architecture 'my-lenet' is not registered"):
        zoo.finetune(model, digits, output=str(tmp_path / "o"), epochs=1)
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_a_lone_last_sample_does_not_make_a_batch_of_one_for_batchnorm(tmp_path):
    # 5 training images in batches of 4: a last batch of one breaks BatchNorm at a 1x1 feature map.
    data = write_folder(tmp_path / "data", {"a": 4, "b": 3})
    result = zoo.finetune(
        "resnet18", data, output=str(tmp_path / "o"), pretrained=False, image_size=32, strategy="full",
        batch_size=4, epochs=1,
    )
    assert result.data["train_size"] == 5 and len(result.history) == 1


# -- cached features -----------------------------------------------------------------------------
@pytest.mark.slow
def test_cached_features_are_reused_and_keyed_by_data_and_preprocessing(digits, tmp_path):
    first = zoo.finetune("vgg-mini", digits, output=str(tmp_path / "a"), **DIGITS_ARGS)
    again = zoo.finetune("vgg-mini", digits, output=str(tmp_path / "b"), **DIGITS_ARGS)
    assert (first.features, again.features) == ("computed", "cached")
    assert again.metrics["val_loss"] == first.metrics["val_loss"]
    bigger = zoo.finetune("vgg-mini", digits, output=str(tmp_path / "c"), image_size=36, **DIGITS_ARGS)
    assert bigger.features == "computed"
    (digits / "0" / "0000.png").touch()
    touched = zoo.finetune("vgg-mini", digits, output=str(tmp_path / "d"), **DIGITS_ARGS)
    assert touched.features == "computed"


@pytest.mark.slow
def test_cached_and_naive_paths_train_the_same_head(digits, tmp_path):
    cached = zoo.finetune("vgg-mini", digits, output=str(tmp_path / "c"), **DIGITS_ARGS)
    naive = zoo.finetune("vgg-mini", digits, output=str(tmp_path / "n"), cache=False, **DIGITS_ARGS)
    assert (cached.features, naive.features) == ("computed", "none")
    assert cached.val_accuracy == naive.val_accuracy
    assert cached.metrics["val_loss"] == pytest.approx(naive.metrics["val_loss"], abs=1e-5)
    a, b = weights_of(tmp_path / "c"), weights_of(tmp_path / "n")
    assert torch.allclose(a["head.weight"], b["head.weight"], atol=1e-5)


# -- strategies ----------------------------------------------------------------------------------
def changed_groups(before: dict, after: dict) -> set[str]:
    return {key.split(".")[0] for key in before if key in after and not torch.equal(before[key], after[key])}


@pytest.mark.parametrize(
    "strategy, trained",
    [("head", {"head"}), ("last-n:1", {"head", "fc2"}), ("last-n:2", {"head", "fc2", "fc1"}),
     ("full", {"head", "fc2", "fc1", "conv1", "conv2"})],
)
@pytest.mark.slow
def test_strategies_train_exactly_their_freeze_groups(digits, tmp_path, strategy, trained):
    torch.manual_seed(0)
    model = zoo.load("lenet5")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    zoo.finetune(model, digits, output=str(tmp_path / "o"), strategy=strategy, epochs=1)
    after = weights_of(tmp_path / "o")
    assert changed_groups(before, after) == trained


def test_full_uses_lower_learning_rates_below_the_head():
    from zoo.finetuning.strategy import Strategy, apply_strategy

    groups = apply_strategy(zoo.load("lenet5"), Strategy.parse("full"), lr=1e-2, lr_decay=0.5)
    assert [(g["name"], g["lr"]) for g in groups] == [
        ("conv1", 1e-2 / 16), ("conv2", 1e-2 / 8), ("fc1", 1e-2 / 4), ("fc2", 1e-2 / 2), ("head", 1e-2)
    ]


@pytest.mark.slow
def test_frozen_batchnorm_keeps_its_running_statistics(digits, tmp_path):
    torch.manual_seed(0)
    model = zoo.load("vgg-mini", batch_norm=True)
    before = {k: v.clone() for k, v in model.state_dict().items() if "running_mean" in k}
    zoo.finetune(model, digits, output=str(tmp_path / "o"), strategy="last-n:1", epochs=1, augment=True)
    after = weights_of(tmp_path / "o")
    frozen = [k for k in before if not k.startswith(("stages.2", "head"))]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)
    trainable_bn = [k for k in before if k.startswith("stages.2")]
    assert trainable_bn and not all(torch.equal(before[k], after[k]) for k in trainable_bn)


# -- determinism and resume ----------------------------------------------------------------------
@pytest.mark.slow
def test_the_same_seed_gives_the_same_model_with_augmentation(digits, tmp_path):
    runs = [
        zoo.finetune("lenet5", digits, output=str(tmp_path / name), augment=True, strategy="full", seed=seed, epochs=1)
        for name, seed in (("a", 3), ("b", 3), ("c", 4))
    ]
    assert runs[0].features == "none"
    assert runs[0].metrics["val_loss"] == runs[1].metrics["val_loss"] != runs[2].metrics["val_loss"]


@pytest.mark.slow
def test_resume_after_a_kill_reaches_the_uninterrupted_result(digits, tmp_path):
    args = ["finetune", "lenet5", "--data", str(digits), "--strategy", "full", "--epochs", "5", "--no-cache", "--quiet"]
    whole = run_zoo(*args, "--output", str(tmp_path / "whole"), "--json")
    assert whole.returncode == 0, whole.stderr

    out = tmp_path / "killed"
    checkpoint = tmp_path / ".killed.partial" / "checkpoint.pt"
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "zoo"), *args, "--output", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ),
    )
    epoch = 0
    deadline = time.monotonic() + 300
    while epoch < 1 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
        if checkpoint.exists():
            epoch = torch.load(checkpoint, weights_only=True)["epoch"]
    process.send_signal(signal.SIGKILL)
    process.wait()
    epoch = torch.load(checkpoint, weights_only=True)["epoch"]
    assert 1 <= epoch < 5 and not out.exists(), "the run must be killed between two epochs"

    resumed = run_zoo(*args, "--output", str(out), "--resume", "--json")
    assert resumed.returncode == 0, resumed.stderr
    a, b = json.loads(whole.stdout), json.loads(resumed.stdout)
    assert [h["val_loss"] for h in a["history"]] == [h["val_loss"] for h in b["history"]]
    assert a["val_accuracy"] == b["val_accuracy"]
    config = read_config(out)
    assert config["training"]["resumed_from_epoch"] == epoch
    w1, w2 = weights_of(tmp_path / "whole"), weights_of(out)
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    assert not checkpoint.parent.exists()


def test_resume_refuses_a_checkpoint_of_other_options(digits, tmp_path):
    from zoo.finetuning.loop import _save_checkpoint

    _save_checkpoint(tmp_path / ".o.partial" / "checkpoint.pt", {"key": "another run", "epoch": 1})
    with pytest.raises(ArgumentError, match="made with other options or data.*run without --resume"):
        zoo.finetune("lenet5", digits, output=str(tmp_path / "o"), resume=True, epochs=1)


def test_early_stopping_keeps_the_best_epoch():
    from zoo.training import EarlyStopping

    stopper = EarlyStopping(patience=2)
    improved = [stopper.update(epoch, loss) for epoch, loss in enumerate([1.0, 0.5, 0.7, 0.6])]
    assert improved == [True, True, False, False]
    assert stopper.should_stop and stopper.best_epoch == 1 and stopper.best_loss == 0.5


def test_batch_size_one_with_training_batchnorm_is_refused_before_training(digits, tmp_path):
    model = zoo.load("vgg-mini", batch_norm=True, num_classes=10)
    with pytest.raises(ArgumentError, match=r"--batch-size 1 cannot train this model's BatchNorm layers"):
        zoo.finetune(model, digits, batch_size=1, strategy="full", epochs=1, output=str(tmp_path / "o"), image_size=16)
    assert not (tmp_path / "o").exists()
