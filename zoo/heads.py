"""The head protocol every zoo model follows, and the ordered freeze groups fine-tuning relies on."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from zoo.errors import ArgumentError, PluginError


@runtime_checkable
class HeadProtocol(Protocol):
    """What zoo asks of a model: features and head apart, a replaceable classifier, freeze groups."""

    def forward_features(self, x: torch.Tensor) -> torch.Tensor: ...

    def forward_head(self, features: torch.Tensor) -> torch.Tensor: ...

    def get_classifier(self) -> nn.Module: ...

    def reset_classifier(self, num_classes: int) -> None: ...


@runtime_checkable
class TextModel(Protocol):
    """A model that reads text: `tokenizer` turns text into the token ids it takes (None: it has no vocabulary)."""

    tokenizer: Any


@runtime_checkable
class LanguageModel(TextModel, Protocol):
    """A text model whose head predicts the next token: continuations, samples and a text's score."""

    num_classes: int

    def continuations(self, prompt: str, k: int = 5, max_tokens: int = 20) -> list[tuple[str, float]]: ...

    def generate(self, prompt: str = "", max_new_tokens: int = 100, temperature: float = 1.0, top_k: int | None = None, seed: int | None = None) -> str: ...

    def score(self, text: str) -> float: ...


def text_tokenizer(model: Any) -> Any:
    """The tokenizer of a model that declares one (`TextModel`), else None."""
    return model.tokenizer if isinstance(model, TextModel) else None


def is_language_model(model: Any) -> bool:
    """Whether the model is a `LanguageModel` with a vocabulary whose every token its head predicts."""
    tokenizer = text_tokenizer(model)
    return isinstance(model, LanguageModel) and tokenizer is not None and model.num_classes == len(tokenizer)


@dataclass
class ModelInfo:
    """The `.zoo` attribute of a model zoo built: where it came from and how to feed it."""

    name: str
    arch: str
    arch_args: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None
    weights_sha256: str | None = None
    labels: list[str] | None = None
    preprocess: dict[str, Any] = field(default_factory=dict)
    source: str | None = None
    load_report: dict[str, list[str]] = field(default_factory=dict)


def model_info(name: str, arch: str, **fields: Any) -> ModelInfo:
    """The `.zoo` metadata of a model zoo built, loaded or exported: every ModelInfo is made here."""
    fields["arch_args"] = dict(fields.get("arch_args") or {})
    fields["preprocess"] = dict(fields.get("preprocess") or {})
    return ModelInfo(name=name, arch=arch, **fields)


class ZooModel(nn.Module):
    """Base of the zoo's own models: `forward = forward_head ∘ forward_features`.

    Subclasses implement `forward_features` and `make_head`, set `num_features` and `head` (the
    classifier, replaced by `reset_classifier`) in `__init__`, and list their modules stem → head in
    `group_names`, so freeze groups mean the same in every family. `zoo.build.build_model` refuses
    a model that leaves one of these out (`missing_parts`).
    """

    group_names: tuple[str, ...] = ()
    num_features: int
    num_classes: int

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise incomplete(self, _missing_methods(type(self)))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.head

    def make_head(self, num_classes: int) -> nn.Module:
        """A fresh classifier for `num_classes` outputs (0 gives nn.Identity, features only)."""
        raise incomplete(self, _missing_methods(type(self)))

    def reset_classifier(self, num_classes: int) -> None:
        if not isinstance(num_classes, int) or num_classes < 0:
            raise ArgumentError(f"num_classes must be a non-negative integer, got {num_classes!r}")
        self.head = self.make_head(num_classes)
        self.num_classes = num_classes

    def freeze_groups(self) -> list[tuple[str, list[nn.Parameter]]]:
        return [(name, list(getattr(self, name).parameters())) for name in self.group_names]

    def missing_parts(self) -> list[str]:
        """What this subclass left out of the head protocol (empty when it is complete)."""
        missing = _missing_methods(type(self))
        width = getattr(self, "num_features", None)
        if isinstance(width, bool) or not isinstance(width, int):
            missing.append("num_features (an int, set in __init__)")
        if not isinstance(self._modules.get("head"), nn.Module):
            missing.append("head (set self.head = self.make_head(num_classes) in __init__)")
        return missing


def _missing_methods(cls: type) -> list[str]:
    return [f"{name}()" for name in ("forward_features", "make_head") if getattr(cls, name) is getattr(ZooModel, name)]


def incomplete(model: nn.Module, missing: list[str], owner: str | None = None) -> PluginError:
    """The error for a half-built ZooModel: its class and every part of the head protocol it lacks."""
    cls = type(model)
    where = f"{owner}: " if owner else ""
    return PluginError(
        f"{where}{cls.__module__}.{cls.__qualname__} is missing {', '.join(missing)}",
        "implement them in the class (docs/writing_plugins.md shows a complete model)",
    )


def require_complete(model: nn.Module, owner: str) -> None:
    """Refuse a half-built ZooModel (see `ZooModel.missing_parts`)."""
    missing = model.missing_parts() if isinstance(model, ZooModel) else []
    if missing:
        raise incomplete(model, missing, owner)


def freeze_groups(model: nn.Module) -> list[tuple[str, list[nn.Parameter]]]:
    """Ordered (name, parameters) groups from stem to head; the last group is the classifier."""
    if hasattr(model, "freeze_groups"):
        return model.freeze_groups()
    if hasattr(model, "group_matcher"):
        return _timm_groups(model)
    raise ArgumentError(f"{type(model).__name__} does not declare freeze groups")


def _timm_groups(model: nn.Module) -> list[tuple[str, list[nn.Parameter]]]:
    """timm's coarse layer groups (stem, stages, ...), with the classifier split off as the last group."""
    from timm.models import group_parameters

    params = dict(model.named_parameters())
    head = {id(p) for p in model.get_classifier().parameters()}
    groups = []
    for _, names in sorted(group_parameters(model, model.group_matcher(coarse=True)).items()):
        kept = [n for n in names if id(params[n]) not in head]
        if kept:
            groups.append((",".join(dict.fromkeys(_group_label(n) for n in kept)), [params[n] for n in kept]))
    return [*groups, ("head", list(model.get_classifier().parameters()))]


def _group_label(param: str) -> str:
    """`blocks.3.1.conv.weight` -> `blocks.3`; `conv1.weight` -> `conv1`; `head.norm.weight` -> `head.norm`."""
    parts = param.split(".")[:-1]
    depth = 2 if len(parts) > 1 and (parts[1].isdigit() or parts[0] == "head") else 1
    return ".".join(parts[:depth])


def activation(name: str, choices: dict[str, type[nn.Module]] | None = None) -> nn.Module:
    """An activation module by name; the names are those ACTIVATIONS lists."""
    table = choices or ACTIVATIONS
    if name not in table:
        raise ArgumentError(f"unknown activation {name!r}", f"use one of: {', '.join(table)}")
    return table[name]()


ACTIVATIONS: dict[str, type[nn.Module]] = {
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "softplus": nn.Softplus,
}
