"""zoo: a model zoo for PyTorch. One registry; load, fine-tune a new head, export.

`import zoo` is cheap: torch, timm and the plugins are imported on first use.
"""
from __future__ import annotations

import os
from typing import Any

from zoo.errors import (
    ArgumentError,
    DataError,
    DuplicateNameError,
    ExportError,
    HubError,
    ModelDirError,
    NoWeightsError,
    ParityError,
    PluginError,
    RegistryError,
    StrictLoadError,
    UnknownModelError,
    WeightsIntegrityError,
    WeightsUnavailableError,
    ZooError,
)
# Eager on purpose: zoo.evaluating, zoo.exporting, zoo.finetuning and zoo.predict.files import no torch at the top.
from zoo.evaluating import EvaluationReport, evaluate
from zoo.exporting import export
from zoo.finetuning import FinetuneResult, finetune
from zoo.hookspecs import hookimpl
from zoo.hub_upload import push
from zoo.predict.files import PredictionSummary, predict_files
from zoo.registry import ArchSpec, InputSpec, Registry, Source, WeightSpec
from zoo.specs import TaskSpec

from zoo.version import __version__

__all__ = [
    "__version__",
    "load",
    "finetune",
    "FinetuneResult",
    "evaluate",
    "EvaluationReport",
    "export",
    "push",
    "predict_files",
    "PredictionSummary",
    "list_models",
    "get_spec",
    "get_registry",
    "hookimpl",
    "ArchSpec",
    "InputSpec",
    "Source",
    "WeightSpec",
    "TaskSpec",
    "Registry",
    "ZooError",
    "ArgumentError",
    "DataError",
    "DuplicateNameError",
    "ExportError",
    "HubError",
    "ModelDirError",
    "NoWeightsError",
    "ParityError",
    "PluginError",
    "RegistryError",
    "StrictLoadError",
    "UnknownModelError",
    "WeightsIntegrityError",
    "WeightsUnavailableError",
]


def get_registry() -> Registry:
    """The registry of the installed plugins and registry files (built once, on first use)."""
    from zoo.registry import default_registry

    return default_registry()


def list_models(
    *patterns: str, family: str | None = None, task: str | None = None, pretrained: bool | None = None
) -> list[str]:
    """Names matching any fnmatch pattern.

    Args:
        patterns: fnmatch patterns such as ``"resnet*"``; none means all.
        family: keep only this family (perceptron, mlp, cnn, rnn, ...).
        task: keep only architectures for this task (by its name or one of its aliases).
        pretrained: True lists weight ids, False architectures, None both.

    Returns:
        Sorted names, each loadable with `zoo.load`.
    """
    from zoo.tasks import task_names

    wanted = None if task is None else task_names(task)
    return get_registry().list_models(*patterns, family=family, task=wanted, pretrained=pretrained)


def get_spec(name: str) -> ArchSpec | WeightSpec:
    """The WeightSpec of a weight id or alias, or the ArchSpec of an architecture name."""
    return get_registry().get_spec(name)


def load(name: str | os.PathLike[str], pretrained: bool | None = None, num_classes: int | None = None, **arch_args: Any) -> Any:
    """Build a model by name, with its pretrained weights when it has them.

    Args:
        name: an architecture (``"mlp"``), a weight id or alias (``"resnet18.a1_in1k"``, ``"lstm-text"``),
            a model directory (a str or a path), ``"hf://org/repo[@revision]"``, or any reference a plugin's resolver
            claims (``"timm/<name>"``).
        pretrained: True requires weights, False builds a random initialisation, None (default)
            loads weights when the name has them.
        num_classes: the number of outputs; when it differs from the weights' the head is new.
        arch_args: architecture arguments (``hidden=(256,)``, ``activation="gelu"``, ...).

    Returns:
        An ``nn.Module`` following the head protocol, with metadata in ``model.zoo``.
    """
    from zoo.loading import load as _load

    return _load(name, pretrained=pretrained, num_classes=num_classes, **arch_args)
