"""Shared fixtures (an isolated zoo home and HF cache, a fresh plugin manager, the local hub) and the
family markers; plain helpers shared by test files live in tests/helpers.py."""
from __future__ import annotations

import ast
import functools
import inspect
import os
import re
import textwrap
from typing import Callable

import pytest


def architecture_families() -> dict[str, str]:
    """Every family, architecture, weight id and alias of the built-in plugins, mapped to its family."""
    from zoo.plugins import get_plugin_manager
    from zoo.registry import Registry

    registry = Registry.from_plugin_manager(get_plugin_manager(entry_points=False))
    names = {family: family for family in (spec.family for spec in registry.archs.values())}
    names.update({name: spec.family for name, spec in registry.archs.items()})
    names.update({wid: registry.archs[weights.arch].family for wid, weights in registry.weights.items()})
    names.update({alias: names[target] for alias, target in registry.aliases.items()})
    return names


@functools.cache
def string_constants(function: Callable) -> tuple[str, ...]:
    """The string literals in a test function's body (`run_zoo("finetune", "lenet5", ...)` names lenet5)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    except (OSError, TypeError, SyntaxError):
        return ()
    return tuple(node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str))


def referred_names(item: pytest.Item) -> str:
    """The test's id (file, name, parameter ids), the names in its parameters, and its literals that are names."""
    function = getattr(item, "function", None)
    names = item.config.family_names
    parts = [item.nodeid, *(text for text in string_constants(function) if text.lower() in names)] if function else [item.nodeid]
    for value in getattr(getattr(item, "callspec", None), "params", {}).values():
        for one in value if isinstance(value, (list, tuple)) else (value,):
            name = one if isinstance(one, str) else getattr(one, "name", None)
            if isinstance(name, str):
                parts.append(name)
    return " ".join(parts).lower()


def pytest_configure(config: pytest.Config) -> None:
    config.family_names = architecture_families()
    declared = {line.split(":")[0] for line in config.getini("markers")}
    for family in sorted(set(config.family_names.values()) - declared):
        config.addinivalue_line("markers", f"{family}: tests of the {family} family (set from the architecture)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test by the family of every architecture its file, name or parameters name: `pytest -m cnn`."""
    names = config.family_names
    pattern = re.compile("|".join(rf"(?<![a-z0-9]){re.escape(name)}(?![a-z0-9])" for name in sorted(names, key=len, reverse=True)))
    for item in items:
        for family in sorted({names[found] for found in pattern.findall(referred_names(item))}):
            item.add_marker(getattr(pytest.mark, family))


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory, monkeypatch):
    """Every test gets its own ZOO_HOME and HF_HOME, offline unless it asks for the local hub."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("ZOO_HOME", str(home / "zoo"))
    monkeypatch.setenv("HF_HOME", str(home / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HF_ENDPOINT", raising=False)  # the same for every test, whether or not the local hub started
    # As in a process started online: zoo reads HF_HUB_OFFLINE per call and never changes the
    # constant huggingface_hub read at its import (the first test to import it had the variable set).
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("ZOO_REGISTRY", raising=False)
    monkeypatch.delenv("ZOO_STRICT_PLUGINS", raising=False)
    monkeypatch.delenv("ZOO_DEBUG", raising=False)
    from zoo.plugins import default_plugin_manager
    from zoo.registry import default_registry

    default_plugin_manager.cache_clear()
    default_registry.cache_clear()
    yield home
    default_plugin_manager.cache_clear()
    default_registry.cache_clear()


@pytest.fixture
def plugin_manager():
    """A fresh plugin manager with the built-in plugins only."""
    from zoo.plugins import get_plugin_manager

    return get_plugin_manager(entry_points=False)


@pytest.fixture
def registry(plugin_manager):
    from zoo.registry import Registry

    return Registry.from_plugin_manager(plugin_manager)


@pytest.fixture(scope="session")
def faces(tmp_path_factory):
    """scikit-image's 200 LFW faces / non-faces, written once by `zoo data lfw-faces`'s code (read only)."""
    from zoo.data.packaged import write_dataset

    folder = tmp_path_factory.mktemp("lfw") / "faces"
    write_dataset("lfw-faces", folder)
    return folder


@pytest.fixture(scope="session")
def local_hub(tmp_path_factory):
    """olah on a free loopback port (offline mode), serving the test repositories (tests/hubrepos.py).

    Leaves the environment as it found it: tests that fetch use `hub`, which points HF_ENDPOINT at it and
    lifts HF_HUB_OFFLINE for that test only, so no test depends on which ran before it.
    """
    from hubrepos import LocalHub, build_repos

    root = tmp_path_factory.mktemp("hub")
    hub = LocalHub(root)
    saved = {name: os.environ.get(name) for name in ("ZOO_HOME", "HF_HOME")}
    os.environ["ZOO_HOME"] = str(root / "build-zoo-home")  # building the repos must not touch a test's cache
    try:
        build_repos(hub, root / "work")
        hub.start()
        yield hub
    finally:
        hub.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture
def hub(local_hub, monkeypatch):
    """The local hub, reachable: HF_ENDPOINT points at it and HF_HUB_OFFLINE is lifted for this test."""
    monkeypatch.setenv("HF_ENDPOINT", local_hub.endpoint)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return local_hub
