"""The load path, one way: reference -> resolved spec -> fetched, verified file -> built module -> model.zoo.

1. `zoo.resolvers` turns the reference into a `Resolved` (architecture + weights) or a `ModelDirectory`.
2. `zoo.weights` (a weight spec) or `zoo.modeldir` (a directory) gives the verified safetensors file.
3. `zoo.statedict` builds the module on the meta device and assigns the file's tensors strictly
   (`zoo.build` imports the builder and checks the arguments).
4. Here, ``model.zoo`` is filled by `zoo.heads.model_info`, the one constructor of a `ModelInfo`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from zoo.errors import ArgumentError, NoWeightsError, WeightsIntegrityError
from zoo.heads import model_info
from zoo.registry import ArchSpec, ModelDirectory, Registry, Resolved, WeightSpec


def load(
    name: str | os.PathLike[str],
    *,
    pretrained: bool | None = None,
    num_classes: int | None = None,
    registry: Registry | None = None,
    **arch_args: Any,
) -> Any:
    """See `zoo.load`."""
    from zoo.resolvers import resolve

    name = os.fspath(name)
    found = resolve(name, registry=registry)
    if isinstance(found, ModelDirectory):
        if pretrained is False or arch_args:
            raise ArgumentError(
                f"{name} is a model directory: its architecture and weights are fixed",
                "drop pretrained=False and the architecture arguments (num_classes may change the head)",
            )
        return load_model_dir(found.path, num_classes=num_classes, root=found.root, registry=registry)
    if registry is None:  # a task no installed plugin registers: one line naming those that are, before any download
        from zoo.tasks import require_arch_task

        require_arch_task(found.arch, name)
    if pretrained and found.weights is None and found.arch_name is None:
        (registry or _default_registry()).require_weights(name)  # names the weights there are
    model = load_resolved(found, pretrained=pretrained, num_classes=num_classes, **arch_args)
    if found.arch_name is not None:  # a resolver's reference: shown and saved as given
        model.zoo.name = name
    return model


def require_registered_task(model_or_name: Any) -> None:
    """Refuse a model whose task no installed plugin registers, in one line naming the registered tasks,
    before anything is loaded: a registry name's architecture, a model directory's config (a loaded
    model is checked by `zoo.tasks.task_of`). A name nothing knows is refused here too.

    Raises:
        UnknownTaskError: the task, with the registered ones.
        UnknownModelError: the name is neither registered nor a model directory.
    """
    if not isinstance(model_or_name, (str, os.PathLike)):
        return
    from zoo.modeldir import config_task, read_config
    from zoo.resolvers import resolve
    from zoo.specs import is_model_dir
    from zoo.tasks import require_arch_task

    name = os.fspath(model_or_name)
    found = resolve(name)
    if isinstance(found, Resolved):
        require_arch_task(found.arch, name)
    elif isinstance(found, ModelDirectory) and is_model_dir(found.path):  # not an export's file, which its loader reads
        config_task(read_config(found.path, found.root), found.path)


def _default_registry() -> Registry:
    from zoo.registry import default_registry

    return default_registry()


def load_resolved(
    resolved: Resolved, *, pretrained: bool | None = None, num_classes: int | None = None, **arch_args: Any
) -> Any:
    """Build a resolved name: with its weights unless `pretrained` is False (None: when it has some)."""
    if pretrained and resolved.weights is None:
        raise NoWeightsError(f"no weights for {resolved.arch.name!r}", "load it with pretrained=False")
    if pretrained is None:
        pretrained = resolved.weights is not None
    arch_name = resolved.arch_name or resolved.arch.name
    if not pretrained:
        from zoo.build import build_model

        if num_classes is not None:
            arch_args["num_classes"] = num_classes
        model = build_model(resolved.arch, **arch_args)
        model.zoo.name = model.zoo.arch = arch_name  # a resolver's name (timm/...) is how it is found again
        return model
    return load_pretrained(resolved.arch, resolved.weights, arch_name=arch_name, num_classes=num_classes, **arch_args)


def load_pretrained(
    arch: ArchSpec, weights: WeightSpec, *, arch_name: str | None = None, num_classes: int | None = None, **arch_args: Any
) -> Any:
    """Build `arch` and load `weights` strictly and fast (meta device, memory-mapped safetensors).

    Args:
        arch: the architecture.
        weights: the pretrained weights.
        arch_name: the name the architecture is found by again (default `arch.name`).
        num_classes: a count that differs from the weights' gets a new head, reported in
            ``model.zoo.load_report`` (keys dropped, keys new).
        arch_args: architecture arguments.

    Returns:
        The model in eval mode, with ``model.zoo`` filled (weights id, sha256, labels, preprocess).
    """
    from zoo.statedict import build_loaded, read_safetensors
    from zoo.weights import file_arch_args, reference_shapes, resolve_weights

    args = file_arch_args(arch, weights, arch_args)
    fetched = resolve_weights(weights, reference_shapes(arch, args))
    state = read_safetensors(fetched.path)
    model, report = build_loaded(arch, args, state, file=str(fetched.path), num_classes=num_classes)
    model.zoo = model_info(
        weights.id,
        arch_name or arch.name,
        arch_args=_final_args(arch, args, num_classes),
        weights=weights.id,
        weights_sha256=fetched.record.sha256,
        labels=None if report.new else (weights.label_names() or fetched.labels),
        preprocess=weights.preprocess,
        source=fetched.source.describe(),
        load_report=report.as_dict(),
    )
    return model


def _final_args(arch: ArchSpec, args: Mapping[str, Any], num_classes: int | None) -> dict[str, Any]:
    merged = {**arch.defaults, **args}
    if num_classes is not None:
        merged["num_classes"] = num_classes
    return merged


def load_model_dir(
    path: str | os.PathLike[str],
    *,
    num_classes: int | None = None,
    root: Path | None = None,
    registry: Registry | None = None,
) -> Any:
    """Load a model directory: its architecture, strictly loaded weights, labels and preprocessing.

    Args:
        path: the directory.
        num_classes: a different count gets a fresh head (reported in ``model.zoo.load_report``).
        root: the folder that symlinks may point into (the Hub cache for ``hf://`` directories).
        registry: where its architecture is looked up (default: the installed plugins').

    Returns:
        The model in eval mode with ``model.zoo`` filled.

    Raises:
        ModelDirError: unsafe names or symlinks, unknown format version, unknown architecture.
        WeightsIntegrityError: the weights do not hash to the sha256 in config.json.
    """
    from zoo.modeldir import config_task, damaged_remedy, read_config, verified_weights, vocab_reference
    from zoo.statedict import build_loaded, read_safetensors

    folder = Path(path)
    config = read_config(folder, root)
    config_task(config, folder)  # a task no plugin registers: refused before anything is built
    arch = _architecture(config["architecture"], folder, registry)
    args = dict(config["arch_args"])
    vocab = vocab_reference(folder, config, root)
    if vocab is not None:
        args["vocab"] = vocab
    weights = verified_weights(folder, config, root)
    try:
        state = read_safetensors(weights)
    except WeightsIntegrityError as exc:  # its own remedy speaks of the cache; this file is the directory's
        raise WeightsIntegrityError(exc.message, damaged_remedy(folder)) from None
    model, report = build_loaded(arch, args, state, file=str(weights), num_classes=num_classes)
    base = config.get("base_weights") or {}
    model.zoo = model_info(
        config.get("name") or folder.name,
        config["architecture"],
        arch_args=_final_args(arch, args, num_classes),
        weights=base.get("id"),
        weights_sha256=base.get("sha256"),
        labels=None if report.new else config.get("labels"),
        preprocess=config.get("preprocess"),
        source=str(folder),
        load_report=report.as_dict(),
    )
    return model


def _architecture(name: str, folder: Path, registry: Registry | None) -> ArchSpec:
    """The architecture a directory names: registered, or one a resolver knows (``timm/<name>``)."""
    from zoo.errors import ModelDirError, UnknownModelError
    from zoo.resolvers import architecture

    try:
        return architecture(name, registry)
    except UnknownModelError:
        raise ModelDirError(
            f"{folder}: architecture {name!r} is not provided by any installed plugin",
            "install the plugin that provides it (`zoo plugins` lists what is installed)",
        ) from None
