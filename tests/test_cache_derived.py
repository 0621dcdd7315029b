"""`zoo cache ls` lists, and `zoo cache rm` removes, what zoo computed from weights: the ONNX export
`zoo predict` runs and the features fine-tuning caches. Real ones, made here by a real export and a real
fine-tune; hostile entries planted beside them are listed as unknown or not at all, and never deleted."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

import zoo
from finetune_data import real_digits
from zoo.cli.main import cli
from zoo.predict.files import predict_files


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    return real_digits(tmp_path_factory, per_class=6)


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def listed() -> list[dict]:
    result = invoke("cache", "ls", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def computed(home: Path, tmp_path: Path, digits: Path) -> None:
    """An ONNX export of lenet5-digits (zoo predict --runtime onnx) and features of vgg-mini (a head fine-tune)."""
    predict_files(zoo.load("lenet5-digits"), [digits], tmp_path / "preds.csv", batch_size=8, runtime="onnx")
    with pytest.warns(UserWarning):  # vgg-mini has no weights: a head on a random backbone is warned about
        zoo.finetune("vgg-mini", digits, output=str(tmp_path / "vgg"), epochs=1, batch_size=32, seed=0, strategy="head")
    assert [p.name for p in (home / "backbones").iterdir()] and [p.name for p in (home / "features").iterdir()]


def test_ls_lists_exports_and_features_with_their_model_and_size_and_rm_derived_removes_only_them(tmp_path, digits):
    home = Path(os.environ["ZOO_HOME"])
    computed(home, tmp_path, digits)
    rows = listed()
    made = [r for r in rows if r["source"] in ("onnx export", "features")]
    assert sorted((r["source"], r["model"]) for r in made) == [("features", "vgg-mini"), ("onnx export", "lenet5.digits")]
    for row in made:
        on_disk = Path(row["path"])
        size = sum(f.stat().st_size for f in on_disk.iterdir()) if on_disk.is_dir() else on_disk.stat().st_size
        assert row["size"] == size and row["sha256"] is None and row["verified"] is None
    table = invoke("cache", "ls")
    assert any(line.split()[:2] == ["lenet5.digits", "onnx"] for line in table.stdout.splitlines()), table.stdout
    weights = [r for r in rows if r not in made]
    assert weights  # lenet5-digits' verified weights file

    removed = invoke("cache", "rm", "--derived")
    assert removed.exit_code == 0, removed.output
    assert "removed onnx export of lenet5.digits: " in removed.stderr and "removed features of vgg-mini: " in removed.stderr
    assert listed() == weights  # the weights stay
    assert not list((home / "backbones").iterdir()) and not list((home / "features").iterdir())
    # Computed again when needed: predict exports anew and answers the same.
    summary = predict_files(zoo.load("lenet5-digits"), [digits], tmp_path / "again.csv", batch_size=8, runtime="onnx")
    assert summary.runtime["export"] == "exported"
    assert (tmp_path / "again.csv").read_text() == (tmp_path / "preds.csv").read_text()


def test_rm_of_a_name_takes_its_exports_and_features_and_a_typo_removes_nothing(tmp_path, digits):
    home = Path(os.environ["ZOO_HOME"])
    computed(home, tmp_path, digits)
    before = listed()
    typo = invoke("cache", "rm", "vgg-mni", "--derived")
    assert typo.exit_code != 0 and "did you mean 'vgg-mini'" in typo.output and listed() == before
    assert invoke("cache", "rm", "--all", "--derived").exit_code == 2 and listed() == before
    no_export = invoke("cache", "rm", "mlp-digits", "vgg-mini", "--derived")  # known weights, nothing computed
    assert no_export.stderr == "Error: mlp.digits has no exports or features in the cache (`zoo cache ls` lists what is cached)\n"
    assert listed() == before
    only = invoke("cache", "rm", "vgg-mini")  # vgg-mini has no weights file: its features are what it has
    assert only.exit_code == 0, only.output
    assert sorted(r["model"] for r in listed()) == sorted(r["model"] for r in before if r["model"] != "vgg-mini")
    gone = invoke("cache", "rm", "lenet5-digits")  # an alias: its weights record and its export
    assert gone.exit_code == 0, gone.output
    assert "removed onnx export of lenet5.digits" in gone.stderr
    assert [r for r in listed() if r["model"] == "lenet5.digits"] == []


def test_hostile_entries_are_listed_as_unknown_or_skipped_and_nothing_outside_is_deleted(tmp_path, digits):
    home = Path(os.environ["ZOO_HOME"])
    computed(home, tmp_path, digits)
    export = next((home / "backbones").iterdir())
    # A hand-edited sidecar: a model name that is no string, and a data file reaching out of the folder.
    outside = tmp_path / "precious.onnx"
    outside.write_bytes(b"not zoo's")
    sidecar = json.loads((export / "backbone.onnx.json").read_text())
    sidecar["model"] = {"not": "a name"}
    sidecar["exporter"]["data_files"] = ["../../../precious.onnx", str(outside), "extra.data"]
    (export / "backbone.onnx.json").write_text(json.dumps(sidecar))
    (export / "extra.data").write_bytes(b"x" * 10)  # named as a plain data file: zoo's to delete
    (export / "notes.txt").write_text("the user's")  # not a file zoo writes there
    # A features file whose header claims a gigantic length, a link named as a cache entry, a stray file.
    (home / "features" / ("a" * 64 + ".safetensors")).write_bytes((1 << 62).to_bytes(8, "little") + b"{}")
    (home / "features" / ("b" * 64 + ".safetensors")).symlink_to(outside)
    (home / "features" / "mine.safetensors").write_bytes(b"user data")
    (home / "backbones" / ("c" * 64)).symlink_to(tmp_path, target_is_directory=True)

    rows = {r["path"]: r for r in listed()}
    assert rows[str(export)]["model"] == "?" and rows[str(home / "features" / ("a" * 64 + ".safetensors"))]["model"] == "?"
    assert not {str(home / "features" / ("b" * 64 + ".safetensors")), str(home / "features" / "mine.safetensors"),
                str(home / "backbones" / ("c" * 64))} & set(rows)

    removed = invoke("cache", "rm", "--derived")
    assert removed.exit_code == 0, removed.output
    assert outside.read_bytes() == b"not zoo's" and (home / "features" / "mine.safetensors").exists()
    assert sorted(p.name for p in export.iterdir()) == ["notes.txt"]  # the user's file keeps its folder
    assert (home / "backbones" / ("c" * 64)).is_symlink() and (home / "features" / ("b" * 64 + ".safetensors")).is_symlink()
    assert [r for r in listed() if r["source"] in ("onnx export", "features")] == []
