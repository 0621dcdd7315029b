"""Built-in plugin: the CNN families through timm, registered from generated data (no timm import).

The curated set lives in ``catalog.json`` (written by ``scripts/gen_timm_catalog.py``): each
architecture with its real Hub tags ``timm/<arch>.<tag>``, timm's preprocessing per tag, and the
ImageNet-1k labels in ``imagenet1k.txt``. Any other timm model loads as ``timm/<name>``: this plugin
registers the resolver of the ``timm/`` prefix (``passthrough.py``, which imports timm when it runs).
"""
from __future__ import annotations

import functools
import json
from importlib.resources import files
from typing import Any

from zoo import ArchSpec, InputSpec, Source, WeightSpec, hookimpl

# A model directory of a timm architecture is also a timm repo: its config.json carries timm's keys.
LIBRARY_CONFIG = "zoo_timm.hubconfig:timm_config"


@functools.lru_cache(maxsize=1)
def catalog() -> dict[str, Any]:
    """The generated catalogue, parsed once."""
    return json.loads(files(__name__).joinpath("catalog.json").read_text(encoding="utf-8"))


@hookimpl
def register_architectures(register):
    for arch in catalog()["architectures"]:
        register(
            ArchSpec(
                name=arch["name"],
                family="cnn",
                build=f"zoo_timm.build:{arch['name']}",
                tasks=("image-classification",),
                input=InputSpec("image", tuple(arch["input_size"])),
                defaults={"num_classes": 1000, "in_chans": 3},
                num_params=arch["num_params"],
                description=arch["description"],
                library="timm",
                library_config=LIBRARY_CONFIG,
            )
        )


@hookimpl
def register_weights(register):
    for entry in catalog()["weights"]:
        fields = {k: v for k, v in entry.items() if v is not None}
        fields["sources"] = tuple(Source(**source) for source in entry["sources"])
        register(WeightSpec(**fields))


def resolve_timm(name: str):
    """The resolver of ``timm/<arch>[.<tag>]`` (timm is imported only now)."""
    from zoo_timm.passthrough import resolve

    return resolve(name)


@hookimpl
def register_resolvers(register):
    register("timm/", resolve_timm)
