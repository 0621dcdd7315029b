"""Each built-in plugin stands alone: it declares the weights it bundles (register_weights) and
imports no other plugin package; registry.yaml is the curated catalogue of Hub weights only."""
from __future__ import annotations

import ast
import hashlib
import re

import pytest

import zoo
from helpers import ROOT
from zoo.registry_file import default_registry_path, load_registry_file

PLUGINS = sorted(p.name for p in (ROOT / "plugins").iterdir() if p.is_dir() and (p / "__init__.py").is_file())
BUNDLED_FILES = sorted((ROOT / "plugins").glob("zoo_*/weights/*.safetensors"))
_REFERENCE = re.compile(r"^([A-Za-z_]\w*)(?:[.:]|$)")  # "pkg", "pkg.mod", "pkg.mod:function", "pkg:file"


def other_plugins_named(source: str, own: str) -> list[str]:
    """Other plugin packages that a module imports (at any depth) or names in a string
    ("module:function", a bundled source's package): each is a dependency on that plugin."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names = [node.value]
        else:
            continue
        for name in names:
            match = _REFERENCE.match(name)
            package = match.group(1) if match else None
            if package in PLUGINS and package != own:
                found.append(f"line {node.lineno}: {name}")
    return found


def test_the_built_in_plugins_are_found():
    assert {"zoo_perceptron", "zoo_mlp", "zoo_cnn", "zoo_rnn", "zoo_timm"} <= set(PLUGINS)


@pytest.mark.parametrize("plugin", PLUGINS)
def test_no_plugin_imports_or_names_another_plugin(plugin):
    found = {
        str(path.relative_to(ROOT)): names
        for path in sorted((ROOT / "plugins" / plugin).rglob("*.py"))
        if (names := other_plugins_named(path.read_text(encoding="utf-8"), plugin))
    }
    assert found == {}, "a plugin may name another's registered names (a transform, a vocabulary), never its code"


@pytest.mark.parametrize(
    "source",
    [
        "import zoo_cnn",
        "import zoo_cnn.digits as d",
        "from zoo_cnn.digits import digit_transform",
        "def f():\n    from zoo_cnn import digits",
        "BUILD = 'zoo_cnn.model:lenet5'",
        "Source('bundled', package='zoo_cnn', path='weights/x.safetensors')",
    ],
)
def test_the_check_sees_every_way_of_depending_on_another_plugin(source):
    assert other_plugins_named(source, "zoo_mlp")
    assert not other_plugins_named(source, "zoo_cnn")


def test_naming_a_registered_transform_is_no_dependency():
    assert other_plugins_named("preprocess = {'transform': 'digits', 'vocab': 'lstm-text'}", "zoo_mlp") == []


@pytest.mark.parametrize("path", BUNDLED_FILES, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_every_bundled_weight_file_is_declared_by_its_own_plugin(path):
    plugin, relative = path.parent.parent.name, str(path.relative_to(path.parent.parent))
    declared = [
        (spec, source)
        for spec in zoo.get_registry().weights.values()
        for source in spec.sources
        if source.kind == "bundled" and source.package == plugin and source.path == relative
    ]
    assert len(declared) == 1, f"{plugin}/{relative} is declared {len(declared)} times"
    spec, source = declared[0]
    assert spec.plugin == plugin, f"{spec.id} bundles a file of {plugin} but is declared by {spec.plugin}"
    assert spec.license and spec.metrics and spec.aliases
    assert source.size == path.stat().st_size
    assert source.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_bundled_weights_keep_their_names_and_owners():
    registry = zoo.get_registry()
    owners = {alias: (registry.resolve(alias).weights.id, registry.resolve(alias).weights.plugin)
              for alias in ("lstm-text", "mlp-digits", "lenet5-digits")}
    assert owners == {
        "lstm-text": ("textgenrnn.reddit", "zoo_rnn"),
        "mlp-digits": ("mlp.digits", "zoo_mlp"),
        "lenet5-digits": ("lenet5.digits", "zoo_cnn"),
    }
    assert registry.resolve("textgenrnn").weights.id == "textgenrnn.reddit"  # still its architecture's default


def test_registry_yaml_declares_no_weights_a_plugin_bundles():
    bundled = [spec.id for spec in load_registry_file(default_registry_path()) if any(s.kind == "bundled" for s in spec.sources)]
    assert bundled == [], "weights inside a plugin package are that plugin's to declare (register_weights)"
