"""The plugin author's kit (zoo.testing) over the built-in and example plugins, and the failures it must catch."""
from __future__ import annotations

import pytest
from torch import nn

import zoo
from zoo.build import build_model
from zoo.heads import ZooModel


class Headless(ZooModel):
    """Implements forward_features but neither make_head nor num_features."""

    def __init__(self, num_classes: int = 3):
        super().__init__()
        self.body = nn.Linear(4, 8)

    def forward_features(self, x):
        return self.body(x)


def headless(*, num_classes: int = 3) -> Headless:
    return Headless(num_classes)


HEADLESS = zoo.ArchSpec(name="headless", family="mlp", build=f"{__name__}:headless", tasks=("tabular-classification",),
                        input=zoo.InputSpec("features", (4,)), plugin="kit-test")


def test_a_half_built_zoo_model_is_refused_when_built_naming_the_class_and_what_is_missing():
    with pytest.raises(zoo.PluginError, match=r"architecture 'headless' \(kit-test\): \S*test_kit\.Headless is missing "
                       r"make_head\(\), num_features \(an int, set in __init__\), head \(set self\.head ="):
        build_model(HEADLESS)
