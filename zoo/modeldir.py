"""The model directory: zoo's one on-disk format, loadable from a path or from the Hub as is.

    config.json         format version, architecture and arguments, labels, preprocessing,
                        base weights (id + sha256), training summary, files (+ sha256)
    model.safetensors   the weights
    README.md           a model card with YAML front matter (library_name, license, base_model, ...)
    vocab.json          text models only

Reading a directory never follows a name or a symlink out of it, and refuses unknown format
versions. Nothing here imports torch at module level: `zoo info DIR` stays light.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

from zoo.errors import ModelDirError
from zoo.hookspecs import hookimpl
from zoo.registry import ModelDirectory

FORMAT_VERSION = 1
CONFIG = "config.json"
WEIGHTS = "model.safetensors"
CARD = "README.md"
VOCAB = "vocab.json"


# -- names ---------------------------------------------------------------------------------------
def is_model_dir(name: str | os.PathLike[str]) -> bool:
    """Whether `name` is a folder holding a config.json."""
    return (Path(name) / CONFIG).is_file()


def resolve_path(name: str) -> ModelDirectory:
    """The resolver of paths (the empty prefix): a folder on disk, read as a model directory.

    Raises:
        ModelDirError: nothing exists at `name`.
    """
    if not Path(name).exists():
        raise ModelDirError(
            f"{name} does not exist: there is no such folder, and no model of that name",
            "check the path, or run `zoo list` for model names",
        )
    return ModelDirectory(Path(name))


@hookimpl
def register_resolvers(register):
    register("", resolve_path)


# -- reading -------------------------------------------------------------------------------------
def inside(folder: Path, name: str, root: Path | None = None) -> Path:
    """`folder/name`, refused when the name or a symlink on the way leads outside `root` (default `folder`).

    Raises:
        ModelDirError: an absolute name, a '..' escape, or a symlink pointing out.
    """
    root = (root or folder).resolve()
    if Path(name).is_absolute() or ".." in Path(name).parts:
        raise ModelDirError(f"{folder}: file name {name!r} leads outside the model directory", _UNSAFE)
    target = (folder / name).resolve()
    if not target.is_relative_to(root):
        raise ModelDirError(f"{folder / name} is a symlink to {target}, outside the model directory", _UNSAFE)
    return target


_UNSAFE = "refusing to read it; rebuild the directory with zoo (`zoo finetune` or `zoo.modeldir.save_model_dir`)"


def read_config(folder: str | Path, root: Path | None = None) -> dict[str, Any]:
    """The checked config.json of a model directory.

    Raises:
        ModelDirError: no config, not JSON, unknown format version, or missing fields.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelDirError(f"{folder} is not a directory", "pass a model directory written by zoo")
    path = inside(folder, CONFIG, root)
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelDirError(f"{folder} is not a model directory: it has no {CONFIG}", "pass a directory written by zoo") from None
    except (OSError, ValueError) as exc:
        raise ModelDirError(f"{path} cannot be read as JSON: {exc}") from None
    version = config.get("format_version") if isinstance(config, dict) else None
    if version != FORMAT_VERSION:
        raise ModelDirError(
            f"{path}: format_version {version!r} is not one this zoo reads (it reads {FORMAT_VERSION})",
            "upgrade zoo (`pip install -U zoo`) or re-save the model with this version",
        )
    for key, kind in (("architecture", str), ("arch_args", dict), ("files", dict)):
        if key not in config:
            raise ModelDirError(f"{path}: field {key!r} is missing", _REWRITE)
        if not isinstance(config[key], kind):
            raise ModelDirError(f"{path}: field {key!r} must be a JSON {_JSON_KINDS[kind]}", _REWRITE)
    for role, entry in config["files"].items():
        if not isinstance(file_name(entry), str):
            raise ModelDirError(f"{path}: files.{role} must be a file name or an object with a \"path\"", _REWRITE)
    return config


def file_name(entry: Any) -> Any:
    """The file name of a `files` entry: a name, or an object whose "path" is the name."""
    return entry.get("path") if isinstance(entry, dict) else entry


_JSON_KINDS = {str: "string", dict: "object"}
_REWRITE = "the directory is damaged or was not written by zoo: save or download it again"


def describe(folder: str | Path) -> dict[str, Any]:
    """What `zoo info DIR` shows: the config (every field that changes behaviour: arch_args,
    preprocess with its transform, the vocabulary), the card's front matter, and the files' sizes."""
    folder = Path(folder)
    config = read_config(folder)
    card = inside(folder, CARD)
    files = {role: entry if isinstance(entry, dict) else {"path": entry} for role, entry in config["files"].items()}
    for entry in files.values():
        path = inside(folder, entry["path"])
        entry["size"] = path.stat().st_size if path.exists() else None
    return {
        "name": config.get("name") or folder.name,
        "kind": "model directory",
        "path": str(folder.resolve()),
        "format_version": config["format_version"],
        "architecture": config["architecture"],
        "arch_args": config["arch_args"],
        "num_classes": config.get("num_classes"),
        "labels": config.get("labels"),
        "preprocess": config.get("preprocess"),
        "vocab": file_name(config["files"]["vocab"]) if "vocab" in config["files"] else config["arch_args"].get("vocab"),
        "base_weights": config.get("base_weights"),
        "training": config.get("training"),
        "metrics": config.get("metrics"),
        "files": files,
        "card": read_front_matter(card) if card.exists() else {},
    }


def read_front_matter(path: Path) -> dict[str, Any]:
    """The YAML front matter of a model card ({} when it has none)."""
    import yaml

    text = path.read_text(encoding="utf-8")
    if not text.startswith("---\n"):
        return {}
    block = text[4:].split("\n---", 1)[0]
    data = yaml.safe_load(block)
    return data if isinstance(data, dict) else {}


def verified_weights(folder: Path, config: Mapping[str, Any], root: Path | None = None) -> Path:
    """The directory's weights file, checked against the sha256 config.json gives (a record spares
    the re-hash while the file's status is unchanged).

    Raises:
        ModelDirError: the weights file is missing, or its name leads outside the directory.
        WeightsIntegrityError: the weights do not hash to the sha256 in config.json.
    """
    from zoo.cache import check_record, read_record, verify_hash, write_record

    entry = config["files"].get("weights") or {}
    entry = entry if isinstance(entry, dict) else {"path": entry}
    weights = inside(folder, entry.get("path", WEIGHTS), root)
    if not weights.is_file():
        raise ModelDirError(f"{folder}: the weights file {weights.name} is missing", "copy the whole directory")
    model_key = str(folder.resolve())
    record = read_record(model_key, "model directory")
    if record is not None and record.path == str(weights) and record.sha256 == entry.get("sha256"):
        check_record(record, damaged_remedy(folder))
    elif entry.get("sha256"):
        verify_hash(weights, entry["sha256"], damaged_remedy(folder), model=model_key)
        write_record(model_key, "model directory", weights, entry["sha256"])
    return weights


def damaged_remedy(folder: Path) -> str:
    """What to do about a directory whose weights do not verify."""
    return f"the directory {folder} is damaged: save or download it again"


def vocab_reference(folder: Path, config: Mapping[str, Any], root: Path | None = None) -> str | None:
    """The vocabulary a directory's model is built with: its vocab file, or a vocabulary a plugin registered.

    Raises:
        ModelDirError: the vocabulary names a file outside the directory, or neither a file in it
            nor a registered name (a ``"package:path"`` is never imported).
    """
    files = config.get("files") or {}
    if "vocab" in files:
        return str(inside(folder, file_name(files["vocab"]), root))
    vocab = (config.get("arch_args") or {}).get("vocab")
    if vocab is None:
        return None
    from zoo.registry import VocabSpec, registered

    known = registered("register_vocabularies", VocabSpec)
    if isinstance(vocab, str) and vocab in known:
        return vocab
    path = inside(folder, vocab, root) if isinstance(vocab, str) and vocab else None
    if path is None or not path.is_file():
        raise ModelDirError(
            f"{folder}: arch_args.vocab {vocab!r} is neither a file in the directory nor a registered "
            f"vocabulary (registered: {', '.join(sorted(known)) or 'none'})",
            _REWRITE,
        )
    return str(path)


# -- writing -------------------------------------------------------------------------------------
def save_model_dir(
    model: Any,
    path: str | os.PathLike[str],
    *,
    training: Mapping[str, Any] | None = None,
    metrics: Mapping[str, float] | None = None,
    license: str | None = None,
    description: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write `model` as a model directory, atomically (a temporary folder renamed into place).

    Args:
        model: a model zoo built or loaded (it has ``model.zoo``).
        path: the directory to create.
        training: a summary of how it was trained (data, epochs, ...), stored in config.json.
        metrics: evaluation results, e.g. ``{"accuracy": 0.95}``, for config.json and the card.
        license: the licence of the weights (default: that of the base weights, when known).
        description: a paragraph for the model card.
        overwrite: replace an existing zoo model directory (or an empty folder); never anything else.

    Returns:
        The directory.

    Raises:
        ModelDirError: the directory exists and `overwrite` is False, or it is not one zoo may
            replace, or the model has no ``.zoo``.
        BusyError: another process is writing the same directory.
    """
    from zoo.fsio import lock_path, locked

    target = Path(path)
    info = getattr(model, "zoo", None)
    if info is None:
        raise ModelDirError("the model has no .zoo metadata", "build or load it with zoo.load")
    target.parent.mkdir(parents=True, exist_ok=True)
    with locked(lock_path(target), str(target)):
        check_writable(target, overwrite)
        _write(model, info, target, training, metrics, license, description, overwrite)
    return target


def check_writable(target: Path, overwrite: bool) -> None:
    """Whether a model directory may be written at `target`: a missing path, or with `overwrite`
    a zoo model directory or an empty folder (a replacement an earlier crash left half done is
    finished first).

    Raises:
        ModelDirError: `target` exists and `overwrite` is False, or it is anything else.
    """
    from zoo.fsio import recover_swap

    recover_swap(target)
    if not (target.exists() or target.is_symlink()):
        return
    if not overwrite:
        raise ModelDirError(f"{target} already exists", "choose another path, or pass overwrite=True (--overwrite)")
    if target.is_symlink() or not target.is_dir():
        kind = "a symlink" if target.is_symlink() else "a file" if target.is_file() else "not a folder"
        raise ModelDirError(f"{target} is {kind}; overwriting replaces only a zoo model directory", _NOT_OURS)
    if any(target.iterdir()) and not _is_zoo_output(target):
        raise ModelDirError(
            f"{target} is not a zoo model directory (no {CONFIG} with \"library\": \"zoo\"); "
            "overwriting replaces only a zoo model directory or an empty folder",
            _NOT_OURS,
        )


_NOT_OURS = "nothing was changed; choose another output, or move that folder away yourself"


def _is_zoo_output(folder: Path) -> bool:
    """A folder whose config.json carries the zoo's format marker."""
    config = folder / CONFIG
    if config.is_symlink() or not config.is_file():
        return False
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("library") == "zoo" and isinstance(data.get("format_version"), int)


def _write(
    model: Any, info: Any, target: Path, training: Any, metrics: Any, license: str | None, description: str | None,
    overwrite: bool,
) -> None:
    from zoo.cache import sha256_file
    from zoo.fsio import publish_dir, staging_dir
    from zoo.heads import text_tokenizer
    from zoo.statedict import save_safetensors

    with staging_dir(target) as tmp:
        args = dict(info.arch_args)
        files: dict[str, Any] = {}
        tokenizer = text_tokenizer(model)
        if tokenizer is not None:
            tokenizer.save(tmp / VOCAB)
            args["vocab"] = files["vocab"] = VOCAB
        save_safetensors(model.state_dict(), tmp / WEIGHTS, metadata={"format": "pt"})
        files["weights"] = {"path": WEIGHTS, "sha256": sha256_file(tmp / WEIGHTS), "size": (tmp / WEIGHTS).stat().st_size}
        config = _config(info, args, files, training, metrics)
        (tmp / CONFIG).write_text(json.dumps(config, indent=2, default=_plain) + "\n", encoding="utf-8")
        (tmp / CARD).write_text(_card(config, license, description), encoding="utf-8")
        publish_dir(tmp, target, replace=overwrite)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, (tuple, set)) else str(value)


def _config(info: Any, args: dict[str, Any], files: dict[str, Any], training: Any, metrics: Any) -> dict[str, Any]:
    from zoo.version import __version__

    return {
        "format_version": FORMAT_VERSION,
        "library": "zoo",
        "zoo_version": __version__,
        "name": info.name,
        "architecture": info.arch,
        "arch_args": args,
        "num_classes": args.get("num_classes"),
        "labels": list(info.labels) if info.labels else None,
        "preprocess": dict(info.preprocess),
        "base_weights": {"id": info.weights, "sha256": info.weights_sha256} if info.weights else None,
        "training": dict(training) if training else None,
        "metrics": dict(metrics) if metrics else None,
        "files": files,
    }


def _card(config: dict[str, Any], license: str | None, description: str | None) -> str:
    import yaml

    base = _base_weights(config)
    front: dict[str, Any] = {"library_name": "zoo", "tags": ["zoo", config["architecture"]]}
    if license or (base and base.license):
        front["license"] = (license or base.license).lower()  # type: ignore[union-attr]
    repos = [s.repo for s in base.sources if s.kind == "hf"] if base else []
    if repos:
        front["base_model"] = repos[0]
    if config["metrics"]:
        front["metrics"] = sorted(config["metrics"])
    body = [f"# {config['name']}", "", description or f"A `{config['architecture']}` model saved by zoo.", ""]
    if config["base_weights"]:
        body += [f"Base weights: `{config['base_weights']['id']}`.", ""]
    if config["metrics"]:
        body += ["## Results", "", *[f"- {k}: {v}" for k, v in config["metrics"].items()], ""]
    body += ["## Use", "", "```python", "import zoo", "model = zoo.load(\"path/or/hf://org/repo\")", "```", ""]
    return "---\n" + yaml.safe_dump(front, sort_keys=False) + "---\n\n" + "\n".join(body)


def _base_weights(config: dict[str, Any]) -> Any:
    base = config.get("base_weights") or {}
    if not base.get("id"):
        return None
    from zoo.registry import default_registry

    return default_registry().weights.get(base["id"])
