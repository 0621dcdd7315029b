"""Publishing a model directory on the Hugging Face Hub: `zoo push DIR org/repo` and `zoo.push`.

The upload half of zoo's Hub traffic (`zoo.hub` downloads). The directory is checked before anything
is sent: config.json must read, and every file it lists must be there, of its recorded size and
sha256. Only those files, config.json and README.md are uploaded, never anything else in the folder.
HF_ENDPOINT, HF_TOKEN (or the token `hf auth login` saved) and HF_HUB_OFFLINE are read per call.
"""
from __future__ import annotations

import glob
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

from zoo.errors import HubError, ModelDirError, WeightsIntegrityError
from zoo.hub import hub_endpoint, hub_offline, reachable


def push(
    folder: str | Path,
    repo_id: str,
    *,
    private: bool | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
    token: str | None = None,
) -> str:
    """Upload a model directory to a Hub repository, creating the repository (and branch) if needed.

    Args:
        folder: a model directory (what `zoo finetune` or `zoo.modeldir.save_model_dir` wrote).
        repo_id: ``"org/name"``; created when it does not exist (an existing one is kept as it is).
        private: create the repository private (True) or public (False); None leaves it to the Hub's
            default for the owner. No effect on a repository that exists.
        revision: the branch to commit to (default ``main``); created from ``main`` if missing.
        commit_message: the commit's summary (default: the architecture, base model and metrics).
        token: a Hub token with write access; by default huggingface_hub's own (HF_TOKEN, or the
            token ``hf auth login`` saved).

    Returns:
        The URL of the commit (``<endpoint>/<org>/<name>/commit/<sha>``).

    Raises:
        ModelDirError: `folder` is not a model directory, or a file config.json lists is missing.
        WeightsIntegrityError: a file's size or sha256 differs from config.json (nothing uploaded).
        ArgumentError: `repo_id` is not ``org/name``.
        HubError: HF_HUB_OFFLINE is set, the Hub cannot be reached, or it refused the upload.
    """
    from zoo.modeldir import read_config

    folder = Path(folder)
    _check_repo_id(repo_id)
    config = read_config(folder)
    names = upload_names(folder, config)
    message = commit_message or default_commit_message(folder, config)
    api = _api(token)
    with _hub_errors(repo_id):
        # Looked up first: create_repo's own fallback for an existing repo (after a 403) parses the URL
        # against the endpoint huggingface_hub was imported with, and fails for any other HF_ENDPOINT.
        if not api.repo_exists(repo_id):
            api.create_repo(repo_id, private=private, exist_ok=True)
        if revision and revision != "main":
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            allow_patterns=[glob.escape(name) for name in names],
            commit_message=message,
            revision=revision,
        )
    return str(info.commit_url)


def upload_names(folder: Path, config: Mapping[str, Any]) -> list[str]:
    """What a push uploads: config.json, every file it lists (each verified), and README.md if present.

    Raises:
        ModelDirError: a listed file is missing or its name leads outside the directory, or the
            card's front matter is not YAML.
        WeightsIntegrityError: a listed file's size or sha256 is not the one config.json records.
    """
    from zoo.modeldir import CARD, CONFIG, inside

    names = [CONFIG, *verify_files(folder, config)]
    card_front_matter(folder)
    if inside(folder, CARD).is_file():
        names.append(CARD)
    return names


def verify_files(folder: Path, config: Mapping[str, Any]) -> list[str]:
    """Check every file config.json lists: inside the directory, present, of its recorded size, and
    hashing to its recorded sha256 (re-hashed now: what is published must be what was saved).

    Returns:
        The files' names.

    Raises:
        ModelDirError: a listed file is missing or its name leads outside the directory.
        WeightsIntegrityError: a file's size or sha256 differs from config.json.
    """
    from zoo.cache import sha256_file
    from zoo.modeldir import CONFIG, damaged_remedy, file_name, inside

    names = []
    for role, entry in config["files"].items():
        name = file_name(entry)
        path = inside(folder, name)
        if not path.is_file():
            raise ModelDirError(f"{folder}: {name} (files.{role} in {CONFIG}) is missing", damaged_remedy(folder))
        recorded = entry if isinstance(entry, dict) else {}
        size, sha256 = recorded.get("size"), recorded.get("sha256")
        if size is not None and path.stat().st_size != size:
            found = f"is {path.stat().st_size} bytes, {CONFIG} says {size}"
        elif sha256 and (actual := sha256_file(path)) != sha256:
            found = f"has sha256 {actual}, {CONFIG} says {sha256}"
        else:
            names.append(name)
            continue
        raise WeightsIntegrityError(f"{folder / name} {found}; nothing was uploaded", damaged_remedy(folder))
    return names


def default_commit_message(folder: Path, config: Mapping[str, Any]) -> str:
    """``zoo: <architecture> fine-tuned from <base model> (<metric> <value>, ...)``: the base model is
    the card's ``base_model`` (a Hub repo) or the base weights' id; the metrics are config.json's numbers."""
    base = card_front_matter(folder).get("base_model") or (config.get("base_weights") or {}).get("id")
    if isinstance(base, list):
        base = ", ".join(map(str, base))
    numbers = {k: v for k, v in (config.get("metrics") or {}).items() if isinstance(v, float)}
    message = f"zoo: {config['architecture']}" + (f" fine-tuned from {base}" if base else "")
    if numbers:
        message += " (" + ", ".join(f"{k} {v:.4g}" for k, v in numbers.items()) + ")"
    return message


def card_front_matter(folder: Path) -> dict[str, Any]:
    """The model card's front matter ({} without a card), read before anything is uploaded.

    Raises:
        ModelDirError: README.md's front matter is not YAML (the Hub would refuse the commit).
    """
    import yaml

    from zoo.modeldir import CARD, inside, read_front_matter

    card = inside(folder, CARD)
    try:
        return read_front_matter(card) if card.is_file() else {}
    except yaml.YAMLError as exc:
        problem = str(exc).splitlines()[0]
        raise ModelDirError(
            f"{card}: the front matter is not valid YAML ({problem}); nothing was uploaded",
            "fix the block between the --- lines at the top of README.md, or save the directory again",
        ) from None


def _check_repo_id(repo_id: str) -> None:
    """huggingface_hub's own rules for a model repository id, and the form org/name.

    Raises:
        ArgumentError: naming what is wrong.
    """
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    from zoo.errors import ArgumentError

    org, _, name = repo_id.partition("/")
    problem = None if org and name and "/" not in name else "it is not org/name"
    if problem is None:
        try:
            validate_repo_id(repo_id)
        except HFValidationError as exc:
            problem = str(exc).removesuffix(f": '{repo_id}'.").rstrip(".")
    if problem is not None:
        raise ArgumentError(
            f"{repo_id!r} is not a Hub repository id: {problem}", "give it as org/name, e.g. my-org/lite0-faces"
        )


def _api(token: str | None) -> Any:
    """An HfApi for HF_ENDPOINT as it is now, once the Hub is known to be reachable.

    Raises:
        HubError: HF_HUB_OFFLINE is set (in the environment now, or when huggingface_hub was
            imported), or nothing answers at the endpoint.
    """
    from huggingface_hub import HfApi, constants

    from zoo.version import __version__

    if hub_offline() or constants.HF_HUB_OFFLINE:
        raise HubError(
            "pushing needs the Hub, and HF_HUB_OFFLINE is set: nothing was uploaded",
            "unset HF_HUB_OFFLINE (or set it to 0) on a machine that reaches the Hub",
        )
    if not reachable(hub_endpoint()):
        raise HubError(
            f"the Hub at {hub_endpoint()} cannot be reached: nothing was uploaded",
            "check the network connection, or HF_ENDPOINT if you set it",
        )
    return HfApi(endpoint=hub_endpoint(), token=token, library_name="zoo", library_version=__version__)


@contextmanager
def _hub_errors(repo_id: str) -> Iterator[None]:
    """Turn what huggingface_hub raises during an upload into one HubError with its remedy."""
    import httpx2  # huggingface_hub's HTTP client: its connection errors
    from huggingface_hub.errors import HfHubHTTPError

    try:
        yield
    except HfHubHTTPError as exc:
        if exc.response is None:
            raise
        raise _http_error(repo_id, exc.response.status_code, exc) from None
    except ValueError as exc:  # huggingface_hub's answer to the Hub's 400 on README.md's metadata
        if not str(exc).startswith("Invalid metadata in README.md"):
            raise
        raise HubError(
            f"the Hub at {hub_endpoint()} refused the model card's metadata: nothing was committed ("
            + "; ".join(line.lstrip("- ") for line in str(exc).splitlines()[1:]) + ")",
            "fix the front matter of README.md (https://huggingface.co/docs/hub/model-cards)",
        ) from None
    except httpx2.TransportError as exc:
        raise HubError(
            f"the connection to the Hub at {hub_endpoint()} failed during the push: {exc}",
            "check the network and push again (a commit holds all the files or none)",
        ) from None


def _http_error(repo_id: str, status: int, exc: Exception) -> HubError:
    org = repo_id.split("/")[0]
    if status == 401:
        return HubError(
            f"the Hub at {hub_endpoint()} did not accept the token (401 Unauthorized): nothing was committed",
            "set HF_TOKEN to a valid token with write access, pass --token, or run `hf auth login`",
        )
    if status == 403:
        return HubError(
            f"the token may not write to {repo_id} on {hub_endpoint()} (403 Forbidden): nothing was committed",
            f"use a token with write access to the '{org}' namespace (a fine-grained or read token cannot push), "
            "or push to a namespace you own",
        )
    detail = str(exc).strip().splitlines()
    return HubError(
        f"the Hub at {hub_endpoint()} refused the push to {repo_id} ({status}): {detail[0] if detail else type(exc).__name__}",
        "check the repository id and branch name; the message above is the Hub's",
    )
