"""The registry: listing with fnmatch filters, aliases, suggestions, and registry.yaml's schema."""
from __future__ import annotations

import textwrap

import pytest
import zoo_mlp

import zoo
from zoo.errors import DuplicateNameError, NoWeightsError, RegistryError, UnknownModelError
from zoo.registry import Registry
from zoo.registry_file import default_registry_path, load_registry_file

GOOD_ENTRY = """
version: 1
weights:
  - id: mlp.tiny
    arch: mlp
    aliases: [tiny-mlp]
    default: true
    num_classes: 3
    labels: [a, b, c]
    license: MIT
    metrics: {toy-accuracy: 0.5}
    sources:
      - {kind: bundled, package: zoo_mlp, path: weights/tiny.safetensors}
      - {kind: hf, repo: someone/tiny-mlp, revision: main, filename: model.safetensors,
         sha256: '0000000000000000000000000000000000000000000000000000000000000000'}
"""


class MlpArchitectures:
    """zoo_mlp's architectures without the weights it bundles (mlp-digits)."""

    register_architectures = staticmethod(zoo_mlp.register_architectures)


@pytest.fixture
def plugin_manager():
    """Only the perceptron and MLP architectures, so that listings are exact."""
    from zoo.plugins import get_plugin_manager

    pm = get_plugin_manager(("zoo_perceptron",), entry_points=False)
    pm.add(MlpArchitectures(), "zoo_mlp", builtin=True)
    return pm


@pytest.fixture
def registry(plugin_manager):
    return Registry.from_plugin_manager(plugin_manager, files=[])


def write(tmp_path, text, name="extra.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_list_models_filters_by_pattern_family_and_task(registry):
    assert registry.list_models() == ["mlp", "perceptron", "perceptron-logistic"]
    assert registry.list_models("perc*") == ["perceptron", "perceptron-logistic"]
    assert registry.list_models("*logistic", "ml?") == ["mlp", "perceptron-logistic"]
    assert registry.list_models(family="mlp") == ["mlp"]
    assert registry.list_models(task="image-classification") == ["mlp"]
    assert registry.list_models(family="cnn") == []


def test_extra_registry_adds_weights_aliases_and_pretrained_listing(plugin_manager, tmp_path):
    registry = Registry.from_plugin_manager(plugin_manager, files=[write(tmp_path, GOOD_ENTRY)])
    assert registry.list_models(pretrained=True) == ["mlp.tiny"]
    assert registry.list_models("tiny-*", pretrained=True) == ["mlp.tiny"]  # patterns match aliases too
    assert "mlp" in registry.list_models(pretrained=False) and "mlp.tiny" not in registry.list_models(pretrained=False)
    assert registry.resolve("tiny-mlp").weights.id == "mlp.tiny"
    assert registry.resolve("mlp").weights.id == "mlp.tiny"  # `default: true` makes the arch name an alias
    spec = registry.get_spec("mlp.tiny")
    assert spec.labels == ("a", "b", "c") and spec.tag == "tiny" and spec.sources[1].revision == "main"
    assert registry.get_spec("mlp").name == "mlp"  # the architecture itself


def test_zoo_registry_environment_variable_is_read(monkeypatch, tmp_path):
    monkeypatch.setenv("ZOO_REGISTRY", str(write(tmp_path, GOOD_ENTRY)))
    assert zoo.list_models("*.tiny", pretrained=True) == ["mlp.tiny"]
    assert zoo.get_spec("tiny-mlp").id == "mlp.tiny"


def test_unknown_name_suggests_close_names(registry):
    with pytest.raises(UnknownModelError) as info:
        registry.resolve("perceptorn")
    assert info.value.suggestions[0] == "perceptron"
    assert str(info.value) == "unknown model 'perceptorn' (did you mean 'perceptron', 'perceptron-logistic'?)"
    with pytest.raises(UnknownModelError, match=r"run `zoo list`"):
        registry.resolve("qqqqqqqq")


def test_pretrained_without_weights_is_a_clear_error():
    with pytest.raises(NoWeightsError, match="no weights registered for 'mlp'"):
        zoo.load("mlp", pretrained=True)
    assert zoo.load("mlp").head.out_features == 10  # pretrained=None: random init when there are none


def test_duplicate_weight_names_are_refused(plugin_manager, tmp_path):
    first = write(tmp_path, GOOD_ENTRY, "a.yaml")
    second = write(tmp_path, GOOD_ENTRY.replace("id: mlp.tiny", "id: mlp.other"), "b.yaml")
    with pytest.raises(DuplicateNameError, match="'tiny-mlp' is registered by both"):
        Registry.from_plugin_manager(plugin_manager, files=[first, second])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("arch: mlp", "arch: mpl"), r"entry 0 \(mlp.tiny\): field 'arch': unknown architecture 'mpl'"),
        (("    license: MIT\n", ""), None),
        (("    license: MIT", "    license: 3"), r"entry 0 \(mlp.tiny\): field 'license' must be str, got int"),
        (("    default: true", "    default: 'yes'"), r"field 'default' must be bool, got str"),
        (("    num_classes: 3", "    num_classes: true"), r"field 'num_classes' must be int, got bool"),
        (("    license: MIT", "    licence: MIT"), r"entry 0 \(mlp.tiny\): field 'licence' is not allowed"),
        (("  - id: mlp.tiny\n    arch", "  - arch"), r"entry 0: field 'id' is required"),
        (("  - id: mlp.tiny\n", "  - 3\n  - id: mlp.tiny\n"), r"entry 0: expected a mapping, got int"),
        (("kind: bundled", "kind: ftp"), r"sources\[0\]: source kind 'ftp' is not one of hf, pkg, bundled"),
        (("package: zoo_mlp, ", ""), r"sources\[0\]: a 'bundled' source needs 'package'"),
        (("sha256: '0000", "sha256: 'zz00"), r"sources\[1\]: field 'sha256': not 64 lowercase hex digits"),
        (("id: mlp.tiny", "id: other.tiny"), r"entry 0 \(other.tiny\): weights 'other.tiny': the id must be 'mlp.<tag>'"),
        (("version: 1", "version: 7"), r"expected a mapping with 'version: 1'"),
        (("weights:", "weights: 3\nx:"), r"'weights' must be a list"),
    ],
)
def test_schema_errors_name_file_entry_and_field(registry, tmp_path, change, message):
    path = write(tmp_path, GOOD_ENTRY.replace(*change))
    if message is None:  # an optional field may be left out
        assert [spec.id for spec in load_registry_file(path, registry.archs)] == ["mlp.tiny"]
        return
    with pytest.raises(RegistryError, match=message) as info:
        list(load_registry_file(path, registry.archs))
    assert str(path) in str(info.value)


def test_invalid_yaml_and_missing_file_are_named(registry, tmp_path):
    with pytest.raises(RegistryError, match="not valid YAML"):
        list(load_registry_file(write(tmp_path, "version: [1\n"), registry.archs))
    with pytest.raises(RegistryError, match=r"missing.yaml cannot be read.*ZOO_REGISTRY"):
        list(load_registry_file(tmp_path / "missing.yaml", registry.archs))


def test_shipped_registry_yaml_is_valid():
    """registry.yaml validates against the schema with every plugin's architectures present."""
    registry = zoo.get_registry()
    specs = list(load_registry_file(default_registry_path(), registry.archs))
    for spec in specs:
        assert spec.license, f"{spec.id}: every curated weight names its licence"
        assert spec.id in registry.weights
        for alias in spec.aliases:
            assert registry.resolve(alias).weights.id == spec.id


def test_entries_for_an_architecture_no_loaded_plugin_registers_are_skipped_with_a_warning(plugin_manager, tmp_path):
    """registry.yaml names lstm-text's architecture; without zoo_rnn loaded, listing still works."""
    from zoo.registry import RegistryWarning

    orphan = write(tmp_path, GOOD_ENTRY.replace("arch: mlp", "arch: lstm").replace("id: mlp.tiny", "id: lstm.tiny"))
    with pytest.warns(RegistryWarning, match=r"extra.yaml: entry 'lstm.tiny': field 'arch': architecture 'lstm' is not registered"):
        registry = Registry.from_plugin_manager(plugin_manager, files=[orphan])
    assert registry.list_models(pretrained=True) == []
    assert registry.list_models() == ["mlp", "perceptron", "perceptron-logistic"]


def test_task_filter_finds_architectures_that_name_the_task_by_an_alias():
    # zoo_rnn's lstm-text names "sequence-classification", an alias of the built-in text-classification.
    by_name = zoo.list_models(task="text-classification")
    assert "lstm" in by_name and "gru" in by_name
    assert zoo.list_models(task="sequence-classification") == by_name
    assert "lenet5" not in by_name


def test_zoo_list_with_a_mistyped_task_names_the_registered_tasks():
    from helpers import run_zoo

    result = run_zoo("list", "--task", "imagee-classification")
    assert result.returncode == 1
    assert "'imagee-classification'" in result.stderr and "did you mean 'image-classification'" in result.stderr
    assert "registered tasks: image-classification, language-modeling" in result.stderr
    assert result.stdout == ""
