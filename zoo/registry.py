"""The Registry that plugins and registry files fill (the specs are in `zoo.specs`). No torch here."""
from __future__ import annotations

__all__ = [
    "INPUT_KINDS",
    "SOURCE_KINDS",
    "PLAIN_NAME",
    "RegistryWarning",
    "InputSpec",
    "ArchSpec",
    "Source",
    "WeightSpec",
    "TransformSpec",
    "VocabSpec",
    "Resolved",
    "ModelDirectory",
    "Registry",
    "default_registry",
    "registered",
    "named",
]

import functools
import difflib
import fnmatch
import warnings
from pathlib import Path
from typing import Any, Collection, Iterable, Mapping

from zoo.errors import DuplicateNameError, NoWeightsError, RegistryError, UnknownModelError
from zoo.specs import (  # re-exported: `zoo.registry` is where plugins have always found them
    INPUT_KINDS,
    SOURCE_KINDS,
    PLAIN_NAME,
    RegistryWarning,
    InputSpec,
    ArchSpec,
    Source,
    WeightSpec,
    TransformSpec,
    VocabSpec,
    Resolved,
    ModelDirectory,
)

def registered(hook: str, kind: type, pm: Any = None) -> dict[str, Any]:
    """What plugins registered through `hook` (``register_transforms``: TransformSpec, ...), by name."""
    from zoo.plugins import accept_instances, default_plugin_manager

    return (pm or default_plugin_manager()).collect(hook, accept_instances(kind), key=lambda spec: spec.name)


def named(table: Mapping[str, Any], name: Any, what: str) -> Any:
    """`table[name]`; anything else is a one-line RegistryError naming what is registered.

    Data chooses behaviour by a plain name only: a ``"module:function"`` or a path is refused as
    such, never imported or opened.
    """
    if isinstance(name, str) and name in table:
        return table[name]
    known = ", ".join(sorted(table)) or "none"
    if isinstance(name, str) and not PLAIN_NAME.match(name):
        raise RegistryError(
            f"{what} {name!r} is not a registered name: data names a {what} by a plain name, never by "
            f"a module or file path (registered: {known})",
            f"use one of the registered names, or install the plugin that registers the {what}",
        )
    raise RegistryError(
        f"unknown {what} {name!r} (registered: {known})", "install the plugin that registers it, or use one of those"
    )


class Registry:
    """Every architecture and weight the installed plugins and registry files declare."""

    def __init__(self, archs: Iterable[ArchSpec] = (), weights: Iterable[WeightSpec] = ()):
        self.archs: dict[str, ArchSpec] = {}
        self.weights: dict[str, WeightSpec] = {}
        self.aliases: dict[str, str] = {}
        for arch in archs:
            self.add_arch(arch)
        for spec in weights:
            self.add_weights(spec)

    # -- building -------------------------------------------------------------------------------
    @classmethod
    def from_plugin_manager(cls, pm: Any, files: Iterable[str | Path] | None = None) -> Registry:
        """Collect the plugins' architectures and weights, then the registry files (registry.yaml, ZOO_REGISTRY).

        Names are claimed in this order: built-in plugins' architectures, the registry files' weights,
        the built-in plugins' weights (those they bundle), then the third-party plugins' architectures
        and weights. A plugin entry whose name (or alias) is already taken is skipped with a warning
        naming both; the rest of that plugin stays. Conflicts between registry files are errors (they
        are the user's own data).
        """
        from zoo.plugins import accept_instances
        from zoo.registry_file import load_registry_file, registry_files

        archs = pm.collect("register_architectures", accept_instances(ArchSpec), key=lambda spec: spec.name)
        weights = pm.collect("register_weights", accept_instances(WeightSpec), key=lambda spec: spec.id)
        failed = {name for name, record in pm.records.items() if record.error}
        builtin = {name for name, record in pm.records.items() if record.builtin}
        file_weights = [
            (spec, f"{path}: entry {spec.id!r}: field 'arch'")
            for path in (registry_files() if files is None else files)
            for spec in load_registry_file(path)
        ]
        plugin_weights = sorted(
            ((w, f"weights {w.id!r} ({w.plugin})") for w in weights.values() if w.plugin not in failed),
            key=lambda item: item[0].plugin not in builtin,
        )
        bundled = [spec for spec, _ in plugin_weights if spec.plugin in builtin]
        # Names a third-party architecture cannot take; a registry file's entry wins over a built-in plugin's.
        claimed = {name: spec for spec in (*bundled, *(s for s, _ in file_weights)) for name in (spec.id, *spec.aliases)}
        registry = cls()
        for arch in sorted((a for a in archs.values() if a.plugin not in failed), key=lambda a: a.plugin not in builtin):
            taken = claimed.get(arch.name) if arch.plugin not in builtin else None
            if taken is not None:
                what = "the weights" if taken.id == arch.name else f"an alias of the weights {taken.id!r}"
                pm.skip(arch.plugin, f"architecture {arch.name!r}: {arch.name!r} is already {what} ({taken.plugin}); skipped")
            else:
                registry.add_arch(arch)
        for spec, where in (*file_weights, *plugin_weights):
            if spec.arch not in registry.archs:  # its plugin is not installed, not loaded (ZOO_LOAD_PLUGINS) or broken
                warnings.warn(
                    f"{where}: architecture {spec.arch!r} is not registered (is its plugin installed and loaded?); skipped",
                    RegistryWarning,
                    stacklevel=2,
                )
            elif spec.plugin == "registry.yaml":
                registry.add_weights(spec)
            elif (taken := registry.taken(spec)) is not None:
                pm.skip(spec.plugin, f"weights {spec.id!r}: {taken}; skipped")
            else:
                registry.add_weights(spec)
        return registry

    def add_arch(self, spec: ArchSpec) -> None:
        if spec.name in self.archs:
            raise DuplicateNameError(
                f"architecture {spec.name!r} is registered by both {self.archs[spec.name].plugin!r} and {spec.plugin!r}"
            )
        self.archs[spec.name] = spec

    def claimant(self, name: str) -> tuple[str, str | None] | None:
        """What already holds `name` (an architecture, weights or an alias) and who registered it, or None."""
        if name in self.archs:
            return f"the architecture {name!r}", self.archs[name].plugin
        if name in self.weights:
            return f"the weights {name!r}", self.weights[name].plugin
        if name in self.aliases:
            owner = self.weights[self.aliases[name]]
            return f"an alias of the weights {owner.id!r}", owner.plugin
        return None

    def taken(self, spec: WeightSpec) -> str | None:
        """`'x' is already ... (plugin)` for the first name of `spec` that is taken, or None when all are free."""
        for name in (spec.id, *spec.aliases):
            claim = self.claimant(name)
            if claim is not None:
                return f"{name!r} is already {claim[0]} ({claim[1]})"
        return None

    def add_weights(self, spec: WeightSpec) -> None:
        """Add weights; a name or alias already taken (an architecture's included) is a DuplicateNameError."""
        if spec.arch not in self.archs:
            raise RegistryError(f"weights {spec.id!r} ({spec.plugin}) name the unknown architecture {spec.arch!r}")
        for name in (spec.id, *spec.aliases):
            claim = self.claimant(name)
            if claim is not None:
                raise DuplicateNameError(
                    f"weights name {name!r} is registered by both {claim[1]!r} ({claim[0]}) and {spec.plugin!r}",
                    "rename or remove one of the two entries",
                )
        self.weights[spec.id] = spec
        for alias in spec.aliases:
            self.aliases[alias] = spec.id
        if spec.default:
            self.aliases.setdefault(spec.arch, spec.id)

    # -- lookup ---------------------------------------------------------------------------------
    def names(self) -> list[str]:
        """Every loadable name: architectures, weight ids and aliases."""
        return sorted(set(self.archs) | set(self.weights) | set(self.aliases))

    def resolve(self, name: str) -> Resolved:
        """What `name` means, or UnknownModelError with suggestions."""
        weight_id = name if name in self.weights else self.aliases.get(name)
        if weight_id is not None:
            spec = self.weights[weight_id]
            return Resolved(self.archs[spec.arch], spec)
        if name in self.archs:
            return Resolved(self.archs[name], None)
        raise UnknownModelError(name, self.suggest(name))

    def get_spec(self, name: str) -> ArchSpec | WeightSpec:
        """The WeightSpec a weight id or alias names, or the ArchSpec an architecture name names."""
        resolved = self.resolve(name)
        if name in self.archs or resolved.weights is None:
            return resolved.arch
        return resolved.weights

    def weights_for(self, arch: str) -> list[WeightSpec]:
        return [w for w in self.weights.values() if w.arch == arch]

    def require_weights(self, name: str) -> WeightSpec:
        """The weights `name` refers to, or NoWeightsError when its architecture has none."""
        resolved = self.resolve(name)
        if resolved.weights is None:
            raise NoWeightsError(
                f"no weights registered for {name!r}",
                "load it with pretrained=False, or pick one of: "
                + (", ".join(w.id for w in self.weights_for(resolved.arch.name)) or "`zoo list --pretrained`"),
            )
        return resolved.weights

    def suggest(self, name: str, n: int = 3) -> list[str]:
        names = self.names()
        lowered = {candidate.lower(): candidate for candidate in names}
        close = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.6)
        return [lowered[c] for c in close]

    def list_models(
        self,
        *patterns: str,
        family: str | None = None,
        task: str | Collection[str] | None = None,
        pretrained: bool | None = None,
    ) -> list[str]:
        """Names matching any fnmatch pattern: architectures (pretrained=False), weight ids
        (pretrained=True), or both (None), filtered by family and task (a name, or the names that
        mean one task: `zoo.tasks.task_names` gives a task's name and aliases)."""
        rows: list[tuple[str, ArchSpec, tuple[str, ...]]] = []
        if pretrained is not True:
            rows += [(a.name, a, (a.name,)) for a in self.archs.values()]
        if pretrained is not False:
            rows += [(w.id, self.archs[w.arch], (w.id, *w.aliases)) for w in self.weights.values()]
        out = []
        wanted = {task} if isinstance(task, str) else set(task or ())
        for name, arch, matchable in rows:
            if family is not None and arch.family != family:
                continue
            if task is not None and wanted.isdisjoint(arch.tasks):
                continue
            if patterns and not any(fnmatch.fnmatchcase(m, p) for m in matchable for p in patterns):
                continue
            out.append(name)
        return sorted(out)

    def families(self) -> list[str]:
        return sorted({a.family for a in self.archs.values()})


@functools.lru_cache(maxsize=1)
def default_registry() -> Registry:
    """The registry of the default plugin manager; `default_registry.cache_clear()` rebuilds it."""
    from zoo.plugins import default_plugin_manager

    return Registry.from_plugin_manager(default_plugin_manager())
