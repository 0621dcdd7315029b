"""The plugin author's kit (zoo.testing) over the built-in and example plugins, and the failures it must catch."""
from __future__ import annotations

import pytest
from helpers import ROOT
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


# -- the kit over the built-in plugins: everything on the small families, the cheap checks on timm's --
SMALL_TIMM = ("tf_efficientnet_lite0",)  # one timm network runs the forward, head and round-trip checks


def builtin_checks() -> list:
    from zoo.testing import plugin_checks

    checks = [c for p in ("zoo_perceptron", "zoo_mlp", "zoo_cnn", "zoo_rnn") for c in plugin_checks(p)]
    checks += plugin_checks("zoo_timm", skip=("forward", "head", "round_trip", "onnx"))
    checks += [c for c in plugin_checks("zoo_timm", archs=SMALL_TIMM) if c.name in ("forward", "head", "round_trip", "onnx")]
    return [pytest.param(c, id=str(c), marks=marks(c)) for c in checks]


def marks(check) -> list:
    if check.name != "onnx":
        return []
    if check.subject in UNROLLED:
        return [pytest.mark.slow, pytest.mark.xfail(strict=True, reason="a Python loop over time is unrolled at the example length: export it with --static")]
    return [pytest.mark.slow]


UNROLLED = ("rnn-scratch", "lstm-scratch")  # the teaching RNNs step through time in Python


@pytest.mark.parametrize("check", builtin_checks())
def test_builtin_plugins_pass_the_kit(check):
    check.run()


# -- the example plugin, and three broken copies of it that must fail through the kit ---------------
EXAMPLE = ROOT / "examples" / "zoo-plugin-example" / "zoo_plugin_example"


def test_the_example_plugin_passes_the_kit(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE.parent))
    from zoo.testing import check_plugin

    assert check_plugin("zoo_plugin_example") == []  # nothing skipped: onnx is installed here


def broken_example(tmp_path, monkeypatch, package: str, edits: dict[str, tuple[str, str]]) -> str:
    """A copy of the example plugin as `package`, with `edits` (file -> (old, new)) applied; importable."""
    folder = tmp_path / package
    folder.mkdir()
    for source in EXAMPLE.glob("*.py"):
        text = source.read_text().replace("zoo_plugin_example", package)
        old, new = edits.get(source.name, ("", ""))
        if old:
            assert old in text, f"{source.name} no longer holds {old!r}: update this test"
            text = text.replace(old, new)
        (folder / source.name).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    return package


MAKE_HEAD = '''    def make_head(self, num_classes: int) -> nn.Module:
        return nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()
'''


@pytest.mark.parametrize(
    ("case", "edits", "expected"),
    [
        (
            "wrong_num_params",
            {"__init__.py": ("num_params=1418", "num_params=1400")},
            r"check 'num_params' failed for architecture 'tinycnn' \(plugin zoo_kit_wrong_num_params\): "
            r"declares num_params=1400, a meta-device build has 1418 \(set num_params=1418 in its ArchSpec",
        ),
        (
            "missing_make_head",
            {"tiny.py": (MAKE_HEAD, "")},
            r"check 'forward' failed for architecture 'tinycnn' \(plugin zoo_kit_missing_make_head\): "
            r"zoo_kit_missing_make_head\.tiny\.TinyCNN is missing make_head\(\) \(implement them in the class",
        ),
        (
            "head_ignores_reset",
            {"tiny.py": (MAKE_HEAD, MAKE_HEAD + "\n    def reset_classifier(self, num_classes: int) -> None:\n        pass\n")},
            r"check 'head' failed for architecture 'tinycnn' \(plugin zoo_kit_head_ignores_reset\): after reset_classifier\(3\) "
            r"the output has 10 columns, expected 3 \(reset_classifier must replace the head with make_head",
        ),
    ],
)
def test_the_kit_fails_a_broken_plugin_naming_check_architecture_and_fix(tmp_path, monkeypatch, case, edits, expected):
    from zoo.testing import ConformanceError, check_plugin

    package = broken_example(tmp_path, monkeypatch, f"zoo_kit_{case}", edits)
    with pytest.raises(ConformanceError, match=expected):
        check_plugin(package, skip=("onnx",))
