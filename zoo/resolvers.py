"""References: what a model name means, through resolvers that plugins register by prefix.

A plugin claims a kind of reference in its `register_resolvers(register)` hook with
``register(prefix, resolver)`` (as llm's fragment loaders do). ``resolver(name)`` gets the whole
reference and returns a `Resolved` (an architecture and its weights) or a `ModelDirectory` (a
folder on disk, read and verified like any model directory). The core registers ``hf://`` and
model directories (the empty prefix: a path); zoo_timm registers ``timm/``.

A name is resolved in this order: a folder holding config.json; the longest registered prefix it
starts with; a registry name or alias; a path (a name with a '/' or that exists), which the
model-directory resolver answers; otherwise UnknownModelError with suggestions.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Union

from zoo.errors import PluginError, RegistryError, UnknownModelError
from zoo.registry import ModelDirectory, Registry, Resolved
from zoo.specs import is_model_dir

# The prefix of the model-directory resolver: it answers names that are paths.
PATHS = ""
Resolution = Union[Resolved, ModelDirectory]


@dataclass(frozen=True)
class Resolver:
    """A kind of reference: names starting with `prefix`, and the plugin function that resolves them."""

    prefix: str
    resolve: Callable[[str], Resolution]
    plugin: str | None = None

    @property
    def shown(self) -> str:
        """The prefix as `zoo plugins` shows it."""
        return self.prefix or "<model directory>"


def _accept(prefix: Any, resolve: Any, plugin: str) -> Resolver:
    if not isinstance(prefix, str) or any(c.isspace() for c in prefix):
        raise RegistryError(f"a resolver prefix must be a string without spaces, got {prefix!r}")
    if not callable(resolve):
        raise RegistryError(f"the resolver of {prefix!r} must be callable, got {type(resolve).__name__}")
    return Resolver(prefix, resolve, plugin)


def resolvers(pm: Any = None) -> dict[str, Resolver]:
    """Every resolver the installed plugins register, by prefix as shown (two plugins claiming one
    prefix: the second one fails)."""
    from zoo.plugins import default_plugin_manager

    found = (pm or default_plugin_manager()).collect("register_resolvers", _accept, key=lambda r: r.shown)
    return {r.prefix: r for r in found.values()}


def resolve(name: str | os.PathLike[str], *, registry: Registry | None = None, pm: Any = None) -> Resolution:
    """What the model reference `name` means (see the module docstring for the order).

    Args:
        name: a registry name or alias, a model directory (a str or a path), or any registered reference
            (``hf://org/repo@rev``, ``timm/resnet10t``, a plugin's own prefix).
        registry: the registry for plain names (default: the installed plugins' one).
        pm: the plugin manager whose resolvers answer (default: the process-wide one).

    Raises:
        UnknownModelError: no resolver claims the name and the registry does not know it.
        PluginError: a resolver returned something other than a Resolved or a ModelDirectory.
    """
    name = os.fspath(name)
    table = resolvers(pm)
    if is_model_dir(name) and PATHS in table:
        return _checked(table[PATHS], name)
    claimed = [prefix for prefix in table if prefix and name.startswith(prefix)]
    if claimed:
        return _checked(table[max(claimed, key=len)], name)
    if registry is None:
        from zoo.registry import default_registry

        registry = default_registry()
    try:
        return registry.resolve(name)
    except UnknownModelError:
        if PATHS in table and ("/" in name or os.sep in name or Path(name).exists()):
            return _checked(table[PATHS], name)
        raise


def _checked(resolver: Resolver, name: str) -> Resolution:
    found = resolver.resolve(name)
    if isinstance(found, (str, os.PathLike)):
        found = ModelDirectory(Path(found))
    if not isinstance(found, (Resolved, ModelDirectory)):
        raise PluginError(
            f"the resolver of {resolver.shown!r} ({resolver.plugin}) returned a {type(found).__name__} for {name!r}, "
            "not a Resolved or a ModelDirectory",
            "fix or uninstall the plugin",
        )
    return found


def architecture(name: str, registry: Registry | None = None) -> Any:
    """The ArchSpec an architecture name stands for: a registered architecture, or one a resolver
    gives (``timm/resnet10t``). This is how a model directory's "architecture" is read back; data
    can only pick among what plugins registered, and never names a directory or a download.

    Raises:
        UnknownModelError: neither the registry nor a resolver knows the architecture.
    """
    if registry is None:
        from zoo.registry import default_registry

        registry = default_registry()
    if name in registry.archs:
        return registry.archs[name]
    table = resolvers()
    # A prefix such as hf:// names a location (a download), never an architecture.
    claimed = [prefix for prefix in table if prefix and "://" not in prefix and name.startswith(prefix)]
    if claimed:
        found = _checked(table[max(claimed, key=len)], name)
        if isinstance(found, Resolved) and (found.arch_name or found.arch.name) == name:
            return found.arch
    raise UnknownModelError(name, registry.suggest(name))
