"""The specs plugins and registry files declare: architectures, weights, transforms, vocabularies,
and what a reference resolves to. Plain data, no torch; `zoo.registry` collects them."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from zoo.errors import RegistryError

INPUT_KINDS = ("image", "tokens", "features")
# The sizes of an input that may vary besides the batch, by kind: an image's (C, H, W) height and
# width, a token sequence's length.
DYNAMIC_DIMS = {"image": ("height", "width"), "tokens": ("seq",), "features": ()}
SOURCE_KINDS = ("hf", "pkg", "bundled")
# Where torch.load may put a pickle checkpoint's tensors: a device name, never code.
MAP_LOCATION = re.compile(r"^(cpu|cuda|mps|xpu)(:\d+)?$")
# What data may use to choose behaviour: a plain name, never a module path or a file path.
PLAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class RegistryWarning(UserWarning):
    """A registry entry was skipped because the architecture it names is not registered."""


@dataclass(frozen=True)
class InputSpec:
    """What a model eats: an image C×H×W, a token sequence over a vocabulary, or a feature vector.

    `dynamic` names the sizes that vary, each with its smallest and largest value: an image's
    ``"height"`` and ``"width"`` (`shape` then gives the nominal size, inside the range), a token
    sequence's ``"seq"``. Export keeps them dynamic and the parity check tries several values of each.
    """

    kind: str
    shape: tuple[int, ...] = ()
    vocab_size: int | None = None
    dynamic: Mapping[str, tuple[int, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in INPUT_KINDS:
            raise RegistryError(f"input kind {self.kind!r} is not one of {', '.join(INPUT_KINDS)}")
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        if not isinstance(self.dynamic, Mapping):
            raise RegistryError(f"dynamic must map size names to (min, max), got {self.dynamic!r}", "e.g. {'width': (8, 2048)}")
        object.__setattr__(self, "dynamic", {name: self._range(name, r) for name, r in self.dynamic.items()})

    def _range(self, name: str, bounds: Any) -> tuple[int, int]:
        allowed = DYNAMIC_DIMS[self.kind]
        if name not in allowed:
            raise RegistryError(
                f"a {self.kind} input has no dynamic size {name!r}",
                f"use {', '.join(map(repr, allowed))}" if allowed else "a feature vector has no size that varies",
            )
        try:
            low, high = (int(b) for b in bounds)
        except (TypeError, ValueError):
            raise RegistryError(f"dynamic size {name!r} needs (min, max), got {bounds!r}") from None
        if not 1 <= low <= high:
            raise RegistryError(f"dynamic size {name!r}: need 1 <= min <= max, got ({low}, {high})")
        nominal = self.nominal(name)
        if nominal is not None and not low <= nominal <= high:
            raise RegistryError(f"dynamic size {name!r}: the shape's {name} {nominal} is outside ({low}, {high})")
        return low, high

    def nominal(self, name: str) -> int | None:
        """The size `shape` gives the dimension `name` (an image's height or width), if any."""
        axis = {"height": 1, "width": 2}.get(name)
        return self.shape[axis] if self.kind == "image" and axis is not None and len(self.shape) == 3 else None

    def describe(self) -> str:
        if self.kind == "image":
            sizes = [str(d) for d in self.shape]
            for name, (low, high) in self.dynamic.items():
                if (axis := {"height": 1, "width": 2}[name]) < len(sizes):
                    sizes[axis] = f"{name[0].upper()}[{low}..{high}]"
            return "image " + "×".join(sizes)
        if self.kind == "tokens":
            return f"token sequence, vocab {self.vocab_size}"
        return f"feature vector of {self.shape[0] if self.shape else '?'}"


@dataclass(frozen=True)
class ArchSpec:
    """An architecture: how to build it (imported only when built) and what it is for."""

    name: str
    family: str
    build: str
    tasks: tuple[str, ...]
    input: InputSpec
    defaults: Mapping[str, Any] = field(default_factory=dict)
    choices: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    num_params: int | None = None
    description: str = ""
    plugin: str | None = None
    # Another library that loads this architecture's model directories too: its name as the Hub
    # knows it (the card's library_name, "timm"), and the plugin's "module:function" that gives the
    # keys that library reads at the top level of config.json (`(model) -> dict`, imported on save).
    library: str | None = None
    library_config: str | None = None

    def __post_init__(self) -> None:
        _check_name(self.name, "architecture")
        if self.library is not None:
            _check_plain(self.library, "library")
        if self.library_config is not None and (not self.library or ":" not in self.library_config):
            raise RegistryError(
                f"architecture {self.name!r}: library_config must be 'module:function' and needs library set"
            )
        if not self.family or not isinstance(self.family, str):
            raise RegistryError(f"architecture {self.name!r}: family must be a non-empty string")
        if ":" not in self.build:
            raise RegistryError(f"architecture {self.name!r}: build must be 'module:function', got {self.build!r}")
        object.__setattr__(self, "tasks", tuple(self.tasks))
        if not self.tasks:
            raise RegistryError(f"architecture {self.name!r}: tasks must not be empty")
        if not isinstance(self.input, InputSpec):
            raise RegistryError(f"architecture {self.name!r}: input must be an InputSpec")
        object.__setattr__(self, "choices", {k: tuple(v) for k, v in self.choices.items()})


@dataclass(frozen=True)
class Source:
    """One place weights can come from: the Hub (`hf`), an installed package (`pkg`), or a plugin (`bundled`)."""

    kind: str
    repo: str | None = None
    revision: str | None = None
    filename: str | None = None
    dist: str | None = None
    package: str | None = None
    path: str | None = None
    converter: str | None = None
    sha256: str | None = None
    size: int | None = None
    # A pickle checkpoint that wraps its state dict (`{"epoch": 3, "model_state_dict": {...}}`) names
    # the key that holds it ("a.b" for nested ones); `map_location` is where torch.load puts the tensors.
    state_dict_key: str | None = None
    map_location: str = "cpu"

    def __post_init__(self) -> None:
        if self.kind not in SOURCE_KINDS:
            raise RegistryError(f"source kind {self.kind!r} is not one of {', '.join(SOURCE_KINDS)}")
        needed = {"hf": ("repo", "filename"), "pkg": ("dist", "path"), "bundled": ("package", "path")}[self.kind]
        for name in needed:
            if not getattr(self, name):
                raise RegistryError(f"a {self.kind!r} source needs {name!r}")
        if self.state_dict_key is not None and not (
            isinstance(self.state_dict_key, str) and all(self.state_dict_key.split("."))
        ):
            raise RegistryError(f"state_dict_key must be a key or dotted keys ('model.state_dict'), got {self.state_dict_key!r}")
        if self.state_dict_key is not None and str(self.filename or self.path).endswith(".safetensors"):
            raise RegistryError(
                f"state_dict_key {self.state_dict_key!r} is set for {self.filename or self.path}, a safetensors file",
                "a safetensors file holds its tensors at the top level: leave state_dict_key out",
            )
        if not isinstance(self.map_location, str) or not MAP_LOCATION.match(self.map_location):
            raise RegistryError(
                f"map_location {self.map_location!r} is not a device name",
                "use 'cpu' (the default: zoo converts once and caches), or 'cuda', 'cuda:N', 'mps', 'xpu'",
            )

    def describe(self) -> str:
        if self.kind == "hf":
            rev = f"@{self.revision}" if self.revision else ""
            return f"hf://{self.repo}{rev}/{self.filename}"
        if self.kind == "pkg":
            return f"pip package {self.dist!r} ({self.path})"
        return f"bundled in {self.package} ({self.path})"


@dataclass(frozen=True)
class WeightSpec:
    """Pretrained weights `arch.tag` for one architecture, with their sources and metadata."""

    id: str
    arch: str
    sources: tuple[Source, ...]
    aliases: tuple[str, ...] = ()
    default: bool = False
    arch_args: Mapping[str, Any] = field(default_factory=dict)
    num_classes: int | None = None
    labels: tuple[str, ...] | str | None = None
    preprocess: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    license: str | None = None
    citation: str | None = None
    origin: str | None = None
    description: str = ""
    num_params: int | None = None
    plugin: str | None = None

    def __post_init__(self) -> None:
        _check_name(self.id, "weights")
        if not self.id.startswith(self.arch + "."):
            raise RegistryError(f"weights {self.id!r}: the id must be '{self.arch}.<tag>'")
        object.__setattr__(self, "sources", tuple(self.sources))
        object.__setattr__(self, "aliases", tuple(self.aliases))
        if isinstance(self.labels, list):
            object.__setattr__(self, "labels", tuple(self.labels))
        if not self.sources:
            raise RegistryError(f"weights {self.id!r}: at least one source is needed")
        for alias in self.aliases:
            _check_name(alias, "alias")

    @property
    def tag(self) -> str:
        return self.id[len(self.arch) + 1 :]

    def label_names(self) -> list[str] | None:
        """The class names: inline, or read from `package:path` when `labels` names a file."""
        if self.labels is None or isinstance(self.labels, tuple):
            return list(self.labels) if self.labels else None
        from importlib.resources import files

        package, _, path = self.labels.partition(":")
        return files(package).joinpath(path).read_text(encoding="utf-8").splitlines()


@dataclass(frozen=True)
class TransformSpec:
    """An image transform that preprocessing may name (``"transform": "digits"``).

    `build` is the plugin's ``"module:function"``, imported only when the transform is used:
    ``build(preprocess) -> transform``, where ``transform(PIL image) -> tensor [C, H, W]``.
    """

    name: str
    build: str
    description: str = ""
    plugin: str | None = None

    def __post_init__(self) -> None:
        _check_plain(self.name, "transform")
        if ":" not in self.build:
            raise RegistryError(f"transform {self.name!r}: build must be 'module:function', got {self.build!r}")


@dataclass(frozen=True)
class VocabSpec:
    """A vocabulary file (vocab.json) a plugin ships, that data may name (``"vocab": "lstm-text"``)."""

    name: str
    package: str
    path: str
    description: str = ""
    plugin: str | None = None

    def __post_init__(self) -> None:
        _check_plain(self.name, "vocabulary")
        if not self.package or not self.path:
            raise RegistryError(f"vocabulary {self.name!r}: package and path are required")


@dataclass(frozen=True)
class TaskSpec:
    """A task: what a model's output means, and how zoo trains, scores, decodes and prints it.

    Every callable is a plugin's ``"module:function"`` string, imported only when the task is used
    (never named by data: a model directory names its task by `name` only). `zoo.tasks` collects them.
    """

    name: str
    """The task's name, as ArchSpec.tasks, DataFormat.task and a model directory's config name it."""
    output: tuple[str, ...]
    """The model output's dimensions: ``("batch", "classes")``, ``("batch", "time", "classes")``."""
    decode: str
    """``decode(outputs: Tensor, labels: list[str] | None, top_k: int) -> list[dict]``: one JSON-able
    prediction per input (what ``zoo predict --json`` prints, beside ``"input"``)."""
    columns: tuple[str, ...]
    """The table's column headers after INPUT (``("RANK", "LABEL", "PROBABILITY")``)."""
    rows: str
    """``rows(prediction: dict) -> list[tuple]``: a decoded prediction's table rows, one value per column."""
    metrics: str
    """``metrics(labels: list[str] | None) -> accumulator`` with ``update(outputs, targets)`` per batch
    and ``result() -> dict[str, float]`` over the whole evaluation (accuracy, CER, ...); with
    ``merge(other)`` (adding another accumulator's counts) a fine-tune may run on several ranks
    (``--nproc``), each scoring its share."""
    loss: str | None = None
    """``loss(outputs, targets, label_smoothing: float) -> (summed loss: Tensor, count: int)``; the mean
    is summed / count. None: cross-entropy over the last dimension, targets of -100 ignored."""
    inputs: str | None = None
    """``inputs(model, data: TrainingData, options) -> zoo.finetuning.inputs.Inputs``: the train/val
    datasets of ``(input, target)`` and the collate that batches them into ``(inputs, targets)``.
    None: the task cannot be fine-tuned or evaluated."""
    prepare: str | None = None
    """``prepare(model, inputs: list[str]) -> model input batch``: what ``zoo predict INPUTS`` feeds the
    model (texts, image paths). ``zoo predict`` passes one input at a time and runs inputs whose
    batches share a shape together. None: zoo reads images as for classification."""
    blank: int | None = None
    """The class index of the CTC blank, when the output is CTC-decoded (else None)."""
    reads: str = "images"
    """What ``zoo predict INPUTS`` are: ``"images"`` (files; a folder stands for its image files) or
    ``"texts"`` (each argument is a text)."""
    predict: str | None = None
    """``predict(model, inputs: list[str], options: dict) -> Iterable[list[dict]]``: the whole of ``zoo
    predict`` for a task that does more than prepare, run and decode (a language model's continuations
    and sampling); batches of ``{"input": ..., **decoded}``. `options`: ``top_k``, ``batch_size``,
    ``generate`` (None or a token count), ``temperature``, ``seed``. None: `prepare`, the model,
    `decode`, in batches (``zoo.predict.decoded``); ``--generate`` is then refused."""
    evaluate: str | None = None
    """``evaluate(model, samples, context: dict) -> zoo.evaluating.EvaluationReport``: the whole of ``zoo
    eval`` for a task whose report is more than its loss and metrics (a classifier's confusion matrix).
    `samples` is the data read as fine-tuning reads it (its ``val`` is what is scored); `context` holds
    ``task`` (this TaskSpec), ``name``, ``split``, ``training`` (the model directory's training summary,
    or {}), ``batch_size``, ``top_k``, ``workers``, ``device``, ``max_windows``, ``seed`` and ``progress``.
    None: the samples through `inputs`, the model, `loss` and `metrics`."""
    report: str | None = None
    """``report(evaluation, before, data, inputs) -> dict``: the metrics a fine-tune records from its final
    evaluation (``val_accuracy``, a confusion matrix, ...). `before` is the evaluation before training
    and ``evaluation.predictions`` the top class of each target when the function asks for them
    (``zoo.finetuning.report.needs``), else None and empty. None: ``val_loss`` and the `metrics` result."""
    cache_features: bool = False
    """Whether a frozen-backbone fine-tune may cache the backbone's features once (one fixed-size feature
    vector per example, the head trained on them): classification's is; a per-step task's is not."""
    aliases: tuple[str, ...] = ()
    """Other names architectures give this task (``"sequence-classification"``)."""
    description: str = ""
    plugin: str | None = None

    def __post_init__(self) -> None:
        _check_plain(self.name, "task")
        object.__setattr__(self, "output", tuple(self.output))
        object.__setattr__(self, "columns", tuple(self.columns))
        object.__setattr__(self, "aliases", tuple(self.aliases))
        if len(self.output) < 2 or self.output[0] != "batch" or not all(isinstance(d, str) and d for d in self.output):
            raise RegistryError(f"task {self.name!r}: output must name its dimensions, batch first, got {self.output!r}")
        if self.reads not in ("images", "texts"):
            raise RegistryError(f"task {self.name!r}: reads must be 'images' or 'texts', got {self.reads!r}")
        for attr in ("decode", "rows", "metrics", "loss", "inputs", "prepare", "predict", "evaluate", "report"):
            value = getattr(self, attr)
            if value is not None and (not isinstance(value, str) or ":" not in value):
                raise RegistryError(f"task {self.name!r}: {attr} must be 'module:function', got {value!r}")
        for alias in self.aliases:
            _check_plain(alias, "task alias")
        if self.blank is not None and (not isinstance(self.blank, int) or self.blank < 0):
            raise RegistryError(f"task {self.name!r}: blank must be a class index (0 or more), got {self.blank!r}")


def _check_plain(name: Any, what: str) -> None:
    if not isinstance(name, str) or not PLAIN_NAME.match(name):
        raise RegistryError(f"{what} name {name!r} must be a plain name (letters, digits, '.', '_', '-')")


@dataclass(frozen=True)
class Resolved:
    """What a name means: an architecture, and the weights it names (or the arch's default weights)."""

    arch: ArchSpec
    weights: WeightSpec | None
    # The name the architecture is found by again, when a resolver gave it (`timm/resnet10t`);
    # None: `arch.name`, a registry name. A model directory records it as its architecture.
    arch_name: str | None = None


@dataclass(frozen=True)
class ModelDirectory:
    """A model directory on disk that a reference names; symlinks in it may point inside `root`."""

    path: Path
    root: Path | None = None


MODEL_CONFIG = "config.json"


def is_model_dir(name: str | os.PathLike[str]) -> bool:
    """Whether `name` is a folder holding a config.json (a model directory, read by zoo.modeldir)."""
    return (Path(name) / MODEL_CONFIG).is_file()


def _check_name(name: Any, what: str) -> None:
    if not isinstance(name, str) or not name or any(c.isspace() for c in name) or "/" in name:
        raise RegistryError(f"{what} name {name!r} must be a non-empty string without spaces or '/'")
