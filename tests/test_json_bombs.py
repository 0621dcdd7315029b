"""A JSON document nested deeper than Python's recursion limit (``[[[[...``, one byte a level) is text
that is not JSON to every reader of a file zoo did not write: json's RecursionError was an internal error
(`zoo info DIR` said "internal error: RecursionError"). Each reader is tried with a real bomb, and a
guard keeps every json.loads of zoo/ and plugins/ on `zoo.fsio.loads_json` but for zoo's own data."""
from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

import zoo
from zoo.cli import cli
from zoo.errors import ModelDirError, WeightsIntegrityError

ROOT = Path(__file__).resolve().parents[1]
BOMB = "[" * 200_000
# json.loads on data zoo itself made in the same call: nothing read from outside.
OWN_DATA = {
    ("zoo/fsio.py", "loads_json"): "the helper itself",
    ("zoo/statedict.py", "_sort_metadata"): "the header of a file safetensors just wrote for zoo",
    ("zoo/modeldir.py", "_write"): "json.dumps of the config zoo is writing, read back as plain data",
    ("plugins/zoo_timm/__init__.py", "catalog"): "the plugin's own catalog.json",
    ("plugins/zoo_timm/hubconfig.py", "timm_config"): "the config.json timm's save_config_for_hf just wrote into a temporary folder",
}


def json_loads_sites() -> list[tuple[str, str]]:
    found = []
    for path in sorted(p for folder in ("zoo", "plugins") for p in (ROOT / folder).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for function in [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]:
            for call in ast.walk(function):
                if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr in ("loads", "load") \
                        and isinstance(call.func.value, ast.Name) and call.func.value.id == "json":
                    found.append((path.relative_to(ROOT).as_posix(), function.name))
    return found


def test_every_json_read_of_outside_data_goes_through_loads_json():
    sites = json_loads_sites()
    assert sorted(set(sites) - set(OWN_DATA)) == [], "read it with zoo.fsio.loads_json, or list it in OWN_DATA"
    assert sorted(set(OWN_DATA) - set(sites)) == [], "a stale OWN_DATA entry"


def test_a_model_directory_whose_config_is_a_bomb_is_one_clear_error(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text(BOMB)
    result = CliRunner().invoke(cli, ["info", str(folder)])
    assert result.exit_code == 1 and result.stderr == (
        f"Error: {folder / 'config.json'} cannot be read as JSON: nested too deeply to read: line 1 column 1 (char 0)\n"
    )
    with pytest.raises(ModelDirError, match="nested too deeply"):
        zoo.load(str(folder))


def test_a_safetensors_file_whose_header_is_a_bomb_is_refused_as_not_json(tmp_path):
    from zoo.statedict import read_safetensors

    path = tmp_path / "w.safetensors"
    path.write_bytes(len(BOMB).to_bytes(8, "little") + BOMB.encode())
    with pytest.raises(WeightsIntegrityError, match="its header is not JSON"):
        read_safetensors(path)


def test_cache_and_predict_records_that_are_bombs_are_ignored_or_refused_clearly(tmp_path):
    home = Path(os.environ["ZOO_HOME"])
    (home / "records").mkdir(parents=True)
    (home / "records" / "x.json").write_text(BOMB)
    export = home / "backbones" / ("a" * 64)
    export.mkdir(parents=True)
    (export / "backbone.onnx").write_bytes(b"\0")
    (export / "backbone.onnx.json").write_text(BOMB)
    (home / "inflight").mkdir(parents=True)
    (home / "inflight" / "1-abcd.json").write_text(BOMB)
    listed = CliRunner().invoke(cli, ["cache", "ls", "--json"])
    assert listed.exit_code == 0, listed.output
    assert [(r["model"], r["source"]) for r in json.loads(listed.stdout)] == [("?", "onnx export")]

    from finetune_data import write_image
    from zoo.predict.files import predict_files
    from zoo.predict.partial import PROGRESS, partial_dir

    write_image(tmp_path / "one.png")
    output = tmp_path / "preds.csv"
    work = partial_dir(output)
    work.mkdir()
    (work / output.name).write_text("path\n")
    (work / PROGRESS).write_text(BOMB)
    with pytest.raises(zoo.errors.ArgumentError, match="without a record zoo can use"):
        predict_files(zoo.load("lenet5-digits"), [tmp_path / "one.png"], output, resume=True)
