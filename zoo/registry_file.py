"""registry.yaml and the files ZOO_REGISTRY names: reading them and checking them against the schema."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Iterator, Mapping

import yaml

from zoo.errors import RegistryError, ZooError
from zoo.specs import PLAIN_NAME, ArchSpec, Source, WeightSpec

FORMAT_VERSION = 1
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

# field -> (accepted types, required)
WEIGHT_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "id": ((str,), True),
    "arch": ((str,), True),
    "sources": ((list,), True),
    "aliases": ((list,), False),
    "default": ((bool,), False),
    "arch_args": ((dict,), False),
    "num_classes": ((int,), False),
    "labels": ((list,), False),
    "preprocess": ((dict,), False),
    "metrics": ((dict,), False),
    "license": ((str,), False),
    "citation": ((str,), False),
    "origin": ((str,), False),
    "description": ((str,), False),
    "num_params": ((int,), False),
}
SOURCE_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "kind": ((str,), True),
    "repo": ((str,), False),
    "revision": ((str,), False),
    "filename": ((str,), False),
    "dist": ((str,), False),
    "package": ((str,), False),
    "path": ((str,), False),
    "sha256": ((str,), False),
    "size": ((int,), False),
}


def default_registry_path() -> Path:
    """registry.yaml: inside the installed package, or at the top of a source checkout."""
    here = Path(__file__).resolve().parent
    packaged = here / "registry.yaml"
    return packaged if packaged.exists() else here.parent / "registry.yaml"


def registry_files() -> list[Path]:
    """registry.yaml, then the files ZOO_REGISTRY names (an os.pathsep list)."""
    extra = [Path(p) for p in os.environ.get("ZOO_REGISTRY", "").split(os.pathsep) if p.strip()]
    return [default_registry_path(), *extra]


def load_registry_file(path: str | Path, archs: Mapping[str, ArchSpec] | None = None) -> Iterator[WeightSpec]:
    """Yield the WeightSpecs of one registry file, validated; RegistryError names file, entry and field.

    With `archs`, an entry naming an architecture not in it is an error too.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RegistryError(f"registry file {path} cannot be read: {exc.strerror}", "fix or unset ZOO_REGISTRY") from None
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        data = yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        raise RegistryError(f"{path}: not valid YAML: {exc}".replace("\n", " ")) from None
    if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
        raise RegistryError(f"{path}: expected a mapping with 'version: {FORMAT_VERSION}' and 'weights:'")
    entries = data.get("weights") or []
    if not isinstance(entries, list):
        raise RegistryError(f"{path}: 'weights' must be a list")
    for index, entry in enumerate(entries):
        where = f"{path}: entry {index}"
        if isinstance(entry, dict) and isinstance(entry.get("id"), str):
            where += f" ({entry['id']})"
        yield _weight_spec(entry, where, archs)


def _weight_spec(entry: Any, where: str, archs: Mapping[str, ArchSpec] | None) -> WeightSpec:
    fields = _check_fields(entry, WEIGHT_FIELDS, where)
    if archs is not None and fields["arch"] not in archs:
        raise RegistryError(f"{where}: field 'arch': unknown architecture {fields['arch']!r}")
    _check_named_choices(fields, where)
    sources = []
    for i, raw in enumerate(fields["sources"]):
        if isinstance(raw, dict) and "converter" in raw:
            raise RegistryError(
                f"{where}: sources[{i}]: field 'converter' is not allowed in a registry file: a converter is code",
                "register these weights from a plugin (register_weights), whose sources may name a converter",
            )
        source = _check_fields(raw, SOURCE_FIELDS, f"{where}: sources[{i}]")
        if source.get("sha256") is not None and not _SHA256.match(source["sha256"]):
            raise RegistryError(f"{where}: sources[{i}]: field 'sha256': not 64 lowercase hex digits")
        _check_package_file(source, f"{where}: sources[{i}]")
        sources.append(_build(Source, source, f"{where}: sources[{i}]"))
    fields["sources"] = tuple(sources)
    fields["aliases"] = tuple(fields.get("aliases", ()))
    if isinstance(fields.get("labels"), list):
        fields["labels"] = tuple(str(label) for label in fields["labels"])
    return _build(WeightSpec, {**fields, "plugin": "registry.yaml"}, where)


def _check_named_choices(fields: Mapping[str, Any], where: str) -> None:
    """Where data chooses behaviour (a transform, a vocabulary) it gives a plain name that a plugin
    registered; a "module:function" or a path is refused here, before anything could import it."""
    for section, key in (("arch_args", "vocab"), ("preprocess", "vocab"), ("preprocess", "transform")):
        value = (fields.get(section) or {}).get(key)
        if value is not None and not (isinstance(value, str) and PLAIN_NAME.match(value)):
            raise RegistryError(
                f"{where}: field '{section}.{key}': {value!r} is not a plain name; data names a "
                f"{'transform' if key == 'transform' else 'vocabulary'} that a plugin registered, never a module or a path",
                "use a registered name (`zoo plugins` lists them)",
            )


def _check_package_file(source: Mapping[str, Any], where: str) -> None:
    """A `bundled` source names a top-level package (found, never imported) and a file inside it."""
    package = source.get("package")
    if package is not None and not package.isidentifier():
        raise RegistryError(f"{where}: field 'package': {package!r} is not a top-level package name")
    path = source.get("path")
    if path is not None and (Path(path).is_absolute() or ".." in Path(path).parts):
        raise RegistryError(f"{where}: field 'path': {path!r} must be a relative path inside the package")


def _check_fields(entry: Any, schema: Mapping[str, tuple[tuple[type, ...], bool]], where: str) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise RegistryError(f"{where}: expected a mapping, got {type(entry).__name__}")
    for name in entry:
        if name not in schema:
            raise RegistryError(f"{where}: field {name!r} is not allowed (allowed: {', '.join(schema)})")
    for name, (types, required) in schema.items():
        if name not in entry or entry[name] is None:
            if required:
                raise RegistryError(f"{where}: field {name!r} is required")
            continue
        value = entry[name]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            expected = " or ".join(t.__name__ for t in types)
            raise RegistryError(f"{where}: field {name!r} must be {expected}, got {type(value).__name__}")
    return {k: v for k, v in entry.items() if v is not None}


def _build(cls: type, fields: dict[str, Any], where: str) -> Any:
    try:
        return cls(**fields)
    except ZooError as exc:
        raise RegistryError(f"{where}: {exc.message}") from None
