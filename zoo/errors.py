"""Typed errors. The library raises these; the CLI turns each into one line plus its remedy."""
from __future__ import annotations

import contextlib
import errno
import os
import shutil


class ZooError(Exception):
    """Base of every error zoo raises on purpose; `remedy` says what the user can do about it."""

    def __init__(self, message: str, remedy: str | None = None):
        super().__init__(message)
        self.message = message
        self.remedy = remedy

    def __str__(self) -> str:
        return f"{self.message} ({self.remedy})" if self.remedy else self.message


class UnknownModelError(ZooError, KeyError):
    """A name that is neither an architecture, a weight id, an alias nor a model directory."""

    def __init__(self, name: str, suggestions: list[str] | tuple[str, ...] = ()):
        self.name = name
        self.suggestions = list(suggestions)
        hint = f"did you mean {', '.join(repr(s) for s in self.suggestions)}?" if self.suggestions else None
        super().__init__(f"unknown model {name!r}", hint or "run `zoo list` to see every model")

    __str__ = ZooError.__str__


class RegistryError(ZooError):
    """A registry file or a spec that breaks the schema."""


class DuplicateNameError(RegistryError):
    """Two plugins (or files) registered the same name."""


class PluginError(ZooError):
    """A plugin failed to import, its hook raised, or it registered an invalid spec."""


class NoWeightsError(ZooError):
    """`pretrained=True` for an architecture that has no registered weights."""


class WeightsUnavailableError(ZooError):
    """No source of the weights could be reached and nothing is cached."""


class WeightsIntegrityError(ZooError):
    """A weight file whose hash or size is not the one recorded."""


class StrictLoadError(ZooError):
    """A state dict whose keys or shapes do not match the model."""


class ModelDirError(ZooError):
    """A model directory that is missing, malformed, unsafe or of an unknown format version."""


class DataError(ZooError):
    """A data folder or file that cannot be used for training."""


class ExportError(ZooError):
    """An export that could not be produced."""


class ParityError(ExportError):
    """An exported model whose outputs differ from eager PyTorch beyond the tolerance."""


class ArgumentError(ZooError):
    """An architecture or operation argument with a wrong name or value."""


class BusyError(ZooError):
    """Another zoo process is writing the same output or cache entry (its lock file is held)."""


class ConfigError(ZooError):
    """An environment variable zoo reads holds a value it does not accept."""


class HubError(ZooError):
    """The Hub could not be reached, or refused an upload (credentials, permissions, a bad request)."""


class StorageError(ZooError):
    """A file or folder zoo cannot read or write: permissions, a read-only ZOO_HOME, a full disk."""


_DENIED = (errno.EACCES, errno.EPERM, errno.EROFS)
_FULL = (errno.ENOSPC, errno.EDQUOT)


def storage_error(
    exc: OSError,
    *,
    home: str | os.PathLike[str] | None = None,
    path: str | os.PathLike[str] | None = None,
    needed: int | None = None,
) -> StorageError | None:
    """The StorageError that explains an operating-system failure, or None for one zoo cannot explain.

    The one place that turns permission problems and full disks into one line with a remedy; the
    CLI applies it to any OSError that reaches it.

    Args:
        exc: the error (its errno and filename are used).
        home: ZOO_HOME: a permission problem inside it says that ZOO_HOME is not writable.
        path: the file concerned, when `exc` does not name it.
        needed: the bytes a write needed, when known.
    """
    where = exc.filename or path
    if exc.errno in _DENIED:
        problem = "read-only file system" if exc.errno == errno.EROFS else "permission denied"
        if home is not None and where is not None and _inside(where, home):
            return StorageError(
                f"ZOO_HOME ({home}) is not writable: {problem}: {where}",
                "point ZOO_HOME at a folder you can write, or fix its permissions (chown/chmod)",
            )
        return StorageError(
            f"{problem}: {where or 'a file zoo needs'}",
            "fix its permissions (chmod/chown), or use a path you can read and write",
        )
    if exc.errno in _FULL:
        return StorageError(
            f"no space left on the device{f' for {where}' if where else ''}{_space(where, needed)}",
            "free some space there, or write elsewhere (another -o, ZOO_HOME or TMPDIR)",
        )
    return None


def _inside(path: str | os.PathLike[str], folder: str | os.PathLike[str]) -> bool:
    path, folder = os.path.abspath(path), os.path.abspath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _space(path: str | os.PathLike[str] | None, needed: int | None) -> str:
    """' (needs N bytes, M free)' as far as known."""
    free = None
    if path is not None:
        with contextlib.suppress(OSError):
            free = shutil.disk_usage(os.path.dirname(os.path.abspath(path))).free
    parts = ([f"needs {needed:,} bytes"] if needed is not None else []) + ([f"{free:,} free"] if free is not None else [])
    return f" ({', '.join(parts)})" if parts else ""
