"""The weights CLI: `zoo pull`, `zoo cache ls|verify|rm`."""
from __future__ import annotations

import json
import time
from pathlib import Path

from click.testing import CliRunner

from zoo.cli import cli
from zoo.modeldir import read_config

LITE0 = "tf_efficientnet_lite0.in1k"


def invoke(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_pull_offline_with_an_empty_cache_fails_fast_listing_the_sources():
    start = time.monotonic()
    result = invoke("pull", "resnet18")
    assert time.monotonic() - start < 10
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: weights 'resnet18.a1_in1k' are not cached and no source could provide them: ")
    assert "[1] hf://timm/resnet18.a1_in1k/model.safetensors" in result.stderr and "zoo pull resnet18.a1_in1k" in result.stderr


def test_pull_then_cache_ls_verify_and_rm(hub):
    pulled = json.loads(invoke("pull", "resnet18", LITE0, "--json").stdout)
    assert [p["name"] for p in pulled] == ["resnet18.a1_in1k", LITE0]
    listed = json.loads(invoke("cache", "ls", "--json").stdout)
    assert {r["model"] for r in listed} == {"resnet18.a1_in1k", LITE0}
    assert all(Path(r["path"]).stat().st_size == r["size"] for r in listed)
    assert invoke("cache", "verify").exit_code == 0

    bad = next(r for r in listed if r["model"] == "resnet18.a1_in1k")
    raw = bytearray(Path(bad["path"]).read_bytes())
    raw[100] ^= 0xFF
    Path(bad["path"]).write_bytes(raw)
    result = invoke("cache", "verify")
    assert result.exit_code == 1
    assert f"Error: {bad['path']} (resnet18.a1_in1k) has sha256" in result.stderr and "zoo cache rm" in result.stderr
    assert "BAD" in result.stdout

    assert invoke("cache", "rm", "resnet18").exit_code == 0
    assert not Path(bad["path"]).exists()
    assert [r["model"] for r in json.loads(invoke("cache", "ls", "--json").stdout)] == [LITE0]
    assert invoke("pull", "resnet18", "-q").exit_code == 0  # fetched again, whole
    assert invoke("cache", "verify").exit_code == 0
    assert invoke("cache", "rm", "--all").exit_code == 0
    assert json.loads(invoke("cache", "ls", "--json").stdout) == []


def test_cache_rm_needs_a_name_derived_or_all():
    result = CliRunner().invoke(cli, ["cache", "rm"])
    assert result.exit_code == 2 and "give NAME..., --derived or --all" in result.output


def test_cache_rm_of_a_name_not_in_the_cache_says_so_and_removes_nothing():
    import zoo

    zoo.load("mlp-digits")  # records the bundled file
    typo = CliRunner().invoke(cli, ["cache", "rm", "mlp-digits", "mlp.digit"])
    assert typo.exit_code == 1
    assert typo.stderr == "Error: nothing in the cache is named 'mlp.digit' (did you mean 'mlp.digits'?)\n"
    assert [r["model"] for r in json.loads(invoke("cache", "ls", "--json").stdout)] == ["mlp.digits"]
    known = CliRunner().invoke(cli, ["cache", "rm", "resnet18"])
    assert known.exit_code == 1
    assert known.stderr == "Error: resnet18.a1_in1k has no files in the cache (`zoo cache ls` lists what is cached)\n"
    unknown = CliRunner().invoke(cli, ["cache", "rm", "nope"])
    assert unknown.stderr == "Error: nothing in the cache is named 'nope' (`zoo cache ls` lists what is cached)\n"


def test_pull_of_a_hub_model_directory_makes_it_loadable_offline(hub, monkeypatch):
    # The offline error of `zoo.load("hf://...")` tells the user to run `zoo pull hf://...`: it must work.
    import torch

    import zoo

    pulled = invoke("pull", "hf://zoo-tests/mlp-digits", "--json")
    assert pulled.exit_code == 0, pulled.stderr
    [row] = json.loads(pulled.stdout)
    folder = Path(row["path"])
    assert row["name"] == "hf://zoo-tests/mlp-digits" and (folder / "config.json").is_file()
    config = read_config(folder, root=folder.parent.parent)  # a Hub snapshot: files are links into its blobs
    listed = {"config.json", *(e["path"] if isinstance(e, dict) else e for e in config["files"].values())}
    assert row["size"] == sum((folder / name).stat().st_size for name in listed)
    assert row["sha256"] == config["files"]["weights"]["sha256"]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = zoo.load("hf://zoo-tests/mlp-digits")
    expected = zoo.load(str(hub.root / "work" / "mlp-1"))
    assert torch.equal(model.head.weight, expected.head.weight)


def test_pull_of_a_hub_model_directory_offline_names_the_problem():
    result = CliRunner().invoke(cli, ["pull", "hf://zoo-tests/no-such-repo"])
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "Error: model directory hf://zoo-tests/no-such-repo cannot be fetched: not in the Hugging Face cache, and HF_HUB_OFFLINE is set"
    )
