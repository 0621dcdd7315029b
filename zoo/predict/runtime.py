"""The runtime behind `predict_files`: the model eager, or the whole model exported to ONNX and run by
ONNX Runtime.

``auto`` (the default), on a CPU with onnxruntime and a PyTorch model: an export of this model that is
cached already runs at once; otherwise the first batch runs eager (it warms up), the second runs
eager and is timed, and the model is exported when the images left would take eager longer than
``REUSE × export_estimate(model)``: the export is cached, so later runs of the model start in ONNX
Runtime, and a first run may spend on it up to about twice its own eager time. ``onnx`` exports (or
reuses) at once and fails loudly; ``eager`` never exports. A model that is an ONNX export already
(`zoo.predict.onnx_runtime.OnnxModel`) runs as it is.

The export goes through `zoo.export` (the ONNX exporter and its parity check) into the cache that
fine-tuning's backbones use, ``ZOO_HOME/backbones/<key>/`` (`zoo.finetuning.feature_runtime`: the
same checks on reuse: the sidecar's sha256, a passed parity check, standard operator domains only,
no external file it did not hash; anything else is deleted and exported again; nothing in it is ever
unpickled or imported). The key covers the weights' bytes (head included), the architecture and its
arguments, the preprocessing, the opset and the torch and onnx versions. The first batch ONNX
Runtime answers is checked against eager as well (its first `PARITY_IMAGES`, within `PARITY_ATOL`,
export's tolerance); how ONNX Runtime runs a batch is the fastest, on the next batches, of: on all
cores, on half of them (a shared machine's other work makes half the faster one), or cut into two
parts per core that run at once, one thread each (`OnnxRunner`'s lanes); PyTorch keeps one thread
meanwhile (the decoding thread's tensor ops). The process keeps the sessions, the thread choice and
the first-batch verdict for later runs of the same export while its file is unchanged, and the choice
is written beside the export (`runtime.json`) for the processes of the next hour on this machine. An export or
a check that fails makes ``auto`` fall back to eager with one warning.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from zoo.errors import ArgumentError, ExportError
from zoo.fsio import loads_json

RUNTIMES = ("auto", "eager", "onnx")
PARITY_ATOL = 1e-4  # zoo.export's default
REUSE = 0.5  # auto exports when the eager time left exceeds REUSE × the export's estimate
MODEL_VERSION = 1  # of what the whole-model key covers
PARITY_IMAGES = 4  # of the first batch, run eager as well to check ONNX Runtime's answers
TRIALS = 4  # batches each way of running ONNX Runtime runs while they are compared (the first one warms up)


@dataclass
class RuntimeReport:
    """What ran the model: `eager` or `onnx`, why, and whether the export was made or found cached.

    Attributes:
        runtime: eager or onnx.
        requested: what the caller asked for (auto, eager, onnx).
        reason: why, in a few words.
        export: ``exported`` (this run), ``cached`` (an earlier run's), or None.
        export_seconds: the export and its parity check, when this run made it.
        threads: ONNX Runtime's intra-op threads, as measured fastest on this run's first batches.
        lanes: the parts of a batch that run at once, each in its own session run (1: the batch in one).
    """

    runtime: str
    requested: str
    reason: str = ""
    export: str | None = None
    export_seconds: float | None = None
    threads: int | None = None
    lanes: int = 1

    def as_dict(self) -> dict[str, Any]:
        """Plain data, for `--json`."""
        return dict(self.__dict__)


class Runtime:
    """A function from a preprocessed batch [N, C, H, W] to class probabilities that runs eager or in
    ONNX Runtime as the module docstring says; `report` says which. Made by `predict_runtime`."""

    def __init__(self, model: Any, eager: Callable[[Any], Any], requested: str, images: int, threads: int | None):
        self.model, self.eager, self.images, self.threads = model, eager, images, threads
        self.report = RuntimeReport("eager", requested)
        self.runner: Any = None
        self.trials: list[tuple[Any, list[float]]] = []  # (runner, seconds per image) while threads are compared
        self.last: tuple[Any, float, int] | None = None  # the runner of the last batch, when it started, its images
        self.checked = False  # the first batch ONNX Runtime answers is compared with eager
        self.measuring = False  # auto, not cached: the second batch is timed
        self.torch_threads: int | None = None  # PyTorch's own, to restore, while ONNX Runtime runs with one
        self.done = 0

    def __call__(self, batch: Any) -> Any:
        if self.runner is not None:
            out = self._onnx(batch)
        elif self.measuring and self.done:
            out = self._measure(batch)
        else:
            out = self.eager(batch)
        self.done += len(batch)
        return out

    def _onnx(self, batch: Any) -> Any:
        import torch

        runner = min(self.trials, key=lambda trial: len(trial[1]))[0] if self.trials else self.runner
        start = time.perf_counter()
        if self.trials and self.last is not None:  # the whole step, decoding's share of the cores included
            previous, began, count = self.last
            self._timed(previous, (start - began) / max(1, count))
        self.last = (runner, start, len(batch)) if self.trials else None
        logits = runner(torch.from_numpy(batch.numpy()))[0]
        if not self.checked:
            self.checked = True
            expected = self.eager(batch[:PARITY_IMAGES])
            worst = float((logits[:PARITY_IMAGES].float().softmax(dim=-1) - expected).abs().max())
            if worst > PARITY_ATOL:
                problem = f"ONNX Runtime's probabilities differ from eager by {worst:.2g} on the first batch"
                return self._fallback(problem, self.eager(batch))
            _MATCHED.add((runner.path, _identity(runner.path)))
        return logits.float().softmax(dim=-1)

    def _timed(self, runner: Any, seconds: float) -> None:
        """Compare the ways to run on the first batches, each timed from its batch's start to the next
        one's (so a way that leaves decoding no core pays for it); keep the fastest once each ran TRIALS."""
        for candidate, samples in self.trials:
            if candidate is runner:
                samples.append(seconds)
        if self.trials and all(len(samples) >= TRIALS for _, samples in self.trials):
            self.runner = min(self.trials, key=lambda trial: sum(trial[1][1:]))[0]
            self.trials = []
            self.report.threads, self.report.lanes = _PICKED[self.runner.path] = (self.runner.threads, self.runner.lanes)
            remember(self.runner.path, self.runner.threads, self.runner.lanes)

    def _measure(self, batch: Any) -> Any:
        """auto: time a warm batch eager, then export when the images left pay for it."""
        self.measuring = False
        start = time.perf_counter()
        out = self.eager(batch)
        per_image = (time.perf_counter() - start) / max(1, len(batch))
        left = self.images - self.done - len(batch)
        estimate = REUSE * export_estimate(self.model)
        rule = f"{left} images × {per_image * 1000:.1f} ms eager = {left * per_image:.1f} s"
        if left * per_image > estimate:
            self.report.reason = f"auto: {rule} > {estimate:.0f} s, {REUSE:g} × the export's estimate"
            self._open(fallback=True)
        else:
            self.report.reason = f"auto: {rule} <= {estimate:.0f} s, {REUSE:g} × the export's estimate"
        return out

    def _open(self, fallback: bool, cached: Any = None) -> None:
        """Run ONNX Runtime from now on: `cached` (a runner on the checked cached export), else the
        cached export, made first when there is none."""
        try:
            self.runner = cached or open_export(self.model, model_key(self.model), self.report, self.threads)
        except (ExportError, OSError) as exc:  # OSError: the cache cannot be written
            if not fallback:
                raise
            problem = exc.message if isinstance(exc, ExportError) else f"{type(exc).__name__}: {exc}"
            self._fallback(f"the model could not be exported to ONNX ({problem})", None)
            return
        self.report.runtime = "onnx"
        self.report.export = self.report.export or "cached"
        cores, path = usable_cores(), self.runner.path
        if self.threads is None and path not in _PICKED and (earlier := remembered(path)) is not None:
            _PICKED[path] = earlier  # an earlier process's trials on this machine, lately
        threads, lanes = (self.threads, 1) if self.threads else _PICKED.get(path, (cores, 1))
        self.report.threads, self.report.lanes = threads, lanes  # until the trials (if any) pick
        self.checked = (path, _identity(path)) in _MATCHED
        if self.threads is None:  # ONNX Runtime's own default may count cores this process cannot use
            self.runner = session(path, threads, lanes)
        if self.threads is None and path not in _PICKED and cores > 1:
            # all cores on each batch; half of them (others need theirs); or one each, 2 parts per core at once
            self.trials = [(self.runner, []), (session(path, cores // 2), []), (session(path, 1, 2 * cores), [])]
        self.torch_threads = self.torch_threads or torch_threads(1)  # decoding's tensor ops: not on ONNX Runtime's cores

    def _fallback(self, problem: str, out: Any) -> Any:
        """Eager from now on (raise instead when ONNX was asked for); `out` passes through."""
        if self.report.requested == "onnx":
            raise ExportError(problem, "run with --runtime eager, and report the model")
        warnings.warn(f"{problem}; predicting eager", stacklevel=4)
        self.runner, self.trials, self.report.runtime = None, [], "eager"
        if self.torch_threads:
            torch_threads(self.torch_threads)
            self.torch_threads = None
        self.report.reason += "; fell back to eager"
        return out


@contextlib.contextmanager
def predict_runtime(model: Any, runtime: str = "auto", *, images: int = 0, threads: int | None = None) -> Iterator[Runtime]:
    """For the block, the function `predict_files` runs each batch through (see the module docstring).

    Args:
        model: a zoo image classifier, or an ONNX export standing in for one.
        runtime: auto, eager or onnx.
        images: how many images the run will see (auto weighs the export against them).
        threads: ONNX Runtime's intra-op threads, each batch in one run (default: all cores, half of
            them, or one thread per part of a batch cut into two parts per core that run at once,
            whichever runs the first batches faster).

    Yields:
        A `Runtime`; its `report` says what ran.

    Raises:
        ArgumentError: an unknown runtime, or onnx without onnxruntime or on a GPU.
        ExportError: onnx, and the export failed or does not match the model.
    """
    from zoo.finetuning.feature_runtime import onnxruntime_available
    from zoo.predict.images import forward_pass

    if runtime not in RUNTIMES:
        raise ArgumentError(f"unknown runtime {runtime!r}", f"choose one of {', '.join(RUNTIMES)}")
    with forward_pass(model) as eager:
        chosen = Runtime(model, eager, runtime, images, threads)
        if not is_torch_model(model):
            chosen.report.runtime, chosen.report.reason = "onnx", "an ONNX export"
        elif runtime == "eager":
            chosen.report.reason = "asked for"
        elif _device(model) != "cpu":
            _refuse_if(runtime == "onnx", "--runtime onnx runs on the CPU, and the model is on the GPU", "move it to the CPU, or use auto")
            chosen.report.reason = "auto: eager on a GPU"
        elif not onnxruntime_available():
            _refuse_if(runtime == "onnx", "--runtime onnx needs onnxruntime, which cannot be imported", "pip install onnxruntime")
            chosen.report.reason = "auto: onnxruntime is not installed"
        elif runtime == "onnx":
            chosen.report.reason = "asked for"
            chosen._open(fallback=False)
        elif (cached := _cached(model_key(model), threads)) is not None:
            chosen.report.reason = "auto: the export is cached"
            chosen._open(fallback=True, cached=cached)
        else:
            chosen.measuring, chosen.report.reason = True, "auto: one batch, too few to time: eager"
        try:
            yield chosen
        finally:
            if chosen.torch_threads:
                torch_threads(chosen.torch_threads)


def torch_threads(count: int) -> int:
    """Set PyTorch's intra-op threads to `count`; the number it had."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    return before


def _refuse_if(refused: bool, message: str, remedy: str) -> None:
    if refused:
        raise ArgumentError(message, remedy)


def is_torch_model(model: Any) -> bool:
    """Whether `model` is a PyTorch module (not an ONNX export standing in for one)."""
    import torch

    return isinstance(model, torch.nn.Module)


def _device(model: Any) -> str:
    parameter = next(model.parameters(), None)
    return parameter.device.type if parameter is not None else "cpu"


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, which a container's limit may narrow)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def export_estimate(model: Any) -> float:
    """Seconds the export and its parity check are expected to take (fine-tuning's estimate)."""
    from zoo.finetuning.feature_runtime import export_estimate as estimate

    return estimate(model)


def model_key(model: Any) -> str:
    """The cache key of a whole model's export: its tensors' bytes (head included), architecture and
    arguments, labels, preprocessing, opset, and the torch and onnx versions that export it."""
    import onnx
    import torch

    from zoo.finetuning.feature_runtime import OPSET
    from zoo.finetuning.features import tensor_digest

    info = model.zoo
    parts = {
        "version": MODEL_VERSION, "whole model": tensor_digest(model.state_dict()), "arch": info.arch,
        "arch_args": info.arch_args, "labels": info.labels, "preprocess": info.preprocess, "opset": OPSET,
        "torch": torch.__version__, "onnx": onnx.__version__,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


# The thread count the trials picked for an export, in this process: later runs start with it.
_PICKED: dict[Path, tuple[int, int]] = {}  # (threads, lanes)
# The exports (path, file identity) whose answers matched eager on a first batch in this process:
# the key names the model's weights, so a later run of the same file need not check again.
_MATCHED: set[tuple[Path, tuple[int, int, int]]] = set()
CHOICE = "runtime.json"  # beside a cached export: the way of running it that trials picked, on how many cores
CHOICE_SECONDS = 3600.0  # a remembered choice older than this is measured again (the machine's load changes)


def remembered(path: Path) -> tuple[int, int] | None:
    """The (threads, lanes) an earlier run's trials picked for the export at `path` on a machine with as
    many usable cores, within the last CHOICE_SECONDS; None when there is none or it is anything else
    (a file zoo wrote, read as hostile all the same: two small integers, nothing else is taken)."""
    choice = path.parent / CHOICE
    try:
        if time.time() - choice.stat().st_mtime > CHOICE_SECONDS:
            return None
        with choice.open("rb") as stream:
            data = loads_json(stream.read(4096))
    except (OSError, ValueError):
        return None
    cores = usable_cores()
    if not isinstance(data, dict) or data.get("cores") != cores:
        return None
    picked = (data.get("threads"), data.get("lanes"))
    if not all(type(v) is int and 1 <= v <= 4 * cores for v in picked):
        return None
    return picked


def remember(path: Path, threads: int, lanes: int) -> None:
    """Keep the trials' pick beside the export for the next processes (best effort: a read-only cache
    only means they measure again)."""
    from zoo.fsio import write_text

    with contextlib.suppress(OSError):
        write_text(path.parent / CHOICE, json.dumps({"cores": usable_cores(), "threads": threads, "lanes": lanes}))


# Sessions this process opened on the cached export it used last, by thread count, with the file's
# identity when it was checked: a later run reuses them (opening and checking lite0's costs 0.3 s)
# while the file is unchanged.
_OPENED: dict[tuple[Path, int | None, int], tuple[tuple[int, int, int], Any]] = {}


def _cached(key: str, threads: int | None) -> Any:
    """An OnnxRunner on the checked cached export under `key`, or None (an unsound one is deleted)."""
    from zoo.finetuning.feature_runtime import FILE, backbones_dir, cached_backbone

    path = backbones_dir() / key / FILE
    if _OPENED.get((path, threads, 1), (None,))[0] == _identity(path):
        return _OPENED[(path, threads, 1)][1]
    runner = cached_backbone(key)
    if runner is None:
        return None
    if {p for p, _, _ in _OPENED} != {path}:
        _OPENED.clear()
    _OPENED[(path, None, 1)] = (_identity(path), runner)
    return session(path, threads)


def session(path: Path, threads: int | None, lanes: int = 1) -> Any:
    """An OnnxRunner with `threads` and `lanes` on an export `_cached` checked (the one it opened, when it did)."""
    from zoo.predict.onnx_runtime import OnnxRunner

    opened = _OPENED.get((path, threads, lanes))
    if opened is not None and opened[0] == _identity(path):
        return opened[1]
    runner = OnnxRunner(path, threads, lanes)
    _OPENED[(path, threads, lanes)] = (_identity(path), runner)
    return runner


def _identity(path: Path) -> tuple[int, int, int]:
    """What tells a file's replacement or rewrite: its inode, size and modification time."""
    try:
        stat = path.stat()
    except OSError:
        return (-1, -1, -1)
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


def open_export(model: Any, key: str, report: RuntimeReport, threads: int | None = None) -> Any:
    """An OnnxRunner on the cached export of `model` under `key` (`model_key`), exported first when
    it is missing or unsound.

    Raises:
        ExportError: the export failed, its parity check did not pass, or it cannot be read back.
    """
    from zoo.exporting import export
    from zoo.finetuning.feature_runtime import FILE, OPSET, backbones_dir
    from zoo.fsio import lock_path, locked
    from zoo.registry import InputSpec

    folder = backbones_dir() / key
    with locked(lock_path(folder), f"the exported model {folder}", wait=600):
        runner = _cached(key, threads)
        if runner is not None:
            report.export = "cached"
            return runner
        start = time.perf_counter()
        folder.mkdir(parents=True, exist_ok=True)
        try:
            with _contiguous(model):
                export(model, folder / FILE, format="onnx", opset=OPSET, input_spec=InputSpec("image", tuple(model.zoo.preprocess["input_size"])))
        finally:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty: a failed export leaves no folder
        report.export, report.export_seconds = "exported", round(time.perf_counter() - start, 3)
        runner = _cached(key, threads)
    if runner is None:
        raise ExportError(f"the model exported to {folder} cannot be read back")
    return runner


@contextlib.contextmanager
def _contiguous(model: Any) -> Iterator[None]:
    """The model in its usual memory layout for the block (the exporter traces it), as it was after."""
    import torch

    channels_last = any(p.dim() == 4 and p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous() for p in model.parameters())
    model.to(memory_format=torch.contiguous_format)
    try:
        yield
    finally:
        if channels_last:
            model.to(memory_format=torch.channels_last)

