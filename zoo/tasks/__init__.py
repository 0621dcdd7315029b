"""Tasks: what a model's output means, and the one place zoo looks up how to train, score, decode and print it.

Plugins register `TaskSpec`s through the `register_tasks` hook (the built-in tasks too, from
`zoo.tasks.builtin`). `task_of(model)` is the dispatch point every command uses: the model's task,
looked up by name (`get_task`), or one `UnknownTaskError` line naming the tasks there are.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

from zoo.errors import ZooError
from zoo.specs import TaskSpec


class UnknownTaskError(ZooError):
    """A model, a model directory or a data format names a task no installed plugin registers."""


def tasks() -> dict[str, TaskSpec]:
    """Every task the installed plugins register, by name, in registration order."""
    from zoo.plugins import default_plugin_manager

    return tasks_of(default_plugin_manager())


@functools.lru_cache(maxsize=4)
def tasks_of(pm: Any) -> dict[str, TaskSpec]:
    """The tasks plugin manager `pm` registers, collected once per manager."""
    from zoo.plugins import accept_instances

    found = pm.collect("register_tasks", accept_instances(TaskSpec), key=lambda t: t.name)
    return _without_taken_aliases(found, pm)


def _without_taken_aliases(found: dict[str, TaskSpec], pm: Any) -> dict[str, TaskSpec]:
    """An alias that is already a task's name or an earlier task's alias is dropped (a warning names
    both plugins): a name always means the one task."""
    taken = {name: spec for name, spec in found.items()}
    kept = {}
    for name, spec in found.items():
        aliases = []
        for alias in spec.aliases:
            other = taken.get(alias)
            if other is not None and other is not spec:
                pm.skip(spec.plugin, f"task alias {alias!r} of {name!r} is already task {other.name!r} of plugin {other.plugin!r}; alias skipped")
                continue
            taken[alias] = spec
            aliases.append(alias)
        kept[name] = spec if len(aliases) == len(spec.aliases) else dataclasses.replace(spec, aliases=tuple(aliases))
    return kept


def _by_name(registered: dict[str, TaskSpec]) -> dict[str, TaskSpec]:
    """Names and aliases -> the task."""
    found = {alias: spec for spec in registered.values() for alias in spec.aliases}
    found.update(registered)
    return found


def get_task(name: str, what: str = "", registered: dict[str, TaskSpec] | None = None) -> TaskSpec:
    """The task registered under `name` (or one of its aliases).

    Args:
        name: a task name (ArchSpec.tasks, DataFormat.task, a model directory's config).
        what: who names it, for the error ("lstm-text", "data format 'csv'").
        registered: the tasks to choose from (default: the registered ones).

    Returns:
        The TaskSpec.

    Raises:
        UnknownTaskError: no installed plugin registers `name`; the message names the ones that do.
    """
    registered = tasks() if registered is None else registered
    known = _by_name(registered)
    spec = known.get(name) if isinstance(name, str) else None
    if spec is None:
        import difflib

        who = f"{what} names task" if what else "task"
        close = difflib.get_close_matches(name, list(known), n=2, cutoff=0.7) if isinstance(name, str) else []
        remedy = "install the plugin that provides the task (`zoo plugins` lists what is loaded)"
        raise UnknownTaskError(
            f"{who} {name!r}, which no installed plugin registers; registered tasks: {', '.join(sorted(registered)) or 'none'}",
            f"did you mean {' or '.join(map(repr, close))}? Else {remedy}" if close else remedy,
        )
    return spec


def task_names(name: str) -> frozenset[str]:
    """Every name that means the same task as `name`: the registered task's name and aliases (just
    `name` when no plugin registers it), so a filter by task finds architectures that use an alias."""
    spec = _by_name(tasks()).get(name)
    return frozenset({name} if spec is None else {spec.name, *spec.aliases})


def require_arch_task(arch: Any, name: str) -> None:
    """Refuse an architecture none of whose tasks is registered (before anything is loaded).

    Raises:
        UnknownTaskError: its first task named, with the registered tasks.
    """
    by_name = _by_name(tasks())
    if not any(task in by_name for task in arch.tasks):
        get_task(arch.tasks[0], name)


def model_task_name(model: Any) -> str:
    """The name of the task `model` does: its own `task` attribute when it has one (a recurrent model
    built for classification), else its architecture's first task (not language modelling once a head
    that no longer predicts every token of its vocabulary replaced the model's), else what its interface says."""
    own = getattr(model, "task", None)
    if isinstance(own, str) and own:
        return own
    from zoo.heads import is_language_model, text_tokenizer

    info = getattr(model, "zoo", None)
    arch = getattr(info, "arch", None)
    if isinstance(arch, str):
        from zoo.registry import default_registry

        spec = default_registry().archs.get(arch)
        if spec is not None:  # a language model re-headed into a classifier does its architecture's next task
            reheaded = text_tokenizer(model) is not None and not is_language_model(model)
            doing = [t for t in spec.tasks if t != "language-modeling" or not reheaded]
            return (doing or spec.tasks)[0]

    if is_language_model(model):
        return "language-modeling"
    return "text-classification" if text_tokenizer(model) is not None else "image-classification"


def task_of(model: Any) -> TaskSpec:
    """The registered task of `model`: the one lookup `zoo predict`, `finetune`, `eval` and `export` dispatch on.

    Raises:
        UnknownTaskError: the model's task is not registered (named, with the registered tasks).
    """
    info = getattr(model, "zoo", None)
    return get_task(model_task_name(model), getattr(info, "name", None) or type(model).__name__)


def function(spec: TaskSpec, attr: str) -> Callable[..., Any] | None:
    """Import one of the task's ``"module:function"`` callables (None when the task has none)."""
    reference = getattr(spec, attr)
    if reference is None:
        return None
    from zoo.plugins import import_reference

    return import_reference(reference, f"task {spec.name!r} ({spec.plugin})")


__all__ = ["TaskSpec", "UnknownTaskError", "function", "get_task", "model_task_name", "require_arch_task", "task_names", "task_of", "tasks", "tasks_of"]
