"""Typed errors. The library raises these; the CLI turns each into one line plus its remedy."""
from __future__ import annotations


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
