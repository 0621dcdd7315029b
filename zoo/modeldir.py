"""The model directory: zoo's one on-disk format, loadable from a path or from the Hub as is.

    config.json         zoo's fields under "zoo": format version, architecture and arguments,
                        labels, preprocessing, base weights (id + sha256), training summary, files
                        (+ sha256); at the top level, the keys of another library that loads the
                        directory too (timm's, for a timm architecture: see `ArchSpec.library_config`)
    model.safetensors   the weights
    README.md           a model card in the Hub's conventions (`zoo.card`)
    vocab.json          text models only

Format version 1 had zoo's fields at the top level; `read_config` reads both versions and returns
zoo's fields alike. Reading a directory never follows a name or a symlink out of it, and refuses
unknown format versions. Nothing here imports torch at module level: `zoo info DIR` stays light.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

from zoo.errors import ModelDirError
from zoo.fsio import loads_json
from zoo.hookspecs import hookimpl
from zoo.registry import ModelDirectory
from zoo.specs import MODEL_CONFIG, is_model_dir  # is_model_dir: re-exported, the name callers know

FORMAT_VERSION = 2
ZOO_KEY = "zoo"  # version 2: zoo's fields under this key of config.json
CONFIG = MODEL_CONFIG
WEIGHTS = "model.safetensors"
CARD = "README.md"
VOCAB = "vocab.json"


# -- names ---------------------------------------------------------------------------------------
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
        config = loads_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelDirError(f"{folder} is not a model directory: it has no {CONFIG}", "pass a directory written by zoo") from None
    except (OSError, ValueError) as exc:
        raise ModelDirError(f"{path} cannot be read as JSON: {exc}") from None
    config = zoo_fields(config, path)
    for key, kind in (("architecture", str), ("arch_args", dict), ("files", dict)):
        if key not in config:
            raise ModelDirError(f"{path}: field {key!r} is missing", _REWRITE)
        if not isinstance(config[key], kind):
            raise ModelDirError(f"{path}: field {key!r} must be a JSON {_JSON_KINDS[kind]}", _REWRITE)
    if not isinstance(config.get("task", ""), str):
        raise ModelDirError(f"{path}: field 'task' must be a JSON string (a task's name)", _REWRITE)
    for role, entry in config["files"].items():
        if not isinstance(file_name(entry), str):
            raise ModelDirError(f"{path}: files.{role} must be a file name or an object with a \"path\"", _REWRITE)
    return config


def zoo_fields(document: Any, path: Path) -> dict[str, Any]:
    """zoo's fields of a parsed config.json: the whole file in version 1, its "zoo" object in version
    2, where the top-level keys another library reads (timm's) must agree with zoo's.

    Raises:
        ModelDirError: no format version zoo reads, "zoo" missing or not an object, or a
            top-level key that contradicts zoo's fields.
    """
    if not isinstance(document, dict):
        raise ModelDirError(f"{path}: the file must hold a JSON object", _REWRITE)
    if "format_version" in document:  # version 1: zoo's fields at the top level
        _check_version(document["format_version"], 1, path)
        return document
    if ZOO_KEY not in document:
        raise ModelDirError(
            f"{path} has no \"{ZOO_KEY}\" object: it is not a zoo model directory (a timm repo, perhaps)",
            "load a timm repo with timm.create_model(\"local-dir:DIR\", pretrained=True), or with zoo as "
            "timm/<architecture> plus its weights; a zoo model directory is written by `zoo finetune`",
        )
    config = document[ZOO_KEY]
    if not isinstance(config, dict):
        raise ModelDirError(f"{path}: field {ZOO_KEY!r} must be a JSON object", _REWRITE)
    _check_version(config.get("format_version"), FORMAT_VERSION, path)
    _check_library_keys(document, config, path)
    return config


def config_task(config: Mapping[str, Any], folder: Path) -> Any:
    """The registered task a model directory's config names (None for a directory written before
    configs named one): a name only, looked up among the plugins' tasks (DESIGN rule 9).

    Raises:
        UnknownTaskError: no installed plugin registers it (the registered tasks named).
    """
    from zoo.tasks import get_task

    return get_task(config["task"], str(folder)) if config.get("task") else None


def _check_version(version: Any, expected: int, path: Path) -> None:
    if version != expected or isinstance(version, bool):
        raise ModelDirError(
            f"{path}: format_version {version!r} is not one this zoo reads (it reads 1 at the top "
            f"level, {FORMAT_VERSION} under \"{ZOO_KEY}\")",
            "upgrade zoo (`pip install -U zoo`) or re-save the model with this version",
        )


# Preprocessing both timm's pretrained_cfg and zoo's preprocess record.
_SHARED_PREPROCESS = ("input_size", "mean", "std", "interpolation", "crop_pct", "crop_mode")


def _check_library_keys(document: dict[str, Any], config: dict[str, Any], path: Path) -> None:
    """The facts the top-level (timm) keys and zoo's fields both state must be the same: the
    architecture (zoo may prefix it, ``timm/resnet10t``), the class count and names, the preprocessing."""
    if "architecture" not in document:
        return
    cfg = document.get("pretrained_cfg", {})
    if not isinstance(cfg, dict):
        raise ModelDirError(f"{path}: field 'pretrained_cfg' must be a JSON object", _REWRITE)
    ours, theirs = config.get("architecture"), document["architecture"]
    if isinstance(ours, str) and ours.rsplit("/", 1)[-1] != theirs:  # not a string: read_config says so
        _disagree(path, "architecture", theirs, ours)
    preprocess = config.get("preprocess") if isinstance(config.get("preprocess"), dict) else {}
    if "input_size" in preprocess:  # an image transform without a crop_mode crops at the centre
        preprocess = {"crop_mode": "center", **preprocess}
    facts = [
        ("num_classes", document.get("num_classes"), config.get("num_classes")),
        ("label_names", document.get("label_names", cfg.get("label_names")), config.get("labels")),
        *[(f"pretrained_cfg.{k}", cfg.get(k), preprocess.get(k)) for k in _SHARED_PREPROCESS],
    ]
    for name, theirs, ours in facts:
        if theirs is not None and ours is not None and theirs != ours:
            _disagree(path, name, theirs, ours)


def _disagree(path: Path, name: str, theirs: Any, ours: Any) -> None:
    raise ModelDirError(
        f"{path}: the top-level {name} {theirs!r} disagrees with zoo's {ours!r} (under \"{ZOO_KEY}\")",
        "timm and zoo would build different models from it: the file was edited or damaged; save or "
        "download the directory again",
    )


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
    """A folder whose config.json carries the zoo's format marker: at the top level (version 1) or
    under "zoo" (version 2)."""
    config = folder / CONFIG
    if config.is_symlink() or not config.is_file():
        return False
    try:
        data = loads_json(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    fields = data.get(ZOO_KEY, data) if isinstance(data, dict) else None
    return isinstance(fields, dict) and fields.get("library") == "zoo" and isinstance(fields.get("format_version"), int)


def _write(
    model: Any, info: Any, target: Path, training: Any, metrics: Any, license: str | None, description: str | None,
    overwrite: bool,
) -> None:
    from zoo.cache import sha256_file
    from zoo.card import card_text, pipeline_tag
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
        from zoo.tasks import model_task_name

        config = _config(info, args, files, training, metrics, model_task_name(model))
        spec = _arch_spec(info.arch)
        library = _library_keys(model, spec)
        document = {**library, ZOO_KEY: config}
        (tmp / CONFIG).write_text(json.dumps(document, indent=2, default=_plain) + "\n", encoding="utf-8")
        card = card_text(
            json.loads(json.dumps(config, default=_plain)),
            task=pipeline_tag(model, spec.input.kind if spec else None),
            library=spec.library if library else None,
            library_architecture=library.get("architecture"),
            license=license,
            description=description,
        )
        (tmp / CARD).write_text(card, encoding="utf-8")
        publish_dir(tmp, target, replace=overwrite)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, (tuple, set)) else str(value)


def _config(info: Any, args: dict[str, Any], files: dict[str, Any], training: Any, metrics: Any, task: str) -> dict[str, Any]:
    from zoo.version import __version__

    return {
        "format_version": FORMAT_VERSION,
        "library": "zoo",
        "zoo_version": __version__,
        "name": info.name,
        "architecture": info.arch,
        "arch_args": args,
        "task": task,
        "num_classes": args.get("num_classes"),
        "labels": list(info.labels) if info.labels else None,
        "preprocess": dict(info.preprocess),
        "base_weights": {"id": info.weights, "sha256": info.weights_sha256} if info.weights else None,
        "training": dict(training) if training else None,
        "metrics": dict(metrics) if metrics else None,
        "files": files,
    }


def _arch_spec(arch: str) -> Any:
    """The ArchSpec of a model's architecture: a registered one, or one a resolver gives
    (``timm/resnet10t``); None when neither knows it."""
    from zoo.errors import UnknownModelError
    from zoo.resolvers import architecture

    try:
        return architecture(arch)
    except UnknownModelError:
        return None


def _library_keys(model: Any, spec: Any) -> dict[str, Any]:
    """The top-level config.json keys of the other library that loads this architecture (its
    plugin's `library_config`), or {} when zoo alone does.

    Raises:
        PluginError: the plugin's function fails or gives something that is not a JSON object
            without a "zoo" key.
    """
    if spec is None or spec.library_config is None:
        return {}
    from zoo.errors import PluginError
    from zoo.plugins import import_reference

    owner = f"the {spec.library} config of {spec.name} ({spec.plugin})"
    make = import_reference(spec.library_config, owner)
    try:
        keys = make(model)
        json.dumps(keys)
    except Exception as exc:  # plugin code: any failure is the plugin's
        raise PluginError(f"{owner} failed: {exc}", "report it to the plugin's authors (`zoo plugins` shows its version)") from None
    if not isinstance(keys, dict):
        raise PluginError(f"{owner} gave a {type(keys).__name__}, not a JSON object", "report it to the plugin's authors")
    if ZOO_KEY in keys:
        raise PluginError(f"{owner} gave a {ZOO_KEY!r} key, which holds zoo's own fields", "report it to the plugin's authors")
    return keys
