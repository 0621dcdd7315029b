"""The runtime of the cached-feature pass: torch eager, or the frozen backbone in ONNX Runtime.

With `--runtime onnx` (or `auto`, when it pays), the backbone up to `pre_logits` is exported once
by `zoo.export` (the ONNX exporter and its parity check, like any export), kept in
``ZOO_HOME/backbones/<key>/`` (the key: the weights' sha256, the architecture, the preprocessing,
the opset), and run by `zoo.predict.onnx_runtime.OnnxRunner`. A cached export is used only when its
sidecar's sha256 still match its files, its parity check passed, it names no operator domain
outside the standard ones and its own functions, and every external tensor it reads is a file of
its own folder that the sidecar hashed; anything else is deleted and exported again.

The `auto` rule, on a CPU with onnxruntime and an image model: a cached export is free, so ONNX
Runtime runs; otherwise the first batch runs eager (it warms up), the second runs eager and is
timed, and the backbone is exported when
``images left × eager s/image × (1 - 1/ORT_SPEEDUP) > PAYBACK × EXPORT_SECONDS_PER_MODULE × leaf modules``.
On a GPU, and for text models, the pass runs eager.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import time
import warnings
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np
import torch
from torch import nn

from zoo.errors import ArgumentError, ExportError
from zoo.finetuning.features import pre_logits

OPSET = 20  # what torch 2.14's dynamo exporter writes; part of the key
BACKBONE_VERSION = 1
FILE = "backbone.onnx"
# Measured on the shared 2-core CPU (docs/performance.md): ORT ran lite0's backbone 4.9-8x faster
# than eager; 4 keeps the rule on the safe side. Its export took 22 s plus 10 s of parity check
# for 198 leaf modules.
ORT_SPEEDUP = 4.0
EXPORT_SECONDS_PER_MODULE = 0.16
# A busy machine slows eager PyTorch more than the export (lite0 at load 13: eager 17x slower per
# image, the export 3.5x), so the saving must cover the estimate twice over.
PAYBACK = 2.0
_STANDARD_DOMAINS = {"", "ai.onnx", "ai.onnx.ml"}


def onnxruntime_available() -> bool:
    """Whether onnxruntime can be imported."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def check_runtime(runtime: str, *, task: str, feature_pass: bool, device: torch.device) -> None:
    """Refuse, before training, a runtime this run cannot use.

    Raises:
        ArgumentError: `onnx` for a text model, on a GPU, for a run that has
            no cached feature pass, or without onnxruntime.
    """
    if runtime != "onnx":
        return
    if task != "image-classification":
        raise ArgumentError("--runtime onnx runs the feature pass of image models; text models run eager", "drop --runtime onnx")
    if not feature_pass:
        raise ArgumentError(
            "--runtime onnx runs the cached feature pass, and this run has none (the backbone trains, or runs every "
            "epoch with --augment or --no-cache)",
            "drop --runtime onnx, or use --strategy head without --augment and --no-cache",
        )
    if device.type != "cpu":
        raise ArgumentError("--runtime onnx runs the backbone on the CPU, and this run is on the GPU",
                            "pass --device cpu, or --runtime auto (eager on a GPU)")
    if not onnxruntime_available():
        raise ArgumentError("--runtime onnx needs onnxruntime, which cannot be imported",
                            "pip install onnxruntime, or pass --runtime eager")


def backbone_key(identity: str, model_id: str, preprocess: Mapping[str, Any]) -> str:
    """The cache key of an exported backbone: weights, architecture, preprocessing, opset."""
    parts = {"version": BACKBONE_VERSION, "backbone": identity, "model": model_id, "preprocess": preprocess, "opset": OPSET}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def model_id(model: nn.Module) -> str:
    """The architecture and its arguments, but the head's size (which does not change the features)."""
    arch_args = {k: v for k, v in model.zoo.arch_args.items() if k != "num_classes"}
    return json.dumps([model.zoo.arch, arch_args], sort_keys=True, default=str)


def backbones_dir() -> Path:
    """ZOO_HOME/backbones: one folder per exported backbone."""
    from zoo.cache import zoo_home

    return zoo_home() / "backbones"


class Backbone(nn.Module):
    """A model's `pre_logits` as a module of its own: what the exporter writes."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.zoo = getattr(model, "zoo", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pre_logits(self.model, x)


class FeatureRuntime:
    """Runs the backbone on each batch of the feature pass (eager or ONNX Runtime); `summary()` says what ran.

    Use `choose_runtime` to make one.
    """

    def __init__(self, model: nn.Module, requested: str, key: str, preprocess: Mapping[str, Any], images: int):
        self.model, self.requested, self.key, self.preprocess, self.images = model, requested, key, preprocess, images
        self.name, self.reason = "eager", ""
        self.backbone: str | None = None  # exported | cached
        self.export_seconds: float | None = None
        self.runner: Any = None
        self.measuring = False  # auto, undecided: the second batch is timed
        self.done = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.runner is not None:  # a contiguous copy made by numpy, which a busy CPU slows far less than torch
            out = self.runner(torch.from_numpy(np.ascontiguousarray(x.numpy())))[0]
        elif self.measuring and self.done:
            out = self._measure(x)
        else:
            out = pre_logits(self.model, x)
        self.done += len(x)
        return out

    def _measure(self, x: torch.Tensor) -> torch.Tensor:
        """auto: time a warm batch eager, then decide whether exporting pays for the images left."""
        self.measuring = False
        start = time.perf_counter()
        out = pre_logits(self.model, x)
        per_image = (time.perf_counter() - start) / max(1, len(x))
        left = self.images - self.done - len(x)
        saving = left * per_image * (1 - 1 / ORT_SPEEDUP)
        estimate = export_estimate(self.model)
        rule = f"{left} images × {per_image * 1000:.1f} ms eager × (1 - 1/{ORT_SPEEDUP:g}) = {saving:.1f} s saved"
        if saving > PAYBACK * estimate:
            self.reason = f"auto: {rule} > {PAYBACK:g} × about {estimate:.0f} s to export"
            self._open_onnx(fallback=True)
        else:
            self.reason = f"auto: {rule} <= {PAYBACK:g} × about {estimate:.0f} s to export"
        return out

    def _open_onnx(self, fallback: bool) -> None:
        try:
            self.runner = open_backbone(self.model, self.key, self.preprocess, self)
        except ExportError as exc:
            if not fallback:
                raise
            warnings.warn(f"the backbone could not be exported to ONNX ({exc.message}); the feature pass runs eager", stacklevel=3)
            self.reason += "; export failed, eager"
            return
        self.name = "onnx"

    def summary(self) -> dict[str, Any]:
        """Plain data for the training summary: the runtime, why, and whether the backbone was exported."""
        return {
            "runtime": self.name, "requested": self.requested, "reason": self.reason,
            "backbone": self.backbone, "export_seconds": self.export_seconds,
        }


def feature_batches(inputs: Any, dataset: Any, device: torch.device) -> Iterable[tuple[Any, torch.Tensor]]:
    """The feature pass's batches of `dataset`: decoded and normalised per batch when its transform
    allows (zoo.data.device_decode: on a GPU, JPEGs decoded there), else the inputs' own loader."""
    from zoo.data.device_decode import fast_batches

    found = fast_batches(dataset, inputs.batch_size, device, inputs.workers) if inputs.collate is None else None
    return found if found is not None else inputs.loader(dataset)


def export_estimate(model: nn.Module) -> float:
    """Seconds an export with its parity check is expected to take (from the leaf module count)."""
    leaves = sum(1 for m in model.modules() if next(m.children(), None) is None)
    return EXPORT_SECONDS_PER_MODULE * leaves


def choose_runtime(
    model: nn.Module, runtime: str, *, task: str, device: torch.device, identity: str, model_id: str,
    preprocess: Mapping[str, Any], images: int,
) -> FeatureRuntime:
    """The runtime of a feature pass over `images` images (see the module docstring for `auto`).

    Args:
        model: the model, frozen, in eval mode.
        runtime: auto, eager or onnx (checked by `check_runtime`).
        task: the data's task (text models run eager).
        device: where the pass runs (a GPU runs eager).
        identity: the backbone's weights sha256 (or a hash of its tensors).
        model_id: the architecture and its arguments, as the feature cache keys them.
        preprocess: the images' preprocessing (its input_size is the export's).
        images: how many images the pass will run.

    Raises:
        ExportError: `onnx`, and the export failed or did not match the model.
    """
    chosen = FeatureRuntime(model, runtime, backbone_key(identity, model_id, preprocess), preprocess, images)
    if runtime == "eager":
        chosen.reason = "asked for"
    elif runtime == "onnx":
        chosen.reason = "asked for"
        chosen._open_onnx(fallback=False)
    elif device.type != "cpu":
        chosen.reason = "auto: eager on a GPU"
    elif task != "image-classification":
        chosen.reason = "auto: text models run eager"
    elif not onnxruntime_available():
        chosen.reason = "auto: onnxruntime is not installed"
    elif cached_backbone(chosen.key) is not None:
        chosen.reason = "auto: the exported backbone is cached"
        chosen._open_onnx(fallback=True)
    else:
        chosen.measuring, chosen.reason = True, "auto: one batch, too few to time: eager"
    return chosen


def open_backbone(model: nn.Module, key: str, preprocess: Mapping[str, Any], runtime: FeatureRuntime) -> Any:
    """An OnnxRunner on the cached export under `key`, exporting it first when it is missing or unsound.

    Raises:
        ExportError: the export failed, or its parity check did not pass.
    """
    from zoo.fsio import lock_path, locked

    folder = backbones_dir() / key
    with locked(lock_path(folder), f"the exported backbone {folder}", wait=600):
        runner = cached_backbone(key)
        if runner is not None:
            runtime.backbone = "cached"
            return runner
        start = time.perf_counter()
        export_backbone(model, folder, preprocess)
        runtime.export_seconds = round(time.perf_counter() - start, 3)
        runtime.backbone = "exported"
        runner = cached_backbone(key)
    if runner is None:
        raise ExportError(f"the backbone exported to {folder} cannot be read back", "report the model; --runtime eager works")
    return runner


def export_backbone(model: nn.Module, folder: Path, preprocess: Mapping[str, Any]) -> None:
    """Export `pre_logits` of `model` into `folder` through `zoo.export` (parity checked), on the CPU."""
    from zoo.exporting import export
    from zoo.registry import InputSpec

    folder.mkdir(parents=True, exist_ok=True)
    try:
        export(Backbone(model), folder / FILE, format="onnx", opset=OPSET, input_spec=InputSpec("image", tuple(preprocess["input_size"])))
    except BaseException:
        with contextlib.suppress(OSError):
            folder.rmdir()  # a failed export leaves no folder (its staging folder is gone already)
        raise


def cached_backbone(key: str) -> Any:
    """An OnnxRunner on the export cached under `key`, or None. An export that fails any check is
    deleted (a warning names the problem) and None is returned, so that it is exported again."""
    folder = backbones_dir() / key
    path, sidecar = folder / FILE, folder / f"{FILE}.json"
    if not folder.is_dir() or not (path.exists() or sidecar.exists()):
        return None
    try:
        _check_export(path, sidecar)
        from zoo.predict.onnx_runtime import OnnxRunner

        return OnnxRunner(path)
    except (ExportError, ArgumentError) as exc:
        problem = exc.message
    except Exception as exc:  # onnx's and onnxruntime's own error types for a damaged graph
        problem = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ''}"
    warnings.warn(f"the exported backbone in {folder} is unusable ({problem}); exporting it again", stacklevel=3)
    shutil.rmtree(folder, ignore_errors=True)
    return None


def _check_export(path: Path, sidecar: Path) -> None:
    """The sidecar's hashes, its parity verdict, the graph's operator domains and external files.

    Raises:
        ExportError: any of them is wrong.
    """
    import onnx

    from zoo.exporting import check_files, read_sidecar

    if not path.is_file() or not sidecar.is_file():
        raise ExportError(f"{path.name} or its sidecar is missing (an interrupted export)")
    record = read_sidecar(sidecar)
    if "sha256" not in record:
        raise ExportError(f"{sidecar.name} names no sha256")
    check_files(path, sidecar, record)
    if not (record.get("parity") or {}).get("passed"):
        raise ExportError(f"{sidecar.name} records no passed parity check")
    graph = onnx.load(str(path), load_external_data=False)
    own = {f.domain for f in graph.functions}
    foreign = sorted({o.domain for o in graph.opset_import} - _STANDARD_DOMAINS - own)
    if foreign:
        raise ExportError(f"{path.name} uses operators of the custom domain(s) {', '.join(foreign)}")
    hashed = set(record.get("data_sha256") or {})
    for tensor in _tensors(graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        if Path(location).name != location or location not in hashed:
            raise ExportError(f"{path.name} reads external data {location!r}, not a file of its own folder that its sidecar hashed")


def _tensors(graph: Any) -> Iterator[Any]:
    """Every tensor of an ONNX model: initializers and attribute tensors, in subgraphs and functions too."""
    import onnx

    def walk(nodes: Any, initializers: Any = ()) -> Iterator[Any]:
        yield from initializers
        for node in nodes:
            for attribute in node.attribute:
                if attribute.type == onnx.AttributeProto.TENSOR:
                    yield attribute.t
                yield from attribute.tensors
                for sub in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
                    yield from walk(sub.node, sub.initializer)

    yield from walk(graph.graph.node, graph.graph.initializer)
    for function in graph.functions:
        yield from walk(function.node)
