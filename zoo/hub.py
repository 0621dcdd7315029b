"""All traffic with the Hugging Face Hub: downloads, revisions, offline detection, the cache folder.

HF_ENDPOINT, HF_HOME / HF_HUB_CACHE, HF_HUB_OFFLINE and HF_TOKEN are read when a file is fetched,
not when a module is imported. Offline is passed to `huggingface_hub` per call
(``local_files_only``): the process-wide ``huggingface_hub.constants`` are never changed.
This module is also the built-in plugin that resolves ``hf://org/repo[@revision]``.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from zoo.cache import hub_cache_dir
from zoo.errors import ArgumentError, WeightsUnavailableError
from zoo.hookspecs import hookimpl
from zoo.registry import ModelDirectory

HF_PREFIX = "hf://"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_TRUE = ("1", "on", "yes", "true")
# Short enough that an unreachable Hub fails well within 10 s; HF_HUB_ETAG_TIMEOUT overrides it.
_ETAG_TIMEOUT_S = 4.0


class SourceUnavailable(Exception):
    """One source could not provide the file; the message says why (collected into the final error)."""


def hub_offline() -> bool:
    """HF_HUB_OFFLINE, read now (huggingface_hub reads it once, at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def hub_download(repo: str, filename: str, revision: str | None = None) -> Path:
    """`hf_hub_download` with HF_ENDPOINT, HF_HOME, HF_HUB_OFFLINE and HF_TOKEN as they are now.

    Raises:
        SourceUnavailable: offline and not cached, not on the Hub, or the Hub cannot be reached.
    """
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{repo}@{revision or 'main'}/{filename}"
    offline = hub_offline()
    if not offline and not reachable(hub_endpoint()):
        try:  # a file already in the Hugging Face cache still serves
            return Path(hf_hub_download(repo, filename, revision=revision, cache_dir=hub_cache_dir(), local_files_only=True))
        except LocalEntryNotFoundError:
            raise SourceUnavailable(f"the Hub at {hub_endpoint()} cannot be reached, and it is not cached") from None
    try:
        path = hf_hub_download(
            repo,
            filename,
            revision=revision,
            cache_dir=hub_cache_dir(),
            endpoint=os.environ.get("HF_ENDPOINT") or None,
            token=os.environ.get("HF_TOKEN") or None,
            local_files_only=offline,
            etag_timeout=float(os.environ.get("HF_HUB_ETAG_TIMEOUT", _ETAG_TIMEOUT_S)),
            library_name="zoo",
        )
    except (LocalEntryNotFoundError, OfflineModeIsEnabled):
        if offline:
            raise SourceUnavailable("not in the Hugging Face cache, and HF_HUB_OFFLINE is set") from None
        if constants.HF_HUB_OFFLINE:  # read by huggingface_hub at its import: zoo leaves it as it is
            raise SourceUnavailable(
                "not in the Hugging Face cache, and huggingface_hub was imported with HF_HUB_OFFLINE set"
            ) from None
        raise SourceUnavailable(f"the Hub at {hub_endpoint()} cannot be reached, and it is not cached") from None
    except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError):
        # A mirror answers 401 for a missing file where the Hub answers 404: both mean "not found".
        raise SourceUnavailable(f"{where} was not found on {hub_endpoint()} (or needs HF_TOKEN)") from None
    except (OSError, ValueError) as exc:
        raise SourceUnavailable(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    return Path(path)


def hub_endpoint() -> str:
    """HF_ENDPOINT as it is now, else the Hugging Face Hub."""
    return os.environ.get("HF_ENDPOINT") or "https://huggingface.co"


def reachable(endpoint: str) -> bool:
    """Whether a TCP connection to the endpoint opens within the timeout.

    huggingface_hub retries an unreachable Hub for about 23 s; one probe keeps the offline error
    fast. Behind a proxy the probe cannot tell, so it answers yes and lets the client decide.
    """
    import socket
    from urllib.parse import urlsplit

    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY")):
        return True
    url = urlsplit(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname or "", port), timeout=_ETAG_TIMEOUT_S).close()
    except OSError:
        return False
    return True


def hub_etag_sha256(path: Path) -> str | None:
    """The sha256 the Hub gave a cached file: its blob is named by the ETag, the sha256 for LFS files."""
    name = Path(path).resolve().name
    return name if _SHA256.match(name) else None


def fetch_hub_dir(reference: str) -> Path:
    """Download ``hf://org/repo[@revision]`` (config.json and every file it lists) into the Hugging
    Face cache, or find it there offline (what `zoo pull hf://...` does).

    Returns:
        The snapshot folder: the model directory.

    Raises:
        ArgumentError: the reference is not ``hf://org/repo[@revision]``.
        WeightsUnavailableError: the repo or a file cannot be fetched and is not cached.
    """
    from zoo.modeldir import CONFIG, file_name, read_config

    repo, _, revision = reference[len(HF_PREFIX) :].partition("@")
    if repo.count("/") != 1:
        raise ArgumentError(f"{reference!r} is not hf://org/repo[@revision]")
    try:
        config_path = hub_download(repo, CONFIG, revision or None)
        config = read_config(config_path.parent, config_path.parent.parent.parent)
        for name in [file_name(e) for e in config["files"].values()]:
            hub_download(repo, name, revision or None)
    except SourceUnavailable as exc:
        raise WeightsUnavailableError(
            f"model directory {reference} cannot be fetched: {exc}",
            f"check the name and revision, or run `zoo pull {reference}` on a connected machine",
        ) from None
    return config_path.parent


def resolve_hub_dir(reference: str) -> ModelDirectory:
    """The resolver of ``hf://org/repo[@revision]``: the fetched snapshot, whose symlinks point into
    the repo's blobs (that repo folder is the directory's trusted root)."""
    folder = fetch_hub_dir(reference)
    return ModelDirectory(folder, root=folder.parent.parent)


@hookimpl
def register_resolvers(register):
    register(HF_PREFIX, resolve_hub_dir)
