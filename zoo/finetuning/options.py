"""The options of a fine-tuning run (every flag of `zoo finetune` is made from them) and its result."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.errors import ArgumentError

DEVICES = ("auto", "cpu", "cuda")
RUNTIMES = ("auto", "eager", "onnx")  # zoo.finetuning.feature_runtime runs them


def _option(default: Any, help: str, *flags: str) -> Any:
    """A field of FinetuneOptions: its default, its help text and, when not `--<name>`, its CLI flags.

    A boolean with a flag of its own (``--no-cache``, ``--random-init``) is set to False by it; any other
    boolean is set to True by ``--<name>``.
    """
    return field(default=default, metadata={"help": help, "flags": flags})


@dataclass(frozen=True)
class FinetuneOptions:
    """Every option of `zoo.finetune` and of `zoo finetune` (whose flags are made from these fields)."""

    output: str | None = _option(None, "The model directory to write [default: ./<model>-finetuned].", "--output", "-o")
    epochs: int = _option(5, "Passes over the training data.")
    batch_size: int = _option(32, "Examples per batch.")
    lr: float = _option(1e-3, "The head's learning rate (lower groups: × --lr-decay per group).")
    lr_decay: float = _option(0.5, "Discriminative rate factor between groups.")
    weight_decay: float = _option(0.01, "AdamW's weight decay.")
    warmup: float = _option(0.1, "Share of the steps that warm the learning rate up before its cosine decay.")
    label_smoothing: float = _option(0.0, "Label smoothing of the cross-entropy loss.")
    patience: int = _option(3, "Epochs without a better val loss before stopping (0: never).")
    max_grad_norm: float = _option(1.0, "Gradients are clipped to this norm (0: not clipped).")
    strategy: str | None = _option(None, "head (the default), last-n:K or full (the default for a language model and for a model without pretrained weights).")
    augment: bool = _option(False, "Random resized crops and flips (the backbone then runs every epoch).")
    cache: bool = _option(True, "Run the backbone every epoch even when its features could be cached.", "--no-cache")
    val_split: float = _option(0.2, "Held-out share of each class when there is no val/ folder.")
    seed: int = _option(0, "Seed of the split, the initialisation and the batches.")
    device: str = _option("auto", "Where to train.")
    workers: int = _option(0, "Data-loading processes.")
    runtime: str = _option(
        "auto", "What runs the frozen backbone in the cached feature pass: eager (PyTorch), onnx (exported once, run in "
        "ONNX Runtime on the CPU) or auto (onnx on a CPU when the export pays for itself; see docs/finetune.md)."
    )
    image_size: int | None = _option(None, "Train at this size instead of the model's input size.")
    max_length: int = _option(256, "Tokens kept per text.")
    steps_per_epoch: int | None = _option(None, "Batches per epoch, drawn at random (default: the whole training set; a corpus: 16,384 windows).")
    val_windows: int = _option(4096, "A corpus: held-out windows scored before and after training, a fixed seeded sample (0: all).")
    data_format: str | None = _option(None, "The data format, when detection is not wanted (zoo.data formats).")
    text_column: str = _option("text", "CSV: the column holding the text.")
    label_column: str = _option("label", "CSV: the column holding the label.")
    strict_data: bool = _option(False, "Fail on a corrupt or empty file instead of skipping it.")
    pretrained: bool | None = _option(None, "Start from random weights instead of the pretrained ones.", "--random-init")
    resume: bool = _option(False, "Continue an interrupted run from its last checkpoint.")
    overwrite: bool = _option(False, "Replace an existing output directory.")

    def __post_init__(self) -> None:
        positive = ("epochs", "batch_size", "max_length")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ArgumentError(f"{name} must be a positive integer, got {value!r}")
        for name in ("image_size", "steps_per_epoch"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ArgumentError(f"{name} must be a positive integer, got {value!r}")
        for name in ("workers", "val_windows"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ArgumentError(f"{name} must be a non-negative integer, got {value!r}")
        if not self.lr > 0:
            raise ArgumentError(f"lr must be positive, got {self.lr!r}")
        checks = (
            ("lr_decay", 0 < self.lr_decay <= 1, "in (0, 1]"),
            ("weight_decay", self.weight_decay >= 0, "non-negative"),
            ("warmup", 0 <= self.warmup < 1, "in [0, 1)"),
            ("label_smoothing", 0 <= self.label_smoothing < 1, "in [0, 1)"),
            ("patience", self.patience >= 0, "non-negative (0 never stops early)"),
            ("max_grad_norm", self.max_grad_norm >= 0, "non-negative (0 does not clip)"),
            ("val_split", 0 < self.val_split < 1, "between 0 and 1"),
        )
        for name, ok, what in checks:
            if not ok:
                raise ArgumentError(f"{name} must be {what}, got {getattr(self, name)!r}")
        if self.device not in DEVICES:
            raise ArgumentError(f"unknown device {self.device!r}", f"use one of: {', '.join(DEVICES)}")
        if self.runtime not in RUNTIMES:
            raise ArgumentError(f"unknown runtime {self.runtime!r}", f"use one of: {', '.join(RUNTIMES)}")

    def training_args(self) -> dict[str, Any]:
        """The options that shape the result, as the model directory records them."""
        skip = {"output", "resume", "overwrite", "device", "workers", "runtime"}
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in skip}


@dataclass
class FinetuneResult:
    """What a fine-tune produced: the model directory, its metrics and the per-epoch history."""

    output: Path
    metrics: dict[str, Any]
    history: list[dict[str, float]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    features: str = "none"
    seconds: float = 0.0
    feature_pass: dict[str, Any] | None = None  # the ranks, and the samples each ran through the backbone (when computed)
    task_metrics: tuple[str, ...] = ()  # the names in `metrics` that a plugin task's metrics gave (zoo.tasks)

    @property
    def val_accuracy(self) -> float | None:
        return self.metrics.get("val_accuracy")

    def summary(self) -> dict[str, Any]:
        """Plain data: what `zoo finetune --json` prints."""
        return {
            "output": str(self.output),
            **self.metrics,
            "epochs_run": len(self.history),
            "features": self.features,
            "feature_pass": self.feature_pass,
            "data": self.data,
            "history": self.history,
            "seconds": round(self.seconds, 3),
        }
