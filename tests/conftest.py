"""Shared fixtures: an isolated zoo home and HF cache, and a fresh plugin manager per test."""
from __future__ import annotations

import os

import pytest

from helpers import ROOT, run_zoo  # noqa: F401  (kept importable from conftest until every test file moves)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory, monkeypatch):
    """Every test gets its own ZOO_HOME and HF_HOME, offline unless it asks for the local hub."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("ZOO_HOME", str(home / "zoo"))
    monkeypatch.setenv("HF_HOME", str(home / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
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
def local_hub(tmp_path_factory):
    """olah on a free loopback port (offline mode), serving the test repositories (tests/hubrepos.py).

    Sets HF_ENDPOINT for the session; tests that fetch use `hub`, which also lifts HF_HUB_OFFLINE.
    """
    from hubrepos import LocalHub, build_repos

    root = tmp_path_factory.mktemp("hub")
    hub = LocalHub(root)
    saved = {name: os.environ.get(name) for name in ("ZOO_HOME", "HF_HOME", "HF_ENDPOINT")}
    os.environ["ZOO_HOME"] = str(root / "build-zoo-home")  # building the repos must not touch a test's cache
    try:
        build_repos(hub, root / "work")
        hub.start()
        os.environ["HF_ENDPOINT"] = hub.endpoint
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
