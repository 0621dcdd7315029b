"""ArchSpec, WeightSpec and the Registry that plugins and registry files fill. No torch here."""
from __future__ import annotations

import functools
import difflib
import fnmatch
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from zoo.errors import DuplicateNameError, NoWeightsError, RegistryError, UnknownModelError

INPUT_KINDS = ("image", "tokens", "features")
SOURCE_KINDS = ("hf", "pkg", "bundled")
# What data may use to choose behaviour: a plain name, never a module path or a file path.
PLAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class RegistryWarning(UserWarning):
    """A registry entry was skipped because the architecture it names is not registered."""


@dataclass(frozen=True)
class InputSpec:
    """What a model eats: an image C×H×W, a token sequence over a vocabulary, or a feature vector."""

    kind: str
    shape: tuple[int, ...] = ()
    vocab_size: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in INPUT_KINDS:
            raise RegistryError(f"input kind {self.kind!r} is not one of {', '.join(INPUT_KINDS)}")
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))

    def describe(self) -> str:
        if self.kind == "image":
            return "image " + "×".join(str(d) for d in self.shape)
        if self.kind == "tokens":
            return f"token sequence, vocab {self.vocab_size}"
        return f"feature vector of {self.shape[0] if self.shape else '?'}"


@dataclass(frozen=True)
class ArchSpec:
    """An architecture: how to build it (imported only when built) and what it is for."""

    name: str
    family: str
    build: str
    tasks: tuple[str, ...]
    input: InputSpec
    defaults: Mapping[str, Any] = field(default_factory=dict)
    choices: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    num_params: int | None = None
    description: str = ""
    plugin: str | None = None

    def __post_init__(self) -> None:
        _check_name(self.name, "architecture")
        if not self.family or not isinstance(self.family, str):
            raise RegistryError(f"architecture {self.name!r}: family must be a non-empty string")
        if ":" not in self.build:
            raise RegistryError(f"architecture {self.name!r}: build must be 'module:function', got {self.build!r}")
        object.__setattr__(self, "tasks", tuple(self.tasks))
        if not self.tasks:
            raise RegistryError(f"architecture {self.name!r}: tasks must not be empty")
        if not isinstance(self.input, InputSpec):
            raise RegistryError(f"architecture {self.name!r}: input must be an InputSpec")
        object.__setattr__(self, "choices", {k: tuple(v) for k, v in self.choices.items()})


@dataclass(frozen=True)
class Source:
    """One place weights can come from: the Hub (`hf`), an installed package (`pkg`), or a plugin (`bundled`)."""

    kind: str
    repo: str | None = None
    revision: str | None = None
    filename: str | None = None
    dist: str | None = None
    package: str | None = None
    path: str | None = None
    converter: str | None = None
    sha256: str | None = None
    size: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in SOURCE_KINDS:
            raise RegistryError(f"source kind {self.kind!r} is not one of {', '.join(SOURCE_KINDS)}")
        needed = {"hf": ("repo", "filename"), "pkg": ("dist", "path"), "bundled": ("package", "path")}[self.kind]
        for name in needed:
            if not getattr(self, name):
                raise RegistryError(f"a {self.kind!r} source needs {name!r}")

    def describe(self) -> str:
        if self.kind == "hf":
            rev = f"@{self.revision}" if self.revision else ""
            return f"hf://{self.repo}{rev}/{self.filename}"
        if self.kind == "pkg":
            return f"pip package {self.dist!r} ({self.path})"
        return f"bundled in {self.package} ({self.path})"


@dataclass(frozen=True)
class WeightSpec:
    """Pretrained weights `arch.tag` for one architecture, with their sources and metadata."""

    id: str
    arch: str
    sources: tuple[Source, ...]
    aliases: tuple[str, ...] = ()
    default: bool = False
    arch_args: Mapping[str, Any] = field(default_factory=dict)
    num_classes: int | None = None
    labels: tuple[str, ...] | str | None = None
    preprocess: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    license: str | None = None
    citation: str | None = None
    origin: str | None = None
    description: str = ""
    num_params: int | None = None
    plugin: str | None = None

    def __post_init__(self) -> None:
        _check_name(self.id, "weights")
        if not self.id.startswith(self.arch + "."):
            raise RegistryError(f"weights {self.id!r}: the id must be '{self.arch}.<tag>'")
        object.__setattr__(self, "sources", tuple(self.sources))
        object.__setattr__(self, "aliases", tuple(self.aliases))
        if isinstance(self.labels, list):
            object.__setattr__(self, "labels", tuple(self.labels))
        if not self.sources:
            raise RegistryError(f"weights {self.id!r}: at least one source is needed")
        for alias in self.aliases:
            _check_name(alias, "alias")

    @property
    def tag(self) -> str:
        return self.id[len(self.arch) + 1 :]

    def label_names(self) -> list[str] | None:
        """The class names: inline, or read from `package:path` when `labels` names a file."""
        if self.labels is None or isinstance(self.labels, tuple):
            return list(self.labels) if self.labels else None
        from importlib.resources import files

        package, _, path = self.labels.partition(":")
        return files(package).joinpath(path).read_text(encoding="utf-8").splitlines()


@dataclass(frozen=True)
class TransformSpec:
    """An image transform that preprocessing may name (``"transform": "digits"``).

    `build` is the plugin's ``"module:function"``, imported only when the transform is used:
    ``build(preprocess) -> transform``, where ``transform(PIL image) -> tensor [C, H, W]``.
    """

    name: str
    build: str
    description: str = ""
    plugin: str | None = None

    def __post_init__(self) -> None:
        _check_plain(self.name, "transform")
        if ":" not in self.build:
            raise RegistryError(f"transform {self.name!r}: build must be 'module:function', got {self.build!r}")


@dataclass(frozen=True)
class VocabSpec:
    """A vocabulary file (vocab.json) a plugin ships, that data may name (``"vocab": "lstm-text"``)."""

    name: str
    package: str
    path: str
    description: str = ""
    plugin: str | None = None

    def __post_init__(self) -> None:
        _check_plain(self.name, "vocabulary")
        if not self.package or not self.path:
            raise RegistryError(f"vocabulary {self.name!r}: package and path are required")


def _check_plain(name: Any, what: str) -> None:
    if not isinstance(name, str) or not PLAIN_NAME.match(name):
        raise RegistryError(f"{what} name {name!r} must be a plain name (letters, digits, '.', '_', '-')")


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
        f"unknown {what} {name!r} (registered: {known})", f"install the plugin that registers it, or use one of those"
    )


@dataclass(frozen=True)
class Resolved:
    """What a name means: an architecture, and the weights it names (or the arch's default weights)."""

    arch: ArchSpec
    weights: WeightSpec | None


def _check_name(name: Any, what: str) -> None:
    if not isinstance(name, str) or not name or any(c.isspace() for c in name) or "/" in name:
        raise RegistryError(f"{what} name {name!r} must be a non-empty string without spaces or '/'")


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
        then the third-party plugins' architectures and every plugin's weights. A plugin entry whose
        name (or alias) is already taken is skipped with a warning naming both; the rest of that
        plugin stays. Conflicts between registry files are errors (they are the user's own data).
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
        file_names = {name: spec for spec, _ in file_weights for name in (spec.id, *spec.aliases)}
        registry = cls()
        for arch in sorted((a for a in archs.values() if a.plugin not in failed), key=lambda a: a.plugin not in builtin):
            taken = file_names.get(arch.name) if arch.plugin not in builtin else None
            if taken is not None:
                what = "the weights" if taken.id == arch.name else f"an alias of the weights {taken.id!r}"
                pm.skip(arch.plugin, f"architecture {arch.name!r}: {arch.name!r} is already {what} ({taken.plugin}); skipped")
            else:
                registry.add_arch(arch)
        plugin_weights = [(w, f"weights {w.id!r} ({w.plugin})") for w in weights.values() if w.plugin not in failed]
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
        task: str | None = None,
        pretrained: bool | None = None,
    ) -> list[str]:
        """Names matching any fnmatch pattern: architectures (pretrained=False), weight ids
        (pretrained=True), or both (None), filtered by family and task."""
        rows: list[tuple[str, ArchSpec, tuple[str, ...]]] = []
        if pretrained is not True:
            rows += [(a.name, a, (a.name,)) for a in self.archs.values()]
        if pretrained is not False:
            rows += [(w.id, self.archs[w.arch], (w.id, *w.aliases)) for w in self.weights.values()]
        out = []
        for name, arch, matchable in rows:
            if family is not None and arch.family != family:
                continue
            if task is not None and task not in arch.tasks:
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
