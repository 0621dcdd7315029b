"""The command line: output on stdout, one-line errors with exit codes, no torch on the listing path."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

import zoo
from zoo.cli import cli

from helpers import run_zoo


@pytest.fixture
def invoke():
    runner = CliRunner()

    def invoke(*args, **env):
        return runner.invoke(cli, list(args), env=env or None, catch_exceptions=False)

    return invoke


def test_list_json_has_family_tasks_and_parameter_counts(invoke):
    result = invoke("list", "--json")
    assert result.exit_code == 0
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["perceptron"]["family"] == "perceptron" and rows["perceptron"]["num_params"] == 6
    assert rows["mlp"]["tasks"] == ["tabular-classification", "image-classification"]
    assert rows["mlp"]["num_params"] == 17226


def test_list_table_and_filters(invoke):
    result = invoke("list", "perc*", "--family", "perceptron")
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "FAMILY", "TASKS", "PARAMS", "AVAILABLE", "ALIASES", "/", "WEIGHTS"]
    assert [line.split()[0] for line in lines[1:]] == ["perceptron", "perceptron-logistic"]
    assert invoke("list", "--family", "no-such-family").stdout.splitlines()[1:] == []


def test_info_shows_activations_and_parameters(invoke):
    result = invoke("info", "mlp")
    assert result.exit_code == 0
    assert "activation choices  sigmoid, tanh, relu, leaky_relu, elu, gelu, silu, softplus" in result.stdout
    assert "parameters          17,226" in result.stdout
    data = json.loads(invoke("info", "perceptron", "--json").stdout)
    assert data["num_params"] == 6 and data["plugin"] == "zoo_perceptron" and data["input"]["shape"] == [2]


def test_unknown_name_exits_1_with_one_line_and_a_suggestion():
    result = run_zoo("info", "mpl")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == "Error: unknown model 'mpl' (did you mean 'mlp'?)\n"


def test_usage_errors_exit_2():
    assert run_zoo("list", "--no-such-flag").returncode == 2
    assert run_zoo("info").returncode == 2


def test_zoo_debug_shows_the_traceback():
    result = run_zoo("info", "mpl", env={"ZOO_DEBUG": "1"})
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr and "UnknownModelError" in result.stderr


def test_version_and_help_with_examples(invoke):
    assert invoke("--version").stdout.strip() == f"zoo, version {zoo.__version__}"
    help_text = invoke("--help").stdout
    assert "Examples:" in help_text and "zoo list 'resnet*' --family cnn --pretrained" in help_text
    for command in ("list", "info", "plugins"):
        assert "Examples:" in invoke(command, "--help").stdout


@pytest.mark.parametrize("args", [["list"], ["list", "--json"], ["info", "mlp"], ["plugins"]])
def test_listing_commands_import_neither_torch_nor_timm(args):
    code = (
        "import sys\n"
        "from zoo.cli import cli\n"
        f"cli.main(args={args!r}, standalone_mode=False)\n"
        "heavy = sorted(m for m in ('torch', 'timm', 'onnx', 'torchvision') if m in sys.modules)\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stderr


def test_a_closed_pipe_is_not_an_error():
    """`zoo list | head -1`: the reader leaves early; zoo stops without a traceback or an Error line."""
    import os

    exe = os.path.join(os.path.dirname(sys.executable), "zoo")
    result = subprocess.run(f"'{exe}' list | head -1", shell=True, capture_output=True, text=True)
    assert result.stdout.startswith("NAME")
    assert "Error" not in result.stderr and "Traceback" not in result.stderr


def test_info_and_load_on_a_folder_that_is_no_model_directory_say_so(tmp_path, monkeypatch):
    """Not "unknown model": a path that exists but holds no config.json is named as such, with or without a slash."""
    (tmp_path / "md2").mkdir()
    monkeypatch.chdir(tmp_path)
    for name in ("md2", "./md2"):
        result = run_zoo("info", name)
        assert result.returncode == 1
        assert result.stderr == f"Error: {name.removeprefix('./')} is not a model directory: it has no config.json (pass a directory written by zoo)\n"
    with pytest.raises(zoo.ModelDirError, match="md2 is not a model directory"):
        zoo.load("md2")


def test_info_on_an_unreachable_hub_reference_names_the_hub_not_an_unknown_model():
    result = run_zoo("info", "hf://nobody/nothing")
    assert result.returncode == 1
    assert result.stderr.startswith("Error: model directory hf://nobody/nothing cannot be fetched")


def test_predict_with_a_token_model_that_has_no_vocabulary_says_so():
    result = run_zoo("predict", "lstm", "hello")
    assert result.returncode == 1
    assert result.stderr.startswith("Error: lstm reads token ids but carries no vocabulary")
    generate = run_zoo("predict", "mlp-digits", "x.png", "--generate", "5")
    assert generate.returncode == 2 and "--generate needs a language model; mlp-digits is not one" in generate.stderr
