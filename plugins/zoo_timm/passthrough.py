"""``timm/<arch>[.<tag>]``: any timm model, with its pretrained weights from the Hub when timm lists them."""
from __future__ import annotations

import difflib

from zoo.errors import UnknownModelError
from zoo.registry import ArchSpec, InputSpec, Resolved, Source, WeightSpec

PREFIX = "timm/"
LABELS_1K = "zoo_timm:imagenet1k.txt"
PREPROCESS_KEYS = ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode")


def resolve(name: str) -> Resolved:
    """The architecture and (when timm knows Hub weights for it) the weights that `name` means.

    Raises:
        UnknownModelError: timm has no such model or tag; suggestions come from timm's list.
    """
    import timm
    from timm.models import get_pretrained_cfg

    model_name = name.removeprefix(PREFIX)
    arch_name, _, tag = model_name.partition(".")
    if not timm.is_model(arch_name):
        close = difflib.get_close_matches(arch_name, timm.list_models(), n=3)
        raise UnknownModelError(name, [PREFIX + n for n in close])
    arch = arch_spec(arch_name)
    try:
        cfg = get_pretrained_cfg(model_name)
    except RuntimeError:  # timm's answer to an unknown tag
        raise UnknownModelError(name, [PREFIX + t for t in timm.list_pretrained(f"{arch_name}.*")[:5]]) from None
    if cfg is None or not cfg.hf_hub_id:
        return Resolved(arch, None, arch_name=PREFIX + arch_name)
    return Resolved(arch, weight_spec(arch, cfg), arch_name=PREFIX + arch_name)


def arch_spec(arch_name: str) -> ArchSpec:
    """An ArchSpec for any timm architecture (not registered: built on demand)."""
    return ArchSpec(
        name=arch_name,
        family="cnn",
        build=f"zoo_timm.build:{arch_name}",
        tasks=("image-classification",),
        input=InputSpec("image", (3, 224, 224)),
        defaults={"num_classes": 1000, "in_chans": 3},
        description=f"timm {arch_name} (passthrough)",
        plugin="zoo_timm",
        library="timm",
        library_config="zoo_timm.hubconfig:timm_config",
    )


def weight_spec(arch: ArchSpec, cfg: object) -> WeightSpec:
    """The WeightSpec of a timm pretrained config: its Hub repo, preprocessing and labels."""
    data = cfg.to_dict()  # type: ignore[attr-defined]
    repo = data["hf_hub_id"]
    return WeightSpec(
        id=f"{arch.name}.{data['tag']}",
        arch=arch.name,
        sources=(
            Source(kind="hf", repo=repo, filename="model.safetensors"),
            Source(kind="hf", repo=repo, filename="pytorch_model.bin"),
        ),
        num_classes=data.get("num_classes") or None,
        labels=LABELS_1K if data.get("num_classes") == 1000 else None,
        preprocess={k: list(v) if isinstance(v, tuple) else v for k, v in data.items() if k in PREPROCESS_KEYS},
        license=data.get("license"),
        origin=data.get("origin_url"),
        citation=data.get("paper_ids"),
        plugin="zoo_timm",
    )
