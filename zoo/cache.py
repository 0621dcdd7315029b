"""zoo's own cache: converted weight files and the verification record of every file zoo loads.

A record says which sha256 and size a file had when it was last hashed, and its file status
(mtime, ctime, inode) at that moment. A load compares size and status only; any change means a
full re-hash before the file is used. ctime matters: `touch -r` can restore an edited file's
mtime, nothing but the kernel sets its ctime. A record that failed a verification is marked bad
and never spares a re-hash again. No torch here: `zoo cache ls` stays light.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Iterator

from zoo.errors import WeightsIntegrityError
from zoo.fsio import loads_json, read_json_object, write_text, zoo_home

_CHUNK = 1 << 22


def weights_dir(weight_id: str) -> Path:
    """Where zoo keeps the files it converted for one weight id."""
    return zoo_home() / "weights" / _safe(weight_id)


@dataclass
class Record:
    """What zoo knows about one verified file."""

    model: str
    source: str
    path: str
    sha256: str
    size: int
    mtime_ns: int
    inode: int
    verified_at: str
    owned: bool = False  # a file zoo wrote or fetched, deleted with its record (see `deletable`)
    ctime_ns: int = 0
    source_sha256: str | None = None  # a converted file: the sha256 of the file it was converted from
    bad: bool = False  # it failed a verification: re-hashed before any use until it passes

    @property
    def key(self) -> str:
        return record_key(self.model, self.source)


def sha256_file(path: str | Path) -> str:
    """The sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def record_key(model: str, source: str) -> str:
    """A file name for the record of (model, source), readable and collision-free."""
    digest = hashlib.sha256("\0".join((model, source)).encode()).hexdigest()[:16]
    return f"{_safe(model)[:80]}-{digest}"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def _records_dir() -> Path:
    return zoo_home() / "records"


def write_record(
    model: str, source: str, path: str | Path, sha256: str, *, owned: bool = False, source_sha256: str | None = None
) -> Record:
    """Record `path` as verified with `sha256` now (its size and status taken from the file)."""
    path = Path(path).resolve()
    st = path.stat()
    record = Record(
        model=model,
        source=source,
        path=str(path),
        sha256=sha256,
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        inode=st.st_ino,
        verified_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        owned=owned,
        ctime_ns=st.st_ctime_ns,
        source_sha256=source_sha256,
    )
    _save(record)
    return record


def mark_bad(record: Record) -> Record:
    """Note that `record`'s file failed a verification: no load trusts its status again until it passes."""
    bad = replace(record, bad=True)
    _save(bad)
    return bad


def _save(record: Record) -> None:
    write_text(_records_dir() / f"{record.key}.json", json.dumps(asdict(record), indent=2))


def read_record(model: str, source: str) -> Record | None:
    """The record of (model, source), or None when there is none or its file is gone."""
    return _read(_records_dir() / f"{record_key(model, source)}.json")


def _read(path: Path) -> Record | None:
    try:
        record = Record(**loads_json(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None
    return record if Path(record.path).exists() else None


def records() -> Iterator[Record]:
    """Every record whose file still exists, sorted by model."""
    folder = _records_dir()
    found = [r for p in sorted(folder.glob("*.json")) if (r := _read(p)) is not None] if folder.is_dir() else []
    yield from sorted(found, key=lambda r: (r.model, r.source))


def check_record(record: Record, remedy: str) -> Record:
    """Use a recorded file: size and status (mtime, ctime, inode) must match, otherwise it is
    re-hashed first; a record marked bad is always re-hashed.

    Raises:
        WeightsIntegrityError: the file changed size or its bytes no longer hash to the record
            (the record is then marked bad).
    """
    st = os.stat(record.path)
    if st.st_size != record.size:
        mark_bad(record)
        raise WeightsIntegrityError(
            f"{record.path} ({record.model}) is {st.st_size} bytes, {record.size} were verified; the file was not loaded", remedy
        )
    if not record.bad and (st.st_mtime_ns, st.st_ctime_ns, st.st_ino) == (record.mtime_ns, record.ctime_ns, record.inode):
        return record
    try:
        verify_hash(record.path, record.sha256, remedy, model=record.model)
    except WeightsIntegrityError:
        mark_bad(record)
        raise
    return write_record(
        record.model, record.source, record.path, record.sha256, owned=record.owned, source_sha256=record.source_sha256
    )


def verify_hash(path: str | Path, expected: str, remedy: str, *, model: str = "") -> None:
    """Hash `path` and compare with `expected`.

    Raises:
        WeightsIntegrityError: naming the file, the expected and the actual hash, and `remedy`.
    """
    actual = sha256_file(path)
    if actual != expected:
        what = f" ({model})" if model else ""
        raise WeightsIntegrityError(
            f"{path}{what} has sha256 {actual}, expected {expected}; the file was not loaded", remedy
        )


def remove(record: Record) -> bool:
    """Forget a record, and delete its file when zoo wrote or fetched it; whether the file was deleted.

    A record is data anyone with write access to ZOO_HOME can forge: its file is deleted only when
    it lies where zoo writes (`deletable`), whatever the record says.
    """
    deleted = record.owned and deletable(Path(record.path))
    if deleted:
        Path(record.path).unlink(missing_ok=True)
    (_records_dir() / f"{record.key}.json").unlink(missing_ok=True)
    return deleted


def deletable(path: Path) -> bool:
    """Whether `path` is a file zoo converted into ZOO_HOME, or a blob in the Hugging Face cache it
    downloads into (deleting a blob only makes the Hub client fetch it again)."""
    resolved = path.resolve()
    if resolved.is_relative_to((zoo_home() / "weights").resolve()):
        return True
    hub = Path(hub_cache_dir()).resolve()
    return resolved.is_relative_to(hub) and resolved.parent.name == "blobs" and resolved.parent.parent.parent == hub


def hub_cache_dir() -> str:
    """The Hugging Face cache folder that HF_HUB_CACHE / HF_HOME name now."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.path.expanduser(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return os.path.join(os.path.expanduser(home), "hub")


# What zoo computes from weights and can compute again: ONNX exports (a backbone for fine-tuning's
# feature pass, a whole model for `zoo predict --runtime`) and a data set's features under one model.
# Listed by `zoo cache ls`, removed by `zoo cache rm`. Their metadata is read as data only (JSON, a
# safetensors header), never imported or unpickled, and only the files zoo writes there are deleted.
EXPORTS, FEATURES = "onnx export", "features"
_KEY = re.compile(r"[0-9a-f]{64}")
_EXPORT_FILES = ("backbone.onnx", "backbone.onnx.json", "runtime.json")
_METADATA_MAX = 1 << 20  # a sidecar or safetensors header larger than this is not zoo's


@dataclass(frozen=True)
class Derived:
    """One entry computed from a model's weights: an export's folder, or a features file."""

    kind: str  # EXPORTS or FEATURES
    model: str  # the model it came from, as its own metadata says ("?" when that is unreadable)
    path: Path  # ZOO_HOME/backbones/KEY or ZOO_HOME/features/KEY.safetensors
    files: tuple[Path, ...]  # the regular files zoo wrote there: what removing it deletes
    size: int


def derived() -> Iterator[Derived]:
    """Every export and features file in ZOO_HOME, in name order; entries zoo did not name are skipped."""
    exports = zoo_home() / "backbones"
    for folder in _keyed(exports):
        if folder.is_symlink() or not folder.is_dir():
            continue
        sidecar = read_json_object(folder / "backbone.onnx.json", _METADATA_MAX) or {}
        names = [*_EXPORT_FILES, *_data_files(sidecar)]
        files = tuple(folder / name for name in names if _regular(folder / name))
        if files:
            yield Derived(EXPORTS, _model_name(sidecar), folder, files, sum(f.stat().st_size for f in files))
    for path in _keyed(zoo_home() / "features", ".safetensors"):
        if _regular(path):
            yield Derived(FEATURES, _model_name(_safetensors_metadata(path)), path, (path,), path.stat().st_size)


def remove_derived(entry: Derived) -> None:
    """Delete the files zoo wrote for `entry` (never through a link), then its folder when that is empty."""
    for file in entry.files:
        if _regular(file):
            file.unlink(missing_ok=True)
    if entry.kind == EXPORTS:
        try:
            entry.path.rmdir()
        except OSError:  # something zoo did not write is still in it: left in place
            pass


def _keyed(folder: Path, suffix: str = "") -> list[Path]:
    """The entries of `folder` named by a cache key (64 hex digits, then `suffix`)."""
    if not folder.is_dir() or folder.is_symlink():
        return []
    return sorted(p for p in folder.iterdir() if p.name.endswith(suffix) and _KEY.fullmatch(p.name[: len(p.name) - len(suffix)]))


def _regular(path: Path) -> bool:
    return path.is_file() and not path.is_symlink()


def _safetensors_metadata(path: Path) -> dict:
    """The `__metadata__` of a safetensors file's JSON header (nothing else of the file is read)."""
    try:
        with open(path, "rb") as f:
            length = int.from_bytes(f.read(8), "little")
            if not 0 < length <= _METADATA_MAX:
                return {}
            header = loads_json(f.read(length).decode("utf-8"))
    except (OSError, ValueError):
        return {}
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return meta if isinstance(meta, dict) else {}


def _model_name(metadata: dict) -> str:
    name = metadata.get("model")
    return name if isinstance(name, str) and 0 < len(name) <= 300 and name.isprintable() else "?"


def _data_files(sidecar: dict) -> list[str]:
    """The external-data files an export's sidecar names, plain names only (no folder, no '..')."""
    exporter = sidecar.get("exporter")
    names = exporter.get("data_files") if isinstance(exporter, dict) else None
    if not isinstance(names, list):
        return []
    return [n for n in names if isinstance(n, str) and n not in ("", ".", "..") and "/" not in n and "\\" not in n
            and n not in _EXPORT_FILES]
