"""zoo's own digit classifiers: the shipped files, their recipes, and `zoo predict` on any digit picture."""
from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import zoo
from zoo.cli import cli
from zoo.predict.images import classify_images
from zoo_cnn.digits import to_model_input

from helpers import ROOT

DIGITS = ("mlp-digits", "lenet5-digits")


def _recipes():
    spec = importlib.util.spec_from_file_location("train_digits", ROOT / "scripts" / "train_digits.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being made
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def recipes():
    return _recipes()


@pytest.fixture(scope="module")
def test_split(recipes):
    _, _, x_test, y_test = recipes.digits_split()
    return x_test, y_test


def _recorded_accuracy(name: str) -> float:
    return zoo.get_spec(name).metrics["accuracy"]


@pytest.mark.parametrize("name", DIGITS)
def test_shipped_digit_models_score_their_recorded_accuracy(name, recipes, test_split):
    model = zoo.load(name)
    assert model.zoo.source.startswith("bundled in") and model.zoo.labels == [str(d) for d in range(10)]
    x_test, y_test = test_split
    side = model.zoo.preprocess["input_size"][-1]
    accuracy = recipes.accuracy(model, to_model_input(x_test, side), y_test)
    assert round(accuracy, 4) == _recorded_accuracy(name)


def test_lenet5_digits_reaches_at_least_095():
    assert _recorded_accuracy("lenet5-digits") >= 0.95


@pytest.mark.slow
@pytest.mark.parametrize("name", DIGITS)
def test_rerunning_a_recipe_reproduces_its_recorded_accuracy(name, recipes, capsys):
    model, accuracy = recipes.train(name, log=sys.stdout)
    assert accuracy >= _recorded_accuracy(name) - 0.005  # the same, up to a different CPU's rounding
    log = capsys.readouterr().out.splitlines()
    assert len(log) == recipes.RECIPES[name].epochs and all("grad_norm" in line for line in log)


def _picture(digit8, dark_on_light: bool, mode: str = "L") -> Image.Image:
    """A scikit-learn digit drawn as a large picture, as a scan or a drawing program would give it."""
    big = Image.fromarray((digit8.numpy() * 255).astype(np.uint8)).resize((120, 96), Image.Resampling.BICUBIC)
    canvas = Image.new("L", (160, 140), 0)
    canvas.paste(big, (25, 20))  # off-centre, with a wide border
    if dark_on_light:
        canvas = Image.fromarray(255 - np.asarray(canvas))
    return canvas.convert(mode)


def test_any_picture_of_a_digit_is_read_gray_cropped_resized_and_inverted(tmp_path, test_split):
    x_test, y_test = test_split
    paths = []
    for i in range(60):
        path = tmp_path / f"{i}.png"
        _picture(x_test[i, 0], dark_on_light=i % 2 == 0, mode="RGB" if i % 3 else "L").save(path)
        paths.append(path)
    results = classify_images(zoo.load("lenet5-digits"), paths, top_k=1)
    predicted = [int(r["predictions"][0]["label"]) for r in results]
    assert np.mean(np.array(predicted) == y_test[:60].numpy()) >= 0.9


def test_zoo_predict_lenet5_digits_on_a_png(tmp_path, test_split):
    x_test, y_test = test_split
    path = tmp_path / "digit.png"
    _picture(x_test[3, 0], dark_on_light=True, mode="RGBA").save(path)
    result = CliRunner().invoke(cli, ["predict", "lenet5-digits", str(path), "--json", "-k", "3"])
    assert result.exit_code == 0, result.output
    [record] = json.loads(result.output)
    assert record["predictions"][0]["label"] == str(int(y_test[3]))
    assert len(record["predictions"]) == 3 and record["predictions"][0]["probability"] > 0.5


def test_a_blank_picture_is_refused_with_the_remedy(tmp_path):
    path = tmp_path / "blank.png"
    Image.new("L", (40, 40), 255).save(path)
    result = CliRunner().invoke(cli, ["predict", "lenet5-digits", str(path)])
    assert result.exit_code == 1
    assert "Error: the image is blank: no digit found (pass a picture of one digit on a plain background)" in result.output
    result = CliRunner().invoke(cli, ["predict", "lenet5-digits", str(path), "--generate", "5"])
    assert result.exit_code == 2 and "--generate needs a language model" in result.output
