"""References are a plugin concept: a third-party resolver (`demo://NAME`) works wherever a model is taken."""
from __future__ import annotations

import json
import warnings

import pytest
from click.testing import CliRunner

import zoo
from zoo.cli import cli
from zoo.errors import ModelDirError, UnknownModelError, WeightsIntegrityError
from zoo.modeldir import read_config
from zoo.registry import ModelDirectory

from finetune_data import write_folder

PREFIX = "demo://"


class DemoResolver:
    """A plugin that serves `demo://NAME` from a folder the test chose."""

    def __init__(self, root):
        self.root = root
        self.asked: list[str] = []

    @zoo.hookimpl
    def register_resolvers(self, register):
        register(PREFIX, self.resolve)

    def resolve(self, name):
        self.asked.append(name)
        return ModelDirectory(self.root / name[len(PREFIX):])


@pytest.fixture
def demo(tmp_path):
    """`demo://x` names tmp_path/models/x, a real lenet5-digits model directory."""
    from zoo.modeldir import save_model_dir
    from zoo.plugins import default_plugin_manager

    root = tmp_path / "models"
    root.mkdir()
    save_model_dir(zoo.load("lenet5-digits"), root / "x")
    plugin = DemoResolver(root)
    pm = default_plugin_manager()
    pm.add(plugin, "demo-plugin")
    try:
        yield plugin
    finally:
        pm.unregister(name="demo-plugin")


def invoke(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_zoo_load_goes_through_the_plugin_resolver(demo):
    model = zoo.load("demo://x")
    assert demo.asked == ["demo://x"]
    assert model.zoo.arch == "lenet5" and model.zoo.weights == "lenet5.digits" and model.zoo.labels


def test_zoo_info_of_a_plugin_reference(demo):
    result = invoke("info", "demo://x", "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["kind"] == "model directory" and record["architecture"] == "lenet5"
    assert record["path"] == str((demo.root / "x").resolve())


def test_zoo_predict_of_a_plugin_reference(demo, tmp_path):
    images = write_folder(tmp_path / "images", {"a": 1})
    result = invoke("predict", "demo://x", str(images / "a" / "000.png"), "--json", "-k", "2")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) == 1 and [p["rank"] for p in rows[0]["predictions"]] == [1, 2]


def test_zoo_finetune_of_a_plugin_reference(demo, tmp_path):
    data = write_folder(tmp_path / "data", {"cat": 4, "dog": 4})
    out = tmp_path / "out"
    result = invoke("finetune", "demo://x", "--data", str(data), "--output", str(out), "--epochs", "1", "--json")
    assert result.exit_code == 0, result.output
    config = read_config(out)
    assert config["architecture"] == "lenet5" and config["labels"] == ["cat", "dog"]
    assert zoo.load(str(out)).zoo.labels == ["cat", "dog"]


def test_zoo_export_of_a_plugin_reference(demo, tmp_path):
    target = tmp_path / "x.onnx"
    result = invoke("export", "demo://x", "-o", str(target), "--json")
    assert result.exit_code == 0, result.output
    assert target.is_file() and json.loads(result.stdout)["parity"]["passed"]


def test_zoo_pull_and_cache_rm_of_a_plugin_reference(demo):
    pulled = invoke("pull", "demo://x", "--json")
    assert pulled.exit_code == 0, pulled.output
    assert json.loads(pulled.stdout)[0]["source"] == "model directory"
    zoo.load("demo://x")  # recorded under the directory's path
    removed = invoke("cache", "rm", "demo://x")
    assert removed.exit_code == 0 and "forgot" in removed.stderr


def test_a_resolved_directory_is_verified_like_any_model_directory(demo):
    weights = demo.root / "x" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(WeightsIntegrityError, match="has sha256"):
        zoo.load("demo://x")
    config = demo.root / "x" / "config.json"
    record = json.loads(config.read_text())
    record["zoo"]["files"]["weights"]["path"] = "../../outside.safetensors"
    config.write_text(json.dumps(record))
    with pytest.raises(ModelDirError, match="leads outside the model directory"):
        zoo.load("demo://x")


def test_a_missing_demo_model_is_named(demo):
    with pytest.raises(ModelDirError, match="is not a directory|no config.json"):
        zoo.load("demo://nope")


def test_zoo_plugins_lists_each_plugins_resolvers(demo):
    result = invoke("plugins", "--json")
    registered = {r["name"]: r["registered"].get("resolvers") for r in json.loads(result.stdout)}
    assert registered["demo-plugin"] == [PREFIX]
    assert registered["zoo.hub"] == ["hf://"] and registered["zoo_timm"] == ["timm/"]
    assert registered["zoo.modeldir"] == ["<model directory>"]


def test_a_prefix_two_plugins_claim_fails_the_second(demo, tmp_path):
    from zoo.plugins import PluginWarning, default_plugin_manager
    from zoo.resolvers import resolvers

    pm = default_plugin_manager()
    pm.add(DemoResolver(tmp_path), "demo-again")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            table = resolvers()
        assert table[PREFIX].plugin == "demo-plugin"
        assert any(issubclass(w.category, PluginWarning) and "registered by both" in str(w.message) for w in caught)
    finally:
        if pm.get_plugin("demo-again") is not None:
            pm.unregister(name="demo-again")


def test_a_resolver_returning_something_else_is_a_plugin_error(tmp_path):
    from zoo.errors import PluginError
    from zoo.plugins import default_plugin_manager

    class Broken:
        @zoo.hookimpl
        def register_resolvers(self, register):
            register("broken://", lambda name: 42)

    pm = default_plugin_manager()
    pm.add(Broken(), "broken-resolver")
    try:
        with pytest.raises(PluginError, match=r"resolver of 'broken://' \(broken-resolver\) returned a int"):
            zoo.load("broken://x")
    finally:
        pm.unregister(name="broken-resolver")


def test_an_unclaimed_unknown_name_still_suggests():
    with pytest.raises(UnknownModelError, match="did you mean"):
        zoo.load("lenet")
