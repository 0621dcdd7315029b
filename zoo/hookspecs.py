"""The hooks a zoo plugin can implement. Each hands the plugin a callback so the host validates."""
from __future__ import annotations

from typing import Any, Callable

import pluggy

hookspec = pluggy.HookspecMarker("zoo")
hookimpl = pluggy.HookimplMarker("zoo")


@hookspec
def register_architectures(register: Callable[[Any], None]) -> None:
    """Register architectures: call `register(ArchSpec(...))` once per architecture."""


@hookspec
def register_weights(register: Callable[[Any], None]) -> None:
    """Register pretrained weights: call `register(WeightSpec(...))` once per weight id."""


@hookspec
def register_exporters(register: Callable[[Any], None]) -> None:
    """Register export formats: call `register(Exporter(...))` once per format."""


@hookspec
def register_data_formats(register: Callable[[Any], None]) -> None:
    """Register data formats for fine-tuning: call `register(DataFormat(...))` once per format."""


@hookspec
def register_tasks(register: Callable[[Any], None]) -> None:
    """Register tasks (loss, metrics, decoding, printing of a model's output): call `register(TaskSpec(...))` once per task."""


@hookspec
def register_transforms(register: Callable[[Any], None]) -> None:
    """Register image transforms that preprocessing may name: call `register(TransformSpec(...))`."""


@hookspec
def register_vocabularies(register: Callable[[Any], None]) -> None:
    """Register vocabularies that data may name: call `register(VocabSpec(...))` once per vocab.json."""


@hookspec
def register_resolvers(register: Callable[[str, Callable[[str], Any]], None]) -> None:
    """Claim a kind of model reference: call `register(prefix, resolver)`; `resolver(name)` returns a Resolved or a ModelDirectory."""


@hookspec
def register_commands(cli: Any) -> None:
    """Add commands to the `zoo` click group: `cli.add_command(...)` or `@cli.command()`."""
