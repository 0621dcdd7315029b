"""The model directory: round trips, the model card, the Hub, and the unsafe cases refused."""
from __future__ import annotations

import json
import os
import re

import pytest
import torch

import zoo
from zoo.errors import ArgumentError, ModelDirError, WeightsIntegrityError, WeightsUnavailableError
from zoo.modeldir import read_config, read_front_matter, save_model_dir

from helpers import run_zoo


@pytest.fixture
def mlp_dir(tmp_path):
    torch.manual_seed(0)
    model = zoo.load("mlp", pretrained=False, hidden=(16,), activation="gelu")
    model.zoo.labels = [f"digit {d}" for d in range(10)]
    return model, save_model_dir(model, tmp_path / "mlp", training={"epochs": 3}, metrics={"accuracy": 0.9})


def test_a_model_directory_round_trips(mlp_dir):
    model, folder = mlp_dir
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    loaded = zoo.load(str(folder))
    x = torch.randn(4, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))
    assert loaded.zoo.labels == model.zoo.labels
    assert loaded.zoo.arch_args["activation"] == "gelu" and list(loaded.zoo.arch_args["hidden"]) == [16]
    document = json.loads((folder / "config.json").read_text())
    assert list(document) == ["zoo"]  # no other library reads an mlp: zoo's fields alone, under "zoo"
    config = read_config(folder)
    assert config == document["zoo"]
    assert config["format_version"] == 2 and config["architecture"] == "mlp" and config["training"] == {"epochs": 3}
    card = read_front_matter(folder / "README.md")
    assert card["library_name"] == "zoo" and card["pipeline_tag"] == "tabular-classification"
    assert "- accuracy: 0.9" in (folder / "README.md").read_text()


def test_a_fine_tuned_head_keeps_its_base_weights_in_config_and_card(tmp_path):
    model = zoo.load("tf_efficientnet_lite0.in1k", num_classes=3)
    model.zoo.labels = ["a", "b", "c"]
    folder = save_model_dir(model, tmp_path / "lite")
    config = read_config(folder)
    assert config["base_weights"]["id"] == "tf_efficientnet_lite0.in1k" and config["num_classes"] == 3
    card = read_front_matter(folder / "README.md")
    assert card["base_model"] == "timm/tf_efficientnet_lite0.in1k" and card["license"] == "apache-2.0"
    assert card["library_name"] == "timm" and card["pipeline_tag"] == "image-classification"
    loaded = zoo.load(str(folder))
    assert loaded.get_classifier().out_features == 3 and loaded.zoo.preprocess["mean"] == [0.5, 0.5, 0.5]
    assert torch.equal(loaded.classifier.weight, model.classifier.weight)


def test_an_existing_directory_is_not_overwritten_unless_asked(mlp_dir):
    model, folder = mlp_dir
    with pytest.raises(ModelDirError, match="already exists"):
        save_model_dir(model, folder)
    save_model_dir(model, folder, overwrite=True)
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no temporary left behind


def edit_config(folder, **changes):
    """Change zoo's fields of config.json (under "zoo"): `files__weights__path=...` sets files.weights.path."""
    config = json.loads((folder / "config.json").read_text())
    for key, value in changes.items():
        target = config["zoo"]
        *path, last = key.split("__")
        for part in path:
            target = target[part]
        target[last] = value
    (folder / "config.json").write_text(json.dumps(config))


def test_a_file_name_that_escapes_the_directory_is_refused(mlp_dir, tmp_path):
    _, folder = mlp_dir
    edit_config(folder, files__weights__path="../elsewhere/model.safetensors")
    with pytest.raises(ModelDirError, match="leads outside the model directory"):
        zoo.load(str(folder))


def test_a_symlink_pointing_outside_is_refused(mlp_dir, tmp_path):
    _, folder = mlp_dir
    outside = tmp_path / "outside.safetensors"
    os.replace(folder / "model.safetensors", outside)
    os.symlink(outside, folder / "model.safetensors")
    with pytest.raises(ModelDirError, match="is a symlink to .*outside the model directory"):
        zoo.load(str(folder))


def test_an_unknown_format_version_is_refused(mlp_dir):
    _, folder = mlp_dir
    edit_config(folder, format_version=99)
    with pytest.raises(ModelDirError, match="format_version 99 is not one this zoo reads"):
        zoo.load(str(folder))


@pytest.mark.parametrize(
    "fields, problem",
    [
        ({"arch_args": []}, "field 'arch_args' must be a JSON object"),
        ({"files": "model.safetensors"}, "field 'files' must be a JSON object"),
        ({"architecture": 3}, "field 'architecture' must be a JSON string"),
        ({"files": {"weights": {"sha256": "0" * 64}}}, 'files.weights must be a file name or an object with a "path"'),
    ],
)
def test_a_config_with_fields_of_the_wrong_type_is_refused_by_load_and_info(mlp_dir, fields, problem):
    _, folder = mlp_dir
    edit_config(folder, **fields)
    remedy = "(the directory is damaged or was not written by zoo: save or download it again)"
    with pytest.raises(ModelDirError, match="config.json: " + re.escape(f"{problem} {remedy}")):
        zoo.load(str(folder))
    done = run_zoo("info", str(folder))
    assert done.returncode == 1 and done.stderr == f"Error: {folder / 'config.json'}: {problem} {remedy}\n"


def test_a_weights_entry_given_as_a_bare_file_name_loads(mlp_dir):
    model, folder = mlp_dir
    edit_config(folder, files={"weights": "model.safetensors"})
    loaded = zoo.load(str(folder))
    x = torch.randn(3, 64)
    torch.testing.assert_close(loaded(x), model.eval()(x))


def test_a_directory_without_config_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelDirError, match="no config.json"):
        zoo.load(str(tmp_path / "empty") + "/")


def test_damaged_weights_in_a_directory_are_refused(mlp_dir):
    _, folder = mlp_dir
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[-1] ^= 0x01
    (folder / "model.safetensors").write_bytes(data)
    with pytest.raises(WeightsIntegrityError, match="the file was not loaded"):
        zoo.load(str(folder))


def test_a_directory_whose_weights_are_not_safetensors_says_to_replace_the_directory(mlp_dir):
    _, folder = mlp_dir
    (folder / "model.safetensors").write_bytes(b"garbage")
    edit_config(folder, files={"weights": "model.safetensors"})  # no sha256 to catch it first
    with pytest.raises(WeightsIntegrityError) as caught:
        zoo.load(str(folder))
    assert str(caught.value) == (
        f"{folder / 'model.safetensors'} is not a valid safetensors file: its header length is out of range "
        f"(the directory {folder} is damaged: save or download it again)"
    )


def test_architecture_arguments_cannot_be_changed_on_a_directory(mlp_dir):
    _, folder = mlp_dir
    with pytest.raises(ArgumentError, match="architecture and weights are fixed"):
        zoo.load(str(folder), hidden=(8,))


def test_a_model_directory_loads_from_the_hub_at_a_pinned_revision(hub):
    first, latest = hub.commits["zoo-tests/mlp-digits"]
    work = hub.root / "work"
    for reference, folder in ((f"hf://zoo-tests/mlp-digits@{first}", "mlp-0"), ("hf://zoo-tests/mlp-digits", "mlp-1")):
        model = zoo.load(reference)
        expected = zoo.load(str(work / folder))
        assert torch.equal(model.head.weight, expected.head.weight)
        assert model.zoo.labels == [str(d) for d in range(10)]


def test_a_hub_directory_offline_and_not_cached_names_the_remedy():
    with pytest.raises(WeightsUnavailableError, match="hf://zoo-tests/mlp-digits cannot be fetched: not in the Hugging Face cache"):
        zoo.load("hf://zoo-tests/mlp-digits")
