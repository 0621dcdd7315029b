"""Writing files and folders so that a crash never leaves a half-written one or loses an old one.

Every file zoo writes goes through a temporary name beside it (``.<name>.<pid>-<hex>.tmp``) and
one rename; every folder is built in a staging folder beside its target and renamed into place.
Both get the permissions of a file the user creates (the umask applied), not mkstemp's 0600.
Replacing a folder renames the old one to ``.<name>.previous`` first: a crash before the old one is
deleted leaves it there, and `recover_swap` (run before the next write, and by `zoo cache clean`)
puts it back or finishes the job. Staging folders and swaps are noted in a journal in
ZOO_HOME/inflight with the writer's pid, so that `zoo cache clean` finds what a killed process
left. Writers of one output or cache entry are serialised by a lock file in ZOO_HOME/locks
(`filelock`). No torch here.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from zoo.errors import BusyError, ZooError

_TEMP = re.compile(r"^\..+\.(\d+)-[0-9a-f]{8}\.tmp$")
_LEGACY_TEMP = re.compile(r"^\..+\.tmp$")
_LEGACY_AGE_S = 3600  # temporary files without a pid in their name: orphans once this old


def zoo_home() -> Path:
    """ZOO_HOME, or the user cache dir (``~/.cache/zoo`` on Linux)."""
    env = os.environ.get("ZOO_HOME")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("zoo"))


# -- permissions ---------------------------------------------------------------------------------
def umask() -> int:
    """The process umask, read without changing it where /proc allows."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode of a file the user creates: 0644 under umask 022."""
    return 0o666 & ~umask()


def dir_mode() -> int:
    """The mode of a folder the user creates: 0755 under umask 022."""
    return 0o777 & ~umask()


# -- files ---------------------------------------------------------------------------------------
def temp_name(path: Path) -> Path:
    """A temporary name beside `path` that says which process writes it."""
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path beside `path` to write into; renamed over `path` when the block succeeds.

    Args:
        path: the file to create or replace.

    Yields:
        The temporary path (not created: the writer creates it). On error it is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    try:
        yield tmp
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write a file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write a UTF-8 text file atomically."""
    write_bytes(path, text.encode("utf-8"))


def loads_json(data: str | bytes) -> Any:
    """`json.loads` for a file zoo did not write itself. A document nested deeper than Python's
    recursion limit (``[[[[...``, a few bytes each level) makes json raise RecursionError, which no
    reader expects: it is a `json.JSONDecodeError` here, like any other text that is not JSON."""
    try:
        return json.loads(data)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply to read", "", 0) from None


def read_json_object(path: Path, limit: int) -> dict | None:
    """The JSON object in the regular file `path` (not a link), or None: missing, larger than `limit`
    bytes, unreadable, not JSON (`loads_json`) or not an object."""
    try:
        if not path.is_file() or path.is_symlink() or path.stat().st_size > limit:
            return None
        found = loads_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def move_into_place(finished: Path, path: Path) -> None:
    """Rename a finished file or folder (written in a staging folder on the same file system) to
    `path`, replacing a file there, with the permissions of a file or folder the user creates."""
    os.chmod(finished, dir_mode() if finished.is_dir() else file_mode())
    os.replace(finished, path)


# -- folders -------------------------------------------------------------------------------------
@contextlib.contextmanager
def staging_dir(target: Path, prefix: str | None = None) -> Iterator[Path]:
    """A fresh folder beside `target` (same file system, so a rename publishes it), journaled.

    Args:
        target: what the folder's content is for.
        prefix: the folder's name prefix (default ``.<target name>.``); the pid follows it.

    Yields:
        The folder; it is removed on the way out, unless it was renamed away (published).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    name = prefix or f".{target.name}."
    path = Path(tempfile.mkdtemp(dir=target.parent, prefix=f"{name}{os.getpid()}-", suffix=".tmp"))
    os.chmod(path, dir_mode())
    with _journaled({"kind": "staging", "path": str(path)}):
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)


def previous_path(target: Path) -> Path:
    """Where a folder being replaced waits until its replacement is in place."""
    return target.with_name(f".{target.name}.previous")


def publish_dir(staging: Path, target: Path, *, replace: bool = False) -> None:
    """Rename the finished folder `staging` to `target`; with `replace`, swap an existing one out.

    The old folder goes to ``.<name>.previous``, the new one in, then the old one is deleted: at
    every moment either `target` or the ``.previous`` folder holds a whole model.

    Raises:
        ZooError: `target` exists and `replace` is False.
    """
    recover_swap(target)
    if not (target.exists() or target.is_symlink()):
        os.rename(staging, target)
        return
    if not replace:
        raise ZooError(f"{target} already exists", "choose another path, or ask to overwrite it")
    previous = previous_path(target)
    if previous.exists() or previous.is_symlink():
        raise ZooError(
            f"{target} cannot be replaced: {previous.name} beside it was not left by zoo, and zoo parks the old folder there",
            f"move {previous} away (nothing was changed)",
        )
    with _journaled({"kind": "swap", "path": str(previous), "target": str(target)}):
        os.rename(target, previous)
        os.rename(staging, target)
        shutil.rmtree(previous)


def recover_swap(target: Path) -> str | None:
    """Finish a replacement of `target` that a crash interrupted.

    Only a ``.previous`` folder that the journal says a dead zoo process left is touched: a folder
    that merely has that name is the user's, and stays where it is.

    Returns:
        "restored" when the old folder was put back (the new one never arrived), "finished" when
        the new one had arrived and the old one was deleted, None when there was nothing to do.
    """
    previous = previous_path(target)
    if not previous.is_dir() or previous.is_symlink():
        return None
    notes = [note for note, entry in _dead_notes() if entry.get("kind") == "swap" and Path(entry["path"]) == previous]
    if not notes:
        return None
    if target.exists() or target.is_symlink():
        shutil.rmtree(previous)
        done = "finished"
    else:
        os.rename(previous, target)
        warnings.warn(f"{target} was restored from {previous.name}, left by a replacement that was interrupted", stacklevel=2)
        done = "restored"
    for note in notes:
        note.unlink(missing_ok=True)
    return done


# -- locks ---------------------------------------------------------------------------------------
def lock_path(target: Path) -> Path:
    """The lock file of an output or cache entry: in ZOO_HOME/locks (as huggingface_hub keeps its
    locks in its cache), named by the target's absolute path, so that no user folder gets one."""
    where = str(target.parent.resolve() / target.name)
    return zoo_home() / "locks" / f"{hashlib.sha256(where.encode()).hexdigest()[:32]}.lock"


@contextlib.contextmanager
def locked(lock: Path, what: str, *, wait: float = 0.0) -> Iterator[None]:
    """Hold the lock file `lock` for the block: one writer of `what` at a time.

    Args:
        lock: the lock file (`lock_path`; created when missing, left in place as filelock expects).
        what: what the lock protects, for the error message.
        wait: seconds to wait for another holder (0: fail at once).

    Raises:
        BusyError: another process holds the lock (after `wait`).
    """
    from filelock import FileLock, Timeout

    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        handle = FileLock(str(lock), timeout=wait, mode=file_mode())
        handle.acquire()
    except Timeout:
        raise BusyError(
            f"{what} is being written by another zoo process (lock file {lock})",
            "wait for that run to finish, or choose another output",
        ) from None
    try:
        yield
    finally:
        handle.release()


# -- the journal of work in flight ---------------------------------------------------------------
def journal_dir() -> Path:
    return zoo_home() / "inflight"


@contextlib.contextmanager
def _journaled(entry: dict[str, str]) -> Iterator[None]:
    """Note `entry` (with this process's pid and host) in the journal for the block's duration.

    Best effort: a read-only ZOO_HOME does not stop an export or a fine-tune from writing elsewhere.
    """
    note = journal_dir() / f"{os.getpid()}-{secrets.token_hex(4)}.json"
    try:
        write_text(note, json.dumps({**entry, "pid": os.getpid(), "host": socket.gethostname()}))
    except OSError:
        note = None
    try:
        yield
    finally:
        if note is not None:
            note.unlink(missing_ok=True)


@dataclass(frozen=True)
class Orphan:
    """Something a killed zoo process left: a temporary file, a staging folder, a half-done swap."""

    path: Path
    kind: str
    size: int
    note: Path | None = None  # its journal entry
    target: Path | None = None  # for a swap: the folder being replaced


def orphans() -> list[Orphan]:
    """Temporary files in ZOO_HOME and journaled folders whose writing process is gone."""
    home = zoo_home()
    found: list[Orphan] = []
    if home.is_dir():
        for path in sorted(home.rglob(".*.tmp")):
            if path.is_file() and not path.is_symlink() and _abandoned(path):
                found.append(Orphan(path, "temporary file", path.stat().st_size))
    for note, entry in _dead_notes():
        pid, path = int(entry["pid"]), Path(entry["path"])
        if entry.get("kind") == "swap":
            target = Path(str(entry.get("target")))
            if path != previous_path(target):  # a forged note must not name arbitrary folders
                continue
            found.append(Orphan(path, "interrupted swap", _size(path), note, target))
        elif _is_staging(path, pid):
            found.append(Orphan(path, "staging folder", _size(path), note))
        else:
            found.append(Orphan(path, "journal entry", 0, note))  # its folder is gone: only the note is left
    return found


def _dead_notes() -> list[tuple[Path, dict]]:
    """The journal's notes (file, entry) written on this host by processes that are gone."""
    folder = journal_dir()
    found = []
    for note in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            entry = loads_json(note.read_text(encoding="utf-8"))
            pid, host = int(entry["pid"]), str(entry["host"])
            Path(entry["path"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if host == socket.gethostname() and not _alive(pid):
            found.append((note, entry))
    return found


def clean(orphan: Orphan) -> str:
    """Remove an orphan (a swap is finished or undone instead, under its output's lock); what was done."""
    done = "removed"
    if orphan.kind == "interrupted swap" and orphan.target is not None:
        with locked(lock_path(orphan.target), str(orphan.target)):
            done = recover_swap(orphan.target) or "nothing left"
    elif orphan.kind == "staging folder":
        shutil.rmtree(orphan.path, ignore_errors=True)
    elif orphan.kind == "temporary file":
        orphan.path.unlink(missing_ok=True)
    if orphan.note is not None:
        orphan.note.unlink(missing_ok=True)
    return done


def _abandoned(path: Path) -> bool:
    match = _TEMP.match(path.name)
    if match:
        return not _alive(int(match.group(1)))
    return bool(_LEGACY_TEMP.match(path.name)) and time.time() - path.stat().st_mtime > _LEGACY_AGE_S


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _is_staging(path: Path, pid: int) -> bool:
    """Only a folder named the way `staging_dir` named it for that pid is deleted on the journal's word."""
    named = re.search(rf"[.-]{pid}-[a-z0-9_]{{8}}\.tmp$", path.name) and path.name.startswith(".")
    return bool(named) and path.is_dir() and not path.is_symlink()


def _size(path: Path) -> int:
    if not path.exists():
        return 0
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())
