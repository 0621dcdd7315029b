"""Offline-first discovery: what loads now without the Hub, in `zoo list`, `zoo info`, the unavailable
error, a pattern that matches nothing, and a ZOO_LOAD_PLUGINS name that is no installed plugin."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from zoo.cli import cli
from zoo.errors import WeightsUnavailableError

from helpers import run_zoo


def invoke(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def listed(*args) -> dict[str, dict]:
    result = invoke("list", "--json", *args)
    assert result.exit_code == 0, result.output
    return {r["name"]: r for r in json.loads(result.stdout)}


def test_list_says_whether_each_weight_is_usable_now():
    rows = listed()
    assert rows["lenet5.digits"]["availability"] == "bundled"
    assert rows["mobilenetv2_100.tv_in1k"]["availability"] == "installed package"
    assert rows["tf_efficientnet_lite0.in1k"]["availability"] == "installed package"  # hub first, then the package
    assert rows["resnet18.a1_in1k"]["availability"] == "hub"
    # An architecture name loads its default weights, or none.
    assert rows["resnet18"]["availability"] == "hub"
    assert rows["tf_efficientnet_lite0"]["availability"] == "installed package"
    assert rows["perceptron"]["availability"] == "untrained"


def test_list_says_cached_for_a_sound_record_only():
    from zoo.cache import mark_bad
    from zoo.registry import default_registry
    from zoo.weights import cached, pull

    registry = default_registry()
    spec = registry.weights["mlp.digits"]
    pull(registry.archs[spec.arch], spec)
    assert listed("mlp*")["mlp.digits"]["availability"] == "cached"
    mark_bad(cached(spec).record)  # a record that failed a verification no longer counts
    assert listed("mlp*")["mlp.digits"]["availability"] == "bundled"


def test_list_table_has_the_available_column():
    lines = invoke("list", "lenet5*").stdout.splitlines()
    assert lines[0].split() == ["NAME", "FAMILY", "TASKS", "PARAMS", "AVAILABLE", "ALIASES", "/", "WEIGHTS"]
    assert lines[2].split()[:5] == ["lenet5.digits", "cnn", "image-classification", "61.7K", "bundled"]


def test_list_available_keeps_only_what_loads_without_the_hub():
    rows = listed("--available")
    assert {r["availability"] for r in rows.values()} == {"bundled", "installed package", "untrained"}
    assert {"lenet5.digits", "mobilenetv2_100.tv_in1k", "tf_efficientnet_lite0", "perceptron"} <= set(rows)
    assert "resnet18" not in rows and "resnet18.a1_in1k" not in rows


def test_list_available_imports_no_torch():
    code = (
        "import sys\n"
        "from zoo.cli import cli\n"
        "cli.main(args=['list', '--available'], standalone_mode=False)\n"
        "print('HEAVY', sorted(m for m in ('torch', 'timm', 'safetensors') if m in sys.modules), file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stderr


def test_unavailable_weights_name_up_to_three_that_work_now():
    from zoo.registry import default_registry
    from zoo.weights import resolve_weights

    with pytest.raises(WeightsUnavailableError) as caught:
        resolve_weights(default_registry().weights["resnet18.a1_in1k"], dict)
    assert caught.value.remedy.endswith(
        "; or try: mobilenetv2_100.tv_in1k (installed package), tf_efficientnet_lite0.in1k (installed package), "
        "tf_efficientnet_lite1.in1k (installed package)"
    )


def test_zoo_pull_offline_names_weights_that_work_now():
    result = run_zoo("pull", "resnet18")
    assert result.returncode == 1
    assert result.stderr.startswith("Error: weights 'resnet18.a1_in1k' are not cached")
    assert "or try: mobilenetv2_100.tv_in1k (installed package)," in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_info_of_an_architecture_shows_its_default_weights_licence_and_sources():
    text = invoke("info", "resnet18").stdout
    assert "default weights  resnet18.a1_in1k\n" in text
    assert "license          apache-2.0\n" in text
    assert "available        hub\n" in text
    assert "source 1         hf://timm/resnet18.a1_in1k/model.safetensors\n" in text
    record = json.loads(invoke("info", "resnet18", "--json").stdout)
    assert record["default"]["name"] == "resnet18.a1_in1k" and record["default"]["license"] == "apache-2.0"
    assert record["default"]["sources"][0]["repo"] == "timm/resnet18.a1_in1k"
    assert "default" not in json.loads(invoke("info", "perceptron", "--json").stdout)


def test_list_with_a_pattern_that_matches_nothing_exits_1_with_close_names():
    result = run_zoo("list", "resnt18")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "Error: no model matches 'resnt18' (did you mean 'resnet18', 'resnet50', 'resnet34'?)\n"
    nothing = run_zoo("list", "my-net", "--json")
    assert (nothing.returncode, nothing.stdout) == (1, "[]\n")
    assert nothing.stderr == "Error: no model matches 'my-net' (run `zoo list` to see every model)\n"


def test_list_pattern_hidden_by_filters_names_what_it_matches_without_them():
    result = run_zoo("list", "resnet1*", "--available")
    assert result.returncode == 1
    assert result.stderr == (
        "Error: no model matches 'resnet1*' with --available "
        "(resnet18, resnet18.a1_in1k, resnet18.a2_in1k, ... match without --available)\n"
    )


def test_filters_alone_that_match_nothing_are_an_empty_listing():
    result = invoke("list", "--family", "no-such-family")
    assert result.exit_code == 0 and result.stdout.splitlines()[1:] == []


def test_a_misspelled_zoo_load_plugins_name_warns_with_the_installed_names(tmp_path, monkeypatch):
    from zoo.plugins import PluginWarning, get_plugin_manager

    (tmp_path / "zoo_good.py").write_text("")
    info = tmp_path / "zoo_good-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: zoo-good\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[zoo]\ngood = zoo_good\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("ZOO_LOAD_PLUGINS", "godo,zoo-good")
    with pytest.warns(PluginWarning, match="^ZOO_LOAD_PLUGINS names 'godo', which is no installed plugin; installed plugins: good$"):
        pm = get_plugin_manager()
    assert pm.get_plugin("good") is not None  # the distribution name was understood
    monkeypatch.setenv("ZOO_LOAD_PLUGINS", "good")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        get_plugin_manager()
