"""zoo's own cache: converted weight files and the verification record of every file zoo loads.

A record says which sha256 and size a file had when it was last hashed, and its file status
(mtime, inode) at that moment. A load compares size and status only; any change means a full
re-hash before the file is used. No torch here: `zoo cache ls` stays light.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

from zoo.errors import WeightsIntegrityError

_CHUNK = 1 << 22


def zoo_home() -> Path:
    """ZOO_HOME, or the user cache dir (``~/.cache/zoo`` on Linux)."""
    env = os.environ.get("ZOO_HOME")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("zoo"))


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
    owned: bool = False  # a file zoo wrote into ZOO_HOME, deleted with its record

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


def write_record(model: str, source: str, path: str | Path, sha256: str, *, owned: bool = False) -> Record:
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
    )
    atomic_write_text(_records_dir() / f"{record.key}.json", json.dumps(asdict(record), indent=2))
    return record


def read_record(model: str, source: str) -> Record | None:
    """The record of (model, source), or None when there is none or its file is gone."""
    return _read(_records_dir() / f"{record_key(model, source)}.json")


def _read(path: Path) -> Record | None:
    try:
        record = Record(**json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None
    return record if Path(record.path).exists() else None


def records() -> Iterator[Record]:
    """Every record whose file still exists, sorted by model."""
    folder = _records_dir()
    found = [r for p in sorted(folder.glob("*.json")) if (r := _read(p)) is not None] if folder.is_dir() else []
    yield from sorted(found, key=lambda r: (r.model, r.source))


def check_record(record: Record, remedy: str) -> Record:
    """Use a recorded file: size and status must match, otherwise it is re-hashed first.

    Raises:
        WeightsIntegrityError: the file changed size or its bytes no longer hash to the record.
    """
    st = os.stat(record.path)
    if st.st_size != record.size:
        raise WeightsIntegrityError(
            f"{record.path} ({record.model}) is {st.st_size} bytes, {record.size} were verified", remedy
        )
    if (st.st_mtime_ns, st.st_ino) == (record.mtime_ns, record.inode):
        return record
    verify_hash(record.path, record.sha256, remedy, model=record.model)
    return write_record(record.model, record.source, record.path, record.sha256, owned=record.owned)


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


def remove(record: Record) -> None:
    """Forget a record, and delete its file when zoo wrote it."""
    if record.owned:
        Path(record.path).unlink(missing_ok=True)
    (_records_dir() / f"{record.key}.json").unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    """Write a text file through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
