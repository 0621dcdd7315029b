"""Converting checkpoints: byte-reproducible safetensors, state dicts inside wrappers, and converters
that return metadata (labels) along with the state dict."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import ROOT, run_zoo
from zoo.cache import sha256_file
from zoo.errors import PluginError, RegistryError, WeightsIntegrityError
from zoo.registry import InputSpec, Source
from zoo.statedict import converted_metadata, read_safetensors
from zoo.weights import convert_checkpoint

STATE = {"layer.weight": torch.arange(6.0).reshape(2, 3), "layer.bias": torch.ones(2)}
SHAPES = lambda: {k: v.shape for k, v in STATE.items()}  # noqa: E731


def with_labels(state, shapes):
    """A converter that returns the state dict and the class names."""
    return dict(state), {"labels": ["cat", "dog"], "source_note": "made by a test"}


def bad_labels(state, shapes):
    return dict(state), {"labels": "cat,dog"}


def three_items(state, shapes):
    return dict(state), {}, "extra"


@pytest.mark.slow
def test_conversions_in_two_processes_give_byte_identical_files(tmp_path):
    """`zoo pull english-ocr` converts english_g2.pth in two fresh processes: one sha256."""
    hashes = []
    for run in ("a", "b"):
        home = tmp_path / run
        result = run_zoo("pull", "english-ocr", env={"ZOO_HOME": str(home)})
        assert result.returncode == 0, result.stderr
        (converted,) = (home / "weights").rglob("*.safetensors")
        hashes.append(sha256_file(converted))
    assert hashes[0] == hashes[1]
    assert converted_metadata(converted)["labels"][:3] == ["[blank]", "0", "1"]


@pytest.mark.slow
def test_save_safetensors_writes_the_same_bytes_in_every_process(tmp_path):
    script = (
        "import sys, torch; from zoo.statedict import save_safetensors; "
        "save_safetensors({'b': torch.ones(3), 'a': torch.zeros(2)}, sys.argv[1], "
        "metadata={'format': 'pt', 'converted_from': 'x.pth', 'zoo.labels': '[\"€\", \" \"]', 'k': 'v'})"
    )
    files = [tmp_path / f"{i}.safetensors" for i in range(3)]
    for path in files:  # safetensors' hash-map order changes with the process (1 chance in 36 of 3 equal ones)
        subprocess.run([sys.executable, "-c", script, str(path)], check=True, cwd=ROOT)
    assert len({path.read_bytes() for path in files}) == 1
    header = json.loads(files[0].read_bytes()[8 : 8 + int.from_bytes(files[0].read_bytes()[:8], "little")])
    assert list(header["__metadata__"]) == ["converted_from", "format", "k", "zoo.labels"]


def test_a_converter_returns_labels_that_the_converted_file_keeps(tmp_path):
    out = tmp_path / "out.safetensors"
    metadata = convert_checkpoint(_saved(tmp_path, STATE), out, "test_conversions:with_labels", SHAPES)
    assert metadata["labels"] == ["cat", "dog"]
    assert converted_metadata(out) == {"labels": ["cat", "dog"], "source_note": "made by a test"}
    assert torch.equal(read_safetensors(out)["layer.weight"], STATE["layer.weight"])


def test_a_converter_that_returns_only_the_state_dict_still_works(tmp_path):
    out = tmp_path / "out.safetensors"
    assert convert_checkpoint(_saved(tmp_path, STATE), out, None, SHAPES) == {}
    assert converted_metadata(out) == {}
    assert set(read_safetensors(out)) == set(STATE)


@pytest.mark.parametrize(
    "converter, message",
    [
        ("test_conversions:bad_labels", "returned labels that are not a list of strings"),
        ("test_conversions:three_items", "returned a tuple of 3 items"),
    ],
)
def test_a_converter_returning_malformed_metadata_is_named(tmp_path, converter, message):
    with pytest.raises(PluginError, match=message):
        convert_checkpoint(_saved(tmp_path, STATE), tmp_path / "out.safetensors", converter, SHAPES)
    assert not (tmp_path / "out.safetensors").exists()


def test_the_state_dict_is_taken_from_the_key_a_source_names(tmp_path):
    wrapped = {"epoch": 3, "optimizer": {"lr": 0.1}, "model_state_dict": STATE, "characters": "abc"}
    out = tmp_path / "out.safetensors"
    convert_checkpoint(_saved(tmp_path, wrapped), out, None, SHAPES, state_dict_key="model_state_dict")
    assert set(read_safetensors(out)) == set(STATE)


def test_a_nested_key_is_dotted(tmp_path):
    wrapped = {"checkpoint": {"model": STATE, "step": 10}}
    out = tmp_path / "out.safetensors"
    convert_checkpoint(_saved(tmp_path, wrapped), out, None, SHAPES, state_dict_key="checkpoint.model")
    assert set(read_safetensors(out)) == set(STATE)


def test_a_wrapper_without_its_key_is_refused_naming_what_is_not_a_tensor(tmp_path):
    wrapped = {"epoch": 3, "model_state_dict": STATE, "characters": "abc"}
    with pytest.raises(WeightsIntegrityError) as caught:
        convert_checkpoint(_saved(tmp_path, wrapped), tmp_path / "out.safetensors", None, SHAPES)
    assert "is not a flat state dict: 'epoch' (int), 'model_state_dict' (dict), 'characters' (str) are not tensors" in str(caught.value)
    assert "the state dict may be under 'model_state_dict'" in str(caught.value)
    assert "state_dict_key" in caught.value.remedy


def test_a_key_that_is_not_there_is_refused_naming_the_keys_there(tmp_path):
    wrapped = {"epoch": 3, "model": STATE}
    with pytest.raises(WeightsIntegrityError, match=r"has no entry 'model_state_dict' \(at 'model_state_dict': the keys there are epoch, model\)"):
        convert_checkpoint(_saved(tmp_path, wrapped), tmp_path / "out.safetensors", None, SHAPES, state_dict_key="model_state_dict")


def test_a_source_checks_its_key_and_map_location():
    source = Source("pkg", dist="d", path="p.pth", state_dict_key="model_state_dict", map_location="cuda:1")
    assert (source.state_dict_key, source.map_location) == ("model_state_dict", "cuda:1")
    assert Source("pkg", dist="d", path="p.pth").map_location == "cpu"
    with pytest.raises(RegistryError, match="state_dict_key must be a key or dotted keys"):
        Source("pkg", dist="d", path="p.pth", state_dict_key="model..weights")
    with pytest.raises(RegistryError, match="map_location 'os.system' is not a device name"):
        Source("pkg", dist="d", path="p.pth", map_location="os.system")
    with pytest.raises(RegistryError, match="a safetensors file holds its tensors at the top level"):
        Source("hf", repo="me/m", filename="model.safetensors", state_dict_key="model_state_dict")


def test_an_input_spec_declares_dynamic_sizes_with_their_range():
    spec = InputSpec("image", (1, 64, 256), dynamic={"width": [8, 2048]})
    assert spec.dynamic == {"width": (8, 2048)}
    assert spec.describe() == "image 1×64×W[8..2048]"
    assert InputSpec("tokens", vocab_size=10, dynamic={"seq": (1, 512)}).dynamic == {"seq": (1, 512)}


@pytest.mark.parametrize(
    "kind, shape, dynamic, message",
    [
        ("image", (1, 64, 256), {"time": (1, 9)}, "a image input has no dynamic size 'time' \\(use 'height', 'width'\\)"),
        ("features", (4,), {"seq": (1, 9)}, "a feature vector has no size that varies"),
        ("image", (1, 64, 256), {"width": (300, 400)}, "the shape's width 256 is outside \\(300, 400\\)"),
        ("image", (1, 64, 256), {"width": (0, 400)}, "need 1 <= min <= max, got \\(0, 400\\)"),
        ("tokens", (), {"seq": 5}, "dynamic size 'seq' needs \\(min, max\\), got 5"),
        ("image", (1, 64, 256), [("width", (8, 9))], "dynamic must map size names to \\(min, max\\)"),
    ],
)
def test_an_impossible_dynamic_size_is_refused(kind, shape, dynamic, message):
    with pytest.raises(RegistryError, match=message):
        InputSpec(kind, shape, vocab_size=10, dynamic=dynamic)


def _saved(folder: Path, obj) -> Path:
    path = folder / "checkpoint.pth"
    torch.save(obj, path)
    return path


@pytest.mark.slow
def test_labels_a_converter_returns_reach_the_loaded_model_when_the_spec_declares_none():
    """english-ocr's converter returns its 97 characters; a spec without labels still loads them."""
    import dataclasses

    from zoo.loading import load_pretrained
    from zoo.registry import default_registry

    registry = default_registry()
    weights = registry.weights["crnn.english_g2"]
    unlabelled = dataclasses.replace(weights, labels=None)
    model = load_pretrained(registry.archs["crnn"], unlabelled)
    assert model.zoo.labels == weights.label_names() and len(model.zoo.labels) == 97
