"""`zoo finetune`'s flags are made from FinetuneOptions: one flag per option, its default written once."""
from __future__ import annotations

import dataclasses
import re
import sys

import click
import pytest
from click.testing import CliRunner

from zoo.cli import cli
from zoo.cli.finetune import finetune_command
from zoo.finetuning import FinetuneOptions, FinetuneResult

from helpers import ROOT

FIELDS = {spec.name: spec for spec in dataclasses.fields(FinetuneOptions)}


@pytest.fixture
def calls(monkeypatch, tmp_path):
    """Replace the library's finetune with one that records what the CLI passed it."""
    seen: list[dict] = []

    def fake_finetune(model, data, *, progress=None, **options):
        FinetuneOptions(**options)  # what the CLI passes is valid as it stands
        seen.append({"model": model, "data": data, **options})
        return FinetuneResult(output=tmp_path / "out", metrics={"val_accuracy": 1.0})

    monkeypatch.setattr(sys.modules["zoo.finetuning"], "finetune", fake_finetune)
    return seen


def invoke(*args: str):
    return CliRunner().invoke(cli, ["finetune", "lenet5", "--data", "./digits", *args], catch_exceptions=False)


def test_every_option_has_one_flag_whose_default_is_the_dataclass_default():
    params = {param.name: param for param in finetune_command.params if isinstance(param, click.Option)}
    assert set(FIELDS) <= set(params), f"no flag for {sorted(set(FIELDS) - set(params))}"
    assert set(params) - set(FIELDS) == {"data", "quiet", "json_", "legacy_format", "nproc"}  # nproc: how, not what, to train
    for name, spec in FIELDS.items():
        param = params[name]
        assert param.help == spec.metadata["help"]
        if param.is_flag:
            assert param.default is None, f"{name}: a flag not given leaves the dataclass default"
        else:
            assert param.default == spec.default, f"--{name}: {param.default!r} != {spec.default!r}"


def test_warmup_and_max_grad_norm_have_flags():
    options = {opt for param in finetune_command.params for opt in param.opts}
    assert {"--warmup", "--max-grad-norm", "--data-format", "--no-cache", "--random-init"} <= options


def test_no_flag_passes_nothing_so_the_dataclass_defaults_apply(calls):
    result = invoke()
    assert result.exit_code == 0, result.output
    assert calls == [{"model": "lenet5", "data": "./digits"}]


def test_flags_reach_the_library_as_options(calls):
    result = invoke(
        "--warmup", "0.05", "--max-grad-norm", "0.5", "--data-format", "corpus", "--no-cache", "--random-init",
        "--augment", "-o", "out", "--epochs", "2", "--device", "cpu",
    )
    assert result.exit_code == 0, result.output
    assert calls == [{
        "model": "lenet5", "data": "./digits", "warmup": 0.05, "max_grad_norm": 0.5, "data_format": "corpus",
        "cache": False, "pretrained": False, "augment": True, "output": "out", "epochs": 2, "device": "cpu",
    }]


def test_format_is_a_hidden_deprecated_alias_of_data_format(calls):
    result = invoke("--format", "csv")
    assert result.exit_code == 0, result.output
    assert calls[0]["data_format"] == "csv"
    assert result.stderr.splitlines() == ["Warning: `zoo finetune --format` is deprecated; use --data-format"]
    assert "--format" not in invoke("--help").stdout.replace("--data-format", "")


def test_format_and_a_different_data_format_is_a_usage_error(calls):
    result = CliRunner().invoke(cli, ["finetune", "lenet5", "--data", ".", "--format", "csv", "--data-format", "corpus"])
    assert result.exit_code == 2
    assert "--format is the old name of --data-format: give one of them" in result.stderr
    assert calls == []


def test_the_cli_reference_names_every_finetune_flag():
    text = (ROOT / "docs" / "cli.md").read_text()
    section = re.search(r"^### `zoo finetune`\n(.*?)(?=^### )", text, re.S | re.M).group(1)
    for param in finetune_command.params:
        if isinstance(param, click.Option) and not param.hidden:
            assert param.opts[0] in section, f"docs/cli.md: `zoo finetune` does not mention {param.opts[0]}"
    assert "--format NAME" not in section
