"""The parity check: an exported model must compute what the eager model computes, at new shapes.

`InputSignature` says what a model eats (images, token sequences or feature vectors) and draws
fresh random valid inputs of any batch size and length; `check_parity` feeds the same inputs to
the eager model and to the exported one and records the worst absolute difference per shape.
"""
from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch
from torch import nn

from zoo.errors import ArgumentError
from zoo.registry import InputSpec

BATCHES = (1, 2, 7)
LENGTHS = (1, 13, 64)
ATOL = 1e-4
DRAWS_AT_ONE_SHAPE = 3  # a static export admits one shape: draw several inputs at it instead
# An ill-conditioned model (a trained LSTM on random characters) is not reproducible to 1e-4 even
# by eager PyTorch itself: a shape above the tolerance is judged against a float64 run of the eager
# model, and passes when the export is within this many times eager float32's own error of it.
# Two correct float32 implementations land within a few times of each other (seen: up to 5.5×);
# an export bug lands orders of magnitude further.
FP32_SLACK = 10.0
# Float32 rounding moves an output by a small fraction of its scale; an eager result further than
# this from float64 means the model is not deterministic (or differs in float64): no judging then.
FP32_ROUNDING_LIMIT = 1e-3
BATCH, SEQ = "batch", "seq"
# Where a dynamic size of an InputSpec sits in a batched input: images [B, C, H, W], tokens [B, T].
AXES = {"height": 2, "width": 3, SEQ: 1}


@dataclass(frozen=True)
class InputSignature:
    """The input of a model: `kind` image (C, H, W), tokens (ids below `vocab_size`) or features (F,).

    Token samples never hold `pad_id`: padding is a batching device that eager models handle with
    data-dependent code (packed sequences), which an exported graph does not carry. `dynamic`
    gives the sizes besides the batch that vary (an InputSpec's), with their range: an image's
    height or width (`shape` holds their nominal size), a token sequence's length.
    """

    kind: str
    shape: tuple[int, ...] = ()
    vocab_size: int | None = None
    pad_id: int | None = None
    dynamic: Mapping[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def dim_names(self) -> dict[int, str]:
        """The input's variable dimensions: batch, the sequence length for tokens, the declared sizes."""
        names = {0: BATCH, 1: SEQ} if self.kind == "tokens" else {0: BATCH}
        return {**names, **{AXES[name]: name for name in self.dynamic}}

    def size_of(self, batch: int, length: int, sizes: Mapping[str, int] | None = None) -> tuple[int, ...]:
        """The input shape at this batch size and sequence length; `sizes` sets dynamic sizes by name."""
        if self.kind == "tokens":
            return (batch, int((sizes or {}).get(SEQ, length)))
        shape = [batch, *self.shape]
        for name, size in (sizes or {}).items():
            if name in self.dynamic:
                shape[AXES[name]] = int(size)
        return tuple(shape)

    def sample(
        self, batch: int, length: int, generator: torch.Generator | None = None, sizes: Mapping[str, int] | None = None
    ) -> torch.Tensor:
        """Random valid input: token ids in [0, vocab), or standard-normal values (normalised pixels)."""
        size = self.size_of(batch, length, sizes)
        if self.kind == "tokens":
            if self.pad_id is None:
                return torch.randint(0, self.vocab_size or 2, size, generator=generator)
            ids = torch.randint(0, (self.vocab_size or 2) - 1, size, generator=generator)
            return ids + (ids >= self.pad_id).long()  # every id but the pad id, equally likely
        return torch.randn(size, generator=generator)

    def nominal_sizes(self) -> dict[str, int]:
        """The declared image sizes at their nominal value (what `shape` says)."""
        return {name: self.shape[AXES[name] - 1] for name in self.dynamic if name != SEQ}

    def values(self, name: str) -> list[int]:
        """At least three sizes of the dynamic dimension `name` to check: its smallest, nominal, largest."""
        low, high = self.dynamic[name]
        found = sorted({low, high, self.nominal_sizes().get(name, (low + high) // 2)})
        middle = [(low + high) // 2] if len(found) < 3 and high - low > 1 else []
        return sorted({*found, *middle})

    def to_dict(self) -> dict[str, Any]:
        dynamic = {name: list(bounds) for name, bounds in self.dynamic.items()}
        return {"kind": self.kind, "shape": list(self.shape), "vocab_size": self.vocab_size, "pad_id": self.pad_id, "dynamic": dynamic}


def signature_of(model: nn.Module, input_spec: InputSpec | None = None) -> InputSignature:
    """What `model` takes: from `input_spec`, else from its architecture's InputSpec and `model.zoo`.

    The model itself settles what the spec leaves open: the vocabulary is its first embedding's
    size, an image size comes from its preprocessing (or timm's `pretrained_cfg`).

    Raises:
        ArgumentError: nothing says what the model takes.
    """
    info = getattr(model, "zoo", None)
    spec = input_spec or _registered_input(info)
    args: Mapping[str, Any] = info.arch_args if info is not None else {}
    if spec is None:
        kind = "image" if _image_size(model, info) else None
        if kind is None:
            raise ArgumentError(
                f"cannot tell what input {type(model).__name__} takes",
                "pass input_spec=zoo.InputSpec('image', (3, 224, 224)) (or 'tokens' / 'features')",
            )
        spec = InputSpec("image")
    if spec.kind == "tokens":
        vocab = _embedding_size(model) or spec.vocab_size or args.get("vocab_size")
        if not vocab:
            raise ArgumentError(f"{type(model).__name__} takes tokens but its vocabulary size is unknown",
                                "pass input_spec=zoo.InputSpec('tokens', vocab_size=N)")
        pad_id = getattr(model, "pad_id", None)
        return InputSignature("tokens", (), int(vocab), int(pad_id) if isinstance(pad_id, int) else None, spec.dynamic)
    if spec.kind == "image":
        if input_spec is not None and input_spec.shape:
            return InputSignature("image", _chw(input_spec.shape, {}), dynamic=spec.dynamic)
        return InputSignature("image", _image_shape(spec.shape, _image_size(model, info), args), dynamic=spec.dynamic)
    width = args.get("in_features") if input_spec is None else None
    return InputSignature("features", (int(width),) if width else spec.shape)


def _registered_input(info: Any) -> InputSpec | None:
    if info is None:
        return None
    from zoo.registry import default_registry

    arch = default_registry().archs.get(info.arch)
    return arch.input if arch is not None else None


def _embedding_size(model: nn.Module) -> int | None:
    embedding = next((m for m in model.modules() if isinstance(m, nn.Embedding)), None)
    return embedding.num_embeddings if embedding is not None else None


def _image_size(model: nn.Module, info: Any) -> Sequence[int] | None:
    preprocess = dict(info.preprocess) if info is not None and info.preprocess else {}
    cfg = getattr(model, "pretrained_cfg", None) or {}
    return preprocess.get("input_size") or cfg.get("input_size")


def _image_shape(declared: Sequence[int], preprocessed: Sequence[int] | None, args: Mapping[str, Any]) -> tuple[int, ...]:
    """(C, H, W): the size the weights were prepared for, else the architecture's own; the
    `in_chans` and `img_size` arguments the model was built with override the declared ones."""
    channels, *side = _chw(preprocessed or declared, {})
    if not preprocessed and args.get("img_size"):
        side = list(_chw(args["img_size"], {"in_chans": channels})[1:])
    return (int(args.get("in_chans", channels)), *side)


def _chw(size: Sequence[int] | int, args: Mapping[str, Any]) -> tuple[int, ...]:
    """(C, H, W) from a timm-style input size, a square side, or a (H, W) pair."""
    if isinstance(size, int):
        size = (size, size)
    size = tuple(int(s) for s in size)
    if len(size) == 2:
        size = (int(args.get("in_chans", 3)), *size)
    if len(size) != 3:
        raise ArgumentError(f"an image input size must be (C, H, W), got {size}", "pass input_spec=zoo.InputSpec('image', (C, H, W))")
    return size


def flatten_outputs(output: Any) -> list[torch.Tensor]:
    """The tensors of a (nested) output in order: tuples, lists, dict values."""
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, Mapping):
        return [t for value in output.values() for t in flatten_outputs(value)]
    if isinstance(output, (tuple, list)):
        return [t for item in output for t in flatten_outputs(item)]
    raise ArgumentError(f"model output of type {type(output).__name__} cannot be exported", "return tensors")


@torch.no_grad()
def probe_output_dims(model: nn.Module, signature: InputSignature, batch: int, length: int) -> list[dict[int, str]]:
    """Which dimension of each output follows the batch size (and the sequence length, and each
    declared dynamic size), found by running the model at other shapes: the names the exported
    outputs' dimensions get. An output dimension that follows a declared size without equalling it
    (a CRNN's columns follow the image width) is named ``<name>_out``."""
    def shapes(b: int, t: int, sizes: Mapping[str, int] | None = None) -> list[tuple[int, ...]]:
        return [tuple(o.shape) for o in flatten_outputs(model(_on(model, signature.sample(b, t, sizes=sizes))))]

    base = shapes(batch, length)
    varied = {BATCH: shapes(batch + 1, length)}
    if signature.kind == "tokens":
        varied[SEQ] = shapes(batch, length + 1)
    own_size = {}
    for name, size in signature.nominal_sizes().items():
        low, high = signature.dynamic[name]
        other = 2 * size if 2 * size <= high else low
        if other != size:
            varied[name] = shapes(batch, length, {name: other})
            own_size[name] = (size, other)
    dims: list[dict[int, str]] = [{} for _ in base]
    for name, other in varied.items():
        for out, (a, b) in enumerate(zip(base, other)):
            for axis, (x, y) in enumerate(zip(a, b)):
                if x != y:
                    same = name not in own_size or own_size[name] == (x, y)
                    dims[out].setdefault(axis, name if same else f"{name}_out")
    return dims


def _on(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    param = next(model.parameters(), None)
    return x.to(param.device) if param is not None else x


@dataclass
class ParityCase:
    """One input shape: the worst |exported - eager| over all outputs, or why it could not be compared."""

    input_shape: tuple[int, ...]
    output_shapes: list[tuple[int, ...]] = field(default_factory=list)
    max_abs_diff: float = math.inf
    error: str | None = None
    float64: dict[str, float] | None = None  # {"export_error", "eager_error", "scale"} against a float64 run

    def within(self, atol: float) -> bool:
        """Within `atol` of eager, or (above it) no less accurate than eager float32 against float64."""
        if self.error is not None:
            return False
        if self.max_abs_diff <= atol:
            return True
        ref = self.float64
        if ref is None or ref["eager_error"] > FP32_ROUNDING_LIMIT * max(1.0, ref["scale"]):
            return False
        return ref["export_error"] <= atol + FP32_SLACK * ref["eager_error"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_shape": list(self.input_shape),
            "output_shapes": [list(s) for s in self.output_shapes],
            "max_abs_diff": self.max_abs_diff if math.isfinite(self.max_abs_diff) else None,
            "error": self.error,
            "float64": self.float64,
        }


@dataclass
class ParityReport:
    """Every shape tried, the tolerance, and whether all of them stayed within it."""

    atol: float
    cases: list[ParityCase]

    @property
    def worst(self) -> ParityCase:
        return max(self.cases, key=lambda c: (c.max_abs_diff if not math.isnan(c.max_abs_diff) else math.inf))

    @property
    def passed(self) -> bool:
        return bool(self.cases) and all(c.within(self.atol) for c in self.cases)

    def summary(self) -> str:
        worst = self.worst
        where = "×".join(map(str, worst.input_shape))
        detail = worst.error or f"worst |Δ| {worst.max_abs_diff:.3g}"
        verdict = "passed" if self.passed else "FAILED"
        judged = [c for c in self.cases if c.error is None and c.max_abs_diff > self.atol and c.float64]
        note = f"; {len(judged)} above it judged against float64" if judged else ""
        return f"parity {verdict}: {detail} at input {where} ({len(self.cases)} shapes, atol {self.atol:g}{note})"

    def to_dict(self) -> dict[str, Any]:
        worst = self.worst
        return {
            "passed": self.passed,
            "atol": self.atol,
            "worst_abs_diff": worst.max_abs_diff if math.isfinite(worst.max_abs_diff) else None,
            "worst_input_shape": list(worst.input_shape),
            "shapes": [list(c.input_shape) for c in self.cases],
            "cases": [c.to_dict() for c in self.cases],
        }


def parity_shapes(
    signature: InputSignature,
    fixed: Mapping[str, int],
    batches: Iterable[int] = BATCHES,
    lengths: Iterable[int] = LENGTHS,
) -> list[dict[str, int]]:
    """The sizes to try, by dimension name: every batch size with every sequence length (a
    declared range gives its own lengths, `InputSignature.values`), then each declared image size
    at its smallest, nominal and largest value with the middle batch size (an image's sizes cost
    more than a batch). A dimension the export fixed keeps its fixed size."""
    axes: dict[str, list[int]] = {BATCH: list(batches)}
    if signature.kind == "tokens":
        axes[SEQ] = signature.values(SEQ) if SEQ in signature.dynamic else list(lengths)
    axes = {name: [fixed[name]] if name in fixed else sizes for name, sizes in axes.items()}
    shapes = [dict(zip(axes, sizes)) for sizes in itertools.product(*axes.values())]
    pivot = {name: sizes[len(sizes) // 2] for name, sizes in axes.items()}
    for name in signature.nominal_sizes():
        shapes += [{**pivot, name: size} for size in ([fixed[name]] if name in fixed else signature.values(name))]
    unique = list({signature.size_of(s[BATCH], s.get(SEQ, 1), s): s for s in shapes}.values())
    return unique * DRAWS_AT_ONE_SHAPE if len(unique) == 1 else unique


@torch.no_grad()
def check_parity(
    model: nn.Module,
    exported: Callable[[torch.Tensor], Any],
    signature: InputSignature,
    *,
    fixed: Mapping[str, int] | None = None,
    atol: float = ATOL,
    batches: Iterable[int] = BATCHES,
    lengths: Iterable[int] = LENGTHS,
    seed: int = 0,
) -> ParityReport:
    """Compare `exported(x)` with `model(x)` on fresh random inputs at every shape `parity_shapes` gives.

    Args:
        model: the eager model (in eval mode).
        exported: the exported model, loaded back: a callable from an input tensor to its outputs.
        signature: what the model takes.
        fixed: dimensions the export fixed (``{"batch": 1}`` for a static export).
        atol: the largest absolute difference allowed.
        batches, lengths: the sizes to try (lengths only for token inputs without a declared range);
            each declared dynamic size is tried at its smallest, nominal and largest value.
        seed: the seed of the random inputs.

    Returns:
        A ParityReport; `passed` is False when any shape fails to run, gives outputs of another
        shape, or differs beyond `atol` while being less accurate than eager float32 (by more than
        FP32_SLACK times) against a float64 run of the eager model.
    """
    if not atol >= 0:
        raise ArgumentError(f"the tolerance must be a non-negative number, got {atol}")
    generator = torch.Generator().manual_seed(seed)
    cases = []
    model64: list[nn.Module] = []  # built on first need: most models never need it
    for sizes in parity_shapes(signature, fixed or {}, batches, lengths):
        x = signature.sample(sizes[BATCH], sizes.get(SEQ, 1), generator, sizes=sizes)
        want = flatten_outputs(model(_on(model, x)))
        case, got = _compare(want, exported, x)
        if case.error is None and case.max_abs_diff > atol:
            case.float64 = _against_float64(model, model64, x, want, got)
        cases.append(case)
    return ParityReport(atol=atol, cases=cases)


def _against_float64(
    model: nn.Module, model64: list[nn.Module], x: torch.Tensor, want: list[torch.Tensor], got: list[torch.Tensor]
) -> dict[str, float] | None:
    """How far eager float32 and the export each are from the eager model run in float64."""
    try:
        if not model64:
            model64.append(copy.deepcopy(model).double())
        exact = flatten_outputs(model64[0](_on(model, x if x.dtype == torch.long else x.double())))
    except Exception:  # a model that cannot run in float64 is judged by the tolerance alone
        return None

    def distance(outputs: list[torch.Tensor]) -> float:
        return max((o.detach().cpu().double() - e.cpu()).abs().max().item() for o, e in zip(outputs, exact) if o.numel())

    scale = max((e.abs().max().item() for e in exact if e.numel()), default=0.0)
    return {"export_error": distance(got), "eager_error": distance(want), "scale": scale}


def _compare(
    want: list[torch.Tensor], exported: Callable[[torch.Tensor], Any], x: torch.Tensor
) -> tuple[ParityCase, list[torch.Tensor]]:
    case = ParityCase(input_shape=tuple(x.shape), output_shapes=[tuple(w.shape) for w in want])
    try:
        got = flatten_outputs(exported(x))
    except Exception as exc:  # an exported graph that rejects a valid shape is a parity failure
        case.error = f"the exported model failed: {type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}"
        return case, []
    if len(got) != len(want):
        case.error = f"the exported model returned {len(got)} outputs, eager {len(want)}"
        return case, got
    worst = 0.0
    for i, (a, b) in enumerate(zip(got, want)):
        if tuple(a.shape) != tuple(b.shape):
            case.error = f"output {i} has shape {tuple(a.shape)}, eager {tuple(b.shape)}"
            return case, got
        if a.numel():
            diff = (a.detach().cpu().double() - b.detach().cpu().double()).abs().max().item()
            worst = max(worst, math.inf if math.isnan(diff) else diff)
    case.max_abs_diff = worst
    return case, got
