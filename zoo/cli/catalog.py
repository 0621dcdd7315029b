"""`zoo list`, `zoo info`, `zoo plugins`: metadata only, so none of them imports torch or timm."""
from __future__ import annotations

import dataclasses
from typing import Any

import click

from zoo.cli.output import emit_json, emit_table, human_count, json_option
from zoo.errors import ArgumentError
from zoo.registry import ArchSpec, Registry, WeightSpec, default_registry
from zoo.weights import availability

# What `zoo list` shows for an architecture that loads without weights (none registered as its default).
UNTRAINED = "untrained"


def arch_record(registry: Registry, arch: ArchSpec) -> dict[str, Any]:
    return {
        "name": arch.name,
        "kind": "architecture",
        "family": arch.family,
        "tasks": list(arch.tasks),
        "input": {**dataclasses.asdict(arch.input), "description": arch.input.describe()},
        "num_params": arch.num_params,
        "plugin": arch.plugin,
        "defaults": dict(arch.defaults),
        "choices": {k: list(v) for k, v in arch.choices.items()},
        "description": arch.description,
        "weights": [w.id for w in registry.weights_for(arch.name)],
        "default_weights": registry.aliases.get(arch.name),
        "availability": _arch_availability(registry, arch),
    }


def _arch_availability(registry: Registry, arch: ArchSpec) -> str:
    """What loading the architecture's name needs: its default weights' availability, or none."""
    default = registry.aliases.get(arch.name)
    return availability(registry.weights[default]) if default in registry.weights else UNTRAINED


def weight_record(registry: Registry, spec: WeightSpec) -> dict[str, Any]:
    arch = registry.archs[spec.arch]
    same_shape = not spec.arch_args and spec.num_classes in (None, arch.defaults.get("num_classes"))
    return {
        "name": spec.id,
        "kind": "weights",
        "arch": spec.arch,
        "family": arch.family,
        "tasks": list(arch.tasks),
        "aliases": list(spec.aliases) + ([spec.arch] if registry.aliases.get(spec.arch) == spec.id else []),
        "num_params": spec.num_params or (arch.num_params if same_shape else None),
        "num_classes": spec.num_classes,
        "arch_args": dict(spec.arch_args),
        "preprocess": dict(spec.preprocess),
        "metrics": dict(spec.metrics),
        "license": spec.license,
        "origin": spec.origin,
        "citation": spec.citation,
        "sources": [dict(dataclasses.asdict(s), description=s.describe()) for s in spec.sources],
        "plugin": spec.plugin,
        "description": spec.description,
        "availability": availability(spec),
    }


@click.command("list")
@click.argument("patterns", nargs=-1)
@click.option("--family", help="Only this family (perceptron, mlp, cnn, rnn, ...).")
@click.option("--task", help="Only architectures for this task (image-classification, ...).")
@click.option("--pretrained", is_flag=True, help="Only pretrained weights.")
@click.option("--available", is_flag=True, help="Only what loads now without the Hub (cached, installed, bundled, untrained).")
@json_option
def list_command(
    patterns: tuple[str, ...], family: str | None, task: str | None, pretrained: bool, available: bool, json_: bool
) -> None:
    """List architectures and pretrained weights, filtered by fnmatch PATTERNS.

    AVAILABLE says what loading each name needs now: weights that are cached, in an installed
    package or bundled with a plugin; "hub" (to be fetched); "untrained" (an architecture without
    default weights). A pattern that matches nothing is an error.

    \b
    Examples:
      zoo list
      zoo list 'resnet*' --family cnn --pretrained
      zoo list --available --family cnn
      zoo list --task language-modeling --json
    """
    registry = default_registry()
    if task is not None:
        from zoo.tasks import get_task, task_names

        get_task(task, "--task")  # a mistyped task is an error naming the registered ones, not an empty list
    wanted = None if task is None else task_names(task)
    names = registry.list_models(*patterns, family=family, task=wanted, pretrained=True if pretrained else None)
    records = [
        weight_record(registry, registry.weights[n]) if n in registry.weights else arch_record(registry, registry.archs[n])
        for n in names
    ]
    if available:
        records = [r for r in records if r["availability"] != "hub"]
    if patterns and not records:  # filters alone that match nothing are an empty listing, not an error
        if json_:
            emit_json(records)
        filters = [f"--family {family}"] * bool(family) + [f"--task {task}"] * bool(task)
        filters += ["--pretrained"] * pretrained + ["--available"] * available
        raise _no_match(registry, patterns, filters)
    if json_:
        emit_json(records)
    else:
        _print_list(records)


def _no_match(registry: Registry, patterns: tuple[str, ...], filters: list[str]) -> ArgumentError:
    """The error of PATTERNS that matched nothing: the names they match without the filters, or close names."""
    shown = ", ".join(repr(p) for p in patterns) + (f" with {' '.join(filters)}" if filters else "")
    unfiltered = registry.list_models(*patterns)
    if unfiltered:
        listed = ", ".join(unfiltered[:3]) + (", ..." if len(unfiltered) > 3 else "")
        return ArgumentError(f"no model matches {shown}", f"{listed} match without {' '.join(filters)}")
    close = list(dict.fromkeys(s for p in patterns for s in registry.suggest(p.strip("*?[]"))))[:3]
    remedy = f"did you mean {', '.join(repr(c) for c in close)}?" if close else "run `zoo list` to see every model"
    return ArgumentError(f"no model matches {shown}", remedy)


def _print_list(records: list[dict[str, Any]]) -> None:
    emit_table(
        ("NAME", "FAMILY", "TASKS", "PARAMS", "AVAILABLE", "ALIASES / WEIGHTS"),
        [
            (
                r["name"],
                r["family"],
                ",".join(r["tasks"]),
                human_count(r["num_params"]),
                r["availability"],
                ", ".join(r["aliases"]) if r["kind"] == "weights" else f"{len(r['weights'])} weight{'s' * (len(r['weights']) > 1)}" if r["weights"] else "-",
            )
            for r in records
        ],
    )


@click.command("info")
@click.argument("name")
@json_option
def info_command(name: str, json_: bool) -> None:
    """Describe a model or a model directory: family, tasks, input, parameters, plugin, weights.

    \b
    Examples:
      zoo info mlp
      zoo info resnet18 --json
      zoo info ./out                 # a model directory
    """
    from zoo.registry import ModelDirectory
    from zoo.resolvers import resolve

    registry = default_registry()
    found = resolve(name, registry=registry)
    if isinstance(found, ModelDirectory):
        from zoo.cli.weights import info_model_dir

        info_model_dir(str(found.path), json_)  # a path that is no model directory gets ModelDirError saying so
        return
    if found.arch_name is not None:  # a resolver's reference (timm/<name>): described as the registry would
        registry = Registry([found.arch], [found.weights] if found.weights else [])
        spec: ArchSpec | WeightSpec = found.weights or found.arch
    else:
        spec = registry.get_spec(name)
    if isinstance(spec, WeightSpec):
        record = weight_record(registry, spec)
        record["architecture"] = arch_record(registry, registry.archs[spec.arch])
    else:
        record = arch_record(registry, spec)
        default = registry.aliases.get(spec.name)
        if default in registry.weights:  # what `zoo.load(ARCH)` loads: its licence and sources matter here too
            weights = weight_record(registry, registry.weights[default])
            record["default"] = {k: weights[k] for k in ("name", "license", "origin", "metrics", "sources", "availability")}
    if record["num_params"] is None:
        from zoo.build import count_params  # imports torch: only for specs that do not declare their size

        arch = registry.archs[spec.arch if isinstance(spec, WeightSpec) else spec.name]
        args = dict(spec.arch_args, num_classes=spec.num_classes) if isinstance(spec, WeightSpec) else {}
        record["num_params"] = count_params(arch, **{k: v for k, v in args.items() if v is not None})
    if json_:
        emit_json(record)
        return
    _print_info(record)


def _print_info(record: dict[str, Any]) -> None:
    arch = record.get("architecture", record)
    lines = [
        ("name", record["name"]),
        ("kind", record["kind"]),
        ("family", record["family"]),
        ("tasks", ", ".join(record["tasks"])),
        ("input", arch["input"]["description"]),
        ("parameters", f"{record['num_params']:,}"),
        ("plugin", record["plugin"]),
        ("description", record.get("description") or arch.get("description")),
    ]
    if record["kind"] == "architecture":
        lines += [("arguments", ", ".join(f"{k}={v!r}" for k, v in record["defaults"].items()))]
        lines += [(f"{k} choices", ", ".join(map(str, v))) for k, v in record["choices"].items()]
        lines += [("weights", ", ".join(record["weights"]) or "none registered")]
        lines += _weights_lines(record["default"], default=True) if "default" in record else [("available", record["availability"])]
    else:
        lines += [
            ("architecture", record["arch"]),
            ("aliases", ", ".join(record["aliases"]) or "-"),
            ("num_classes", record["num_classes"]),
            ("arguments", ", ".join(f"{k}={v!r}" for k, v in record["arch_args"].items())),
            ("preprocess", ", ".join(f"{k}={v!r}" for k, v in record["preprocess"].items())),
            *_weights_lines(record),
        ]
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        if value not in (None, ""):
            click.echo(f"{key.ljust(width)}  {value}")


def _weights_lines(weights: dict[str, Any], *, default: bool = False) -> list[tuple[str, Any]]:
    """Licence, origin, metrics, availability and sources of weights (an architecture's default ones)."""
    lines = [("default weights", weights["name"])] if default else []
    lines += [
        ("license", weights["license"]),
        ("origin", weights["origin"]),
        ("metrics", ", ".join(f"{k}={v}" for k, v in weights["metrics"].items()) or "-"),
        ("available", weights["availability"]),
    ]
    return lines + [(f"source {i + 1}", s["description"]) for i, s in enumerate(weights["sources"])]


@click.command("plugins")
@json_option
def plugins_command(json_: bool) -> None:
    """List installed plugins: version, hooks, what each registered, and errors.

    \b
    Examples:
      zoo plugins
      ZOO_LOAD_PLUGINS= zoo plugins --json     # built-in plugins only
    """
    from zoo.plugins import default_plugin_manager, records

    from zoo.data import data_formats
    from zoo.exporting import exporters
    from zoo.registry import TransformSpec, VocabSpec, registered
    from zoo.resolvers import resolvers
    from zoo.tasks import tasks

    default_registry()  # registering is what fills each plugin's record
    exporters()
    data_formats()
    tasks()
    resolvers()
    registered("register_transforms", TransformSpec)
    registered("register_vocabularies", VocabSpec)
    data = records(default_plugin_manager())
    if json_:
        emit_json(data)
        return
    emit_table(
        ("PLUGIN", "VERSION", "HOOKS", "REGISTERED", "STATUS"),
        [
            (
                r["name"] + (" (built-in)" if r["builtin"] else ""),
                r["version"] or "-",
                ",".join(h.removeprefix("register_") for h in r["hooks"]) or "-",
                "; ".join(_summary(kind, names) for kind, names in r["registered"].items()) or "-",
                f"error: {r['error']}" if r["error"] else "; ".join(f"warning: {w}" for w in r["warnings"]) or "ok",
            )
            for r in data
        ],
    )


def _summary(kind: str, names: list[str], shown: int = 6) -> str:
    """`architectures: a, b` or, for long lists, `weights: 66 (a, b, c, ...)`; --json has them all."""
    if len(names) <= shown:
        return f"{kind}: {', '.join(names)}"
    return f"{kind}: {len(names)} ({', '.join(names[:3])}, ...)"


COMMANDS = [list_command, info_command, plugins_command]
