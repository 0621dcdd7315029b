"""The plugin author's conformance kit: every architecture and weight a plugin registers, checked.

One line in a plugin's tests::

    from zoo.testing import check_plugin

    def test_conformance():
        check_plugin("zoo_tinynet")

or one test per check (a failure names the check and the architecture in the test id)::

    import pytest
    from zoo.testing import plugin_checks

    @pytest.mark.parametrize("check", plugin_checks("zoo_tinynet"), ids=str)
    def test_conformance(check):
        check.run()

The checks (`CHECKS`): importing the plugin's entry module imports no torch; each declared
`num_params` equals a meta-device build; a forward pass on a random valid input has the right shape;
the head protocol holds; a state dict survives a model directory; ONNX export passes the parity
check (skipped when onnx is not installed); each declared sha256 matches its file when the file is
here; each architecture's task is registered, and a task the plugin registers itself imports its code
and decodes, prints and scores a forward pass on a tiny batch. torch is imported inside the checks only.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import subprocess
import sys
import tempfile
import unittest
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from zoo.errors import ZooError
from zoo.registry import ArchSpec, Registry, WeightSpec

CHECKS = ("import", "num_params", "forward", "head", "round_trip", "onnx", "sha256", "task")
BATCH = 2
NEW_CLASSES = 3


class ConformanceError(ZooError, AssertionError):
    """A plugin broke one or more of the kit's checks; the message names each check, subject and fix."""


class CheckSkipped(unittest.SkipTest):
    """A check that cannot run here (pytest reports it as skipped, with the reason)."""


class _Failed(Exception):
    """One check's finding: what is wrong, and what to fix."""

    def __init__(self, problem: str, fix: str):
        super().__init__(problem)
        self.problem, self.fix = problem, fix


@dataclass(frozen=True)
class Check:
    """One check of one architecture or weight (or of the plugin's entry module, for `import`)."""

    name: str
    subject: str
    plugin: str
    _run: Callable[[], None]
    kind: str = ""  # what `subject` is, when the check's name does not say (a task)

    def __str__(self) -> str:
        return f"{self.name}[{self.subject}]"

    def run(self) -> None:
        """Pass silently, raise ConformanceError naming the check, subject and fix, or CheckSkipped."""
        try:
            self._run()
        except _Failed as found:
            raise ConformanceError(self.describe(found.problem), found.fix) from None
        except (CheckSkipped, KeyboardInterrupt):
            raise
        except ZooError as exc:  # zoo's own finding (a half-built model, a strict load, ...) with its remedy
            raise ConformanceError(self.describe(exc.message), exc.remedy or "") from exc
        except Exception as exc:  # a crash inside the plugin is a finding too
            raise ConformanceError(
                self.describe(f"raised {type(exc).__name__}: {exc}"), "make it pass; run the check alone to see the traceback"
            ) from exc

    def describe(self, problem: str) -> str:
        kind = self.kind or ("module" if self.name == "import" else "weights" if self.name == "sha256" else "architecture")
        return f"check {self.name!r} failed for {kind} {self.subject!r} (plugin {self.plugin}): {problem}"


def check_plugin(plugin: str, *, skip: Iterable[str] = (), archs: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """Run every check on the plugin whose entry module is `plugin`.

    Args:
        plugin: the module the plugin's `zoo` entry point names (e.g. "zoo_tinynet").
        skip: names from CHECKS to leave out.
        archs: only these architectures (and their weights); default all the plugin registers.

    Returns:
        (check, reason) for each check that was skipped.

    Raises:
        ConformanceError: one or more checks failed; the message has one line per failure.
    """
    failures, skipped = [], []
    for check in plugin_checks(plugin, skip=skip, archs=archs):
        try:
            check.run()
        except ConformanceError as exc:
            failures.append(str(exc))
        except CheckSkipped as exc:
            skipped.append((str(check), str(exc)))
    if failures:
        raise ConformanceError(f"{len(failures)} check(s) failed:\n" + "\n".join(failures))
    return skipped


def plugin_checks(plugin: str, *, skip: Iterable[str] = (), archs: Iterable[str] | None = None) -> list[Check]:
    """The checks of `check_plugin`, one `Check` each, to parametrise a test with (see the module docstring)."""
    unknown = sorted(set(skip) - set(CHECKS))
    if unknown:
        raise ZooError(f"unknown check(s) {', '.join(unknown)}", f"use names from {', '.join(CHECKS)}")
    name, registry, tasks = _registry_with(plugin)
    wanted = set(archs) if archs is not None else None
    specs = [a for a in registry.archs.values() if a.plugin == name and (wanted is None or a.name in wanted)]
    weights = [w for w in registry.weights.values() if w.plugin == name and any(w.arch == a.name for a in specs)]
    checks = [Check("import", plugin, name, lambda: _imports_no_torch(plugin))]
    for arch in specs:
        for check in ("num_params", "forward", "head", "round_trip", "onnx"):
            checks.append(Check(check, arch.name, name, _bind(_ARCH_CHECKS[check], arch, registry)))
    checks += [Check("sha256", w.id, name, _bind(_sha256_matches, w)) for w in weights if any(s.sha256 for s in w.sources)]
    checks += [Check("task", arch.name, name, _bind(_arch_task, arch, tasks, name)) for arch in specs]
    checks += [Check("task", task.name, name, _bind(_task_code, task), kind="task") for task in tasks.values() if task.plugin == name]
    return [c for c in checks if c.name not in set(skip)]


def _bind(function: Callable[..., None], *args: Any) -> Callable[[], None]:
    return lambda: function(*args)


def _registry_with(module_name: str) -> tuple[str, Registry, dict[str, Any]]:
    """The plugin's name, a registry of the built-in plugins plus it (registered under its entry-point
    name), and the tasks they register."""
    from zoo.plugins import BUILTIN_PLUGINS, get_plugin_manager
    from zoo.tasks import tasks_of

    pm = get_plugin_manager(entry_points=False)
    name = module_name
    if module_name not in BUILTIN_PLUGINS:
        entry = next((ep for ep in importlib.metadata.entry_points(group="zoo") if ep.value == module_name), None)
        name = entry.name if entry is not None else module_name
        pm.add(importlib.import_module(module_name), name, version=entry.dist.version if entry and entry.dist else None)
    registry = Registry.from_plugin_manager(pm, files=[])
    tasks = tasks_of(pm)
    record = pm.records.get(name)
    if record is None or record.error:
        raise ConformanceError(f"plugin {module_name!r} could not be registered: {record.error if record else 'unknown'}",
                               "fix the error above (ZOO_STRICT_PLUGINS=1 shows it as it happens)")
    if record.warnings:
        raise ConformanceError(f"plugin {module_name!r}: {'; '.join(record.warnings)}", "rename the entries it names")
    return name, registry, tasks


# -- the checks --------------------------------------------------------------------------------------
def _imports_no_torch(module_name: str) -> None:
    code = f"import importlib, sys; importlib.import_module({module_name!r}); print(','.join(m for m in ('torch', 'timm') if m in sys.modules))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    if done.returncode != 0:
        raise _Failed(f"importing it failed: {done.stderr.strip().splitlines()[-1:]}", "make the entry module importable")
    heavy = done.stdout.strip()
    if heavy:
        raise _Failed(f"importing it imports {heavy}", "import torch only in the builder module that ArchSpec(build='module:function') names, or inside functions")


def _num_params(arch: ArchSpec, registry: Registry) -> None:
    from zoo.build import count_params

    if arch.num_params is None:
        raise CheckSkipped(f"{arch.name} declares no num_params")
    built = count_params(arch)
    if built != arch.num_params:
        raise _Failed(f"declares num_params={arch.num_params}, a meta-device build has {built}", f"set num_params={built} in its ArchSpec (the count for its default arguments)")


def _built(arch: ArchSpec) -> tuple[Any, Any, Any]:
    """A seeded build in eval mode, a random valid input of its InputSpec, and its output."""
    import torch

    from zoo.build import build_model, example_input

    torch.manual_seed(0)
    model = build_model(arch).eval()
    x = example_input(arch, batch=BATCH)
    with torch.no_grad():
        return model, x, model(x)


def _forward(arch: ArchSpec, registry: Registry) -> None:
    import torch

    model, x, out = _built(arch)
    if not isinstance(out, torch.Tensor):
        raise _Failed(f"forward returned {type(out).__name__}, not a tensor", "return the logits tensor from forward")
    classes = getattr(model, "num_classes", None)
    if out.shape[0] != BATCH or (classes and out.shape[-1] != classes):
        raise _Failed(f"input {tuple(x.shape)} ({arch.input.describe()}) gives output {tuple(out.shape)}, expected ({BATCH}, ..., {classes})",
                      "the output must be batch first with num_classes last; check the InputSpec matches what the model takes")
    if not torch.isfinite(out).all():
        raise _Failed("the output has NaN or inf on a random input", "check the initialisation and the forward pass")


def _head(arch: ArchSpec, registry: Registry) -> None:
    import torch

    from zoo.heads import HeadProtocol, freeze_groups

    model, x, out = _built(arch)
    if not isinstance(model, HeadProtocol):
        raise _Failed(f"{type(model).__name__} lacks the head protocol", "subclass zoo.heads.ZooModel (forward_features, make_head, num_features)")
    width = getattr(model, "head_hidden_size", None) or getattr(model, "num_features", None)
    if isinstance(width, bool) or not isinstance(width, int) or width <= 0:
        raise _Failed(f"num_features is {width!r}", "set self.num_features to the feature width in __init__")
    with torch.no_grad():
        if not torch.allclose(model.forward_head(model.forward_features(x)), out):
            raise _Failed("forward_head(forward_features(x)) differs from forward(x)", "make forward = forward_head ∘ forward_features")
        for classes, expected in ((NEW_CLASSES, NEW_CLASSES), (0, width)):
            model.reset_classifier(classes)
            got = model(x).shape[-1]
            if got != expected:
                raise _Failed(f"after reset_classifier({classes}) the output has {got} columns, expected {expected}",
                              "reset_classifier must replace the head with make_head(num_classes) (0: nn.Identity, the features)")
    grouped = [id(p) for _, params in freeze_groups(model) for p in params]
    if sorted(grouped) != sorted(id(p) for p in model.parameters()):
        raise _Failed("the freeze groups do not hold every parameter exactly once", "list every submodule, stem -> head, in group_names")


def _round_trip(arch: ArchSpec, registry: Registry) -> None:
    import torch

    from zoo.loading import load
    from zoo.modeldir import save_model_dir

    model, x, out = _built(arch)
    with tempfile.TemporaryDirectory(prefix="zoo-kit-") as tmp:
        folder = save_model_dir(model, Path(tmp) / "model")
        with torch.no_grad():
            again = load(str(folder), registry=registry)(x)
    if not torch.equal(again, out):
        raise _Failed(f"the model loaded back from a model directory differs (max |diff| {(again - out).abs().max():.3g})",
                      "keep all state in parameters or persistent buffers, and build deterministically from the arguments")


def _onnx(arch: ArchSpec, registry: Registry) -> None:
    missing = [m for m in ("onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        raise CheckSkipped(f"{', '.join(missing)} not installed: pip install 'zoo[export]' to check ONNX export")
    from zoo.exporting import export

    model, _, _ = _built(arch)
    with tempfile.TemporaryDirectory(prefix="zoo-kit-") as tmp:
        try:
            export(model, Path(tmp) / f"{arch.name}.onnx", format="onnx", input_spec=arch.input)
        except ZooError as exc:
            raise _Failed(f"ONNX export: {exc}", "use operations torch.onnx.export supports, with batch (and length) dynamic") from None


def _arch_task(arch: ArchSpec, tasks: dict[str, Any], plugin: str) -> None:
    """The architecture's task is registered; one the plugin registers itself reads a forward pass on a tiny batch."""
    import json

    import torch

    from zoo.tasks import UnknownTaskError, function, get_task

    try:
        task = get_task(arch.tasks[0], arch.name, registered=tasks)
    except UnknownTaskError as exc:
        raise _Failed(exc.message, "register the task (the register_tasks hook), or name a registered one first in tasks") from None
    if task.plugin != plugin:
        return  # another plugin's task (a built-in one): its own checks cover its code
    model, _, out = _built(arch)
    if out.dim() != len(task.output):
        raise _Failed(f"task {task.name!r} declares output {task.output}, the model gives {tuple(out.shape)}",
                      "make the model's output match the task's output dimensions (or fix TaskSpec.output)")
    with torch.no_grad():
        decoded = function(task, "decode")(out, None, 1)
    if not isinstance(decoded, list) or len(decoded) != BATCH or not all(isinstance(d, dict) for d in decoded):
        raise _Failed(f"decode gave {type(decoded).__name__} for a batch of {BATCH}", "return one dict per input: a list of BATCH dicts")
    json.dumps(decoded)  # what zoo predict --json prints: it must be JSON
    for prediction in decoded:
        for row in function(task, "rows")(prediction):
            if len(row) != len(task.columns):
                raise _Failed(f"rows gave {row!r} for columns {task.columns}", "give one value per column in each row")


def _task_code(task: Any) -> None:
    """Every callable the task names imports; its metrics start empty and give a dict."""
    from zoo.tasks import function

    for attr in ("decode", "rows", "metrics", "loss", "inputs", "prepare", "predict", "evaluate", "report"):
        function(task, attr)
    result = function(task, "metrics")(None).result()
    if not isinstance(result, dict):
        raise _Failed(f"metrics(None).result() gave {type(result).__name__}", "return a dict of metric name -> float")


def _sha256_matches(spec: WeightSpec) -> None:
    from zoo.cache import sha256_file

    files = [(source, path) for source in spec.sources if source.sha256 and (path := _local_file(source)) is not None]
    if not files:
        raise CheckSkipped(f"{spec.id}: no file with a declared sha256 is here (not installed, bundled or cached)")
    for source, path in files:
        actual = sha256_file(path)
        if actual != source.sha256:
            raise _Failed(f"{source.describe()}: {path} has sha256 {actual}, the WeightSpec declares {source.sha256}",
                          "declare the file's real sha256 (and size), or ship the file it names")


def _local_file(source: Any) -> Path | None:
    """The file a source names when it is here already: installed, bundled, or in the Hugging Face cache."""
    if source.kind == "hf":
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(source.repo, source.filename, revision=source.revision)
        return Path(found) if isinstance(found, str) else None
    from zoo.hub import SourceUnavailable
    from zoo.weights import _LOCATORS

    try:
        return _LOCATORS[source.kind](source)
    except SourceUnavailable:
        return None


_ARCH_CHECKS: dict[str, Callable[[ArchSpec, Registry], None]] = {
    "num_params": _num_params,
    "forward": _forward,
    "head": _head,
    "round_trip": _round_trip,
    "onnx": _onnx,
}
