"""`zoo pull` and `zoo cache ls|verify|rm`: fetching, verifying and forgetting weight files."""
from __future__ import annotations

import difflib
import sys
from typing import Any

import click

from zoo.cli.output import emit_json, emit_table, human_count, json_option
from zoo.errors import UnknownModelError, WeightsIntegrityError


def _resolve(name: str) -> Any:
    """What NAME stands for, through the resolvers: weights to fetch (a `Resolved` with weights) or a
    `ModelDirectory`."""
    from zoo.registry import ModelDirectory, default_registry
    from zoo.resolvers import resolve

    found = resolve(name)
    if isinstance(found, ModelDirectory) or found.weights is not None:
        return found
    if found.arch_name is None:
        default_registry().require_weights(name)  # names the weights there are
    raise UnknownModelError(name)


@click.command("pull")
@click.argument("names", nargs=-1, required=True)
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@json_option
def pull_command(names: tuple[str, ...], quiet: bool, json_: bool) -> None:
    """Fetch and verify the weights of NAMES into the cache, for offline use later.

    A name may also be hf://org/repo[@revision], a model directory on the Hub: its files go to the
    Hugging Face cache (HF_HOME), where `zoo.load("hf://org/repo")` finds them offline.

    \b
    Examples:
      zoo pull resnet18
      zoo pull tf_efficientnet_lite0.in1k timm/resnet10t.c3_in1k --json
      zoo pull hf://org/my-finetuned-model
    """
    from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

    from zoo.registry import ModelDirectory
    from zoo.weights import pull

    quiet = quiet or json_ or not sys.stderr.isatty()
    disable_progress_bars() if quiet else enable_progress_bars()
    rows = []
    for name in names:
        resolved = _resolve(name)
        if isinstance(resolved, ModelDirectory):
            rows.append(_pulled_dir(name, resolved))
            continue
        fetched = pull(resolved.arch, resolved.weights)
        rows.append({"name": resolved.weights.id, **_record(fetched.record), "source": fetched.source.describe()})
    if json_:
        emit_json(rows)
        return
    emit_table(("NAME", "SIZE", "SHA256", "PATH"), [(r["name"], human_count(r["size"]) + "B", r["sha256"][:16], r["path"]) for r in rows])


def _pulled_dir(reference: str, found: Any) -> dict[str, Any]:
    """The row of a model directory a reference resolved to (fetched into the Hugging Face cache for
    hf://), its weights checked against config.json."""
    from zoo.cache import verify_hash
    from zoo.modeldir import damaged_remedy, file_name, inside, read_config

    folder = found.path
    files = read_config(folder, found.root)["files"]
    weights = files.get("weights")
    sha256 = weights.get("sha256") if isinstance(weights, dict) else None
    if sha256:
        remedy = f"the repository {reference} is damaged: upload it again" if found.root else damaged_remedy(folder)
        verify_hash(inside(folder, file_name(weights), found.root), sha256, remedy, model=reference)
    return {
        "name": reference,
        "model": reference,
        "source": "model directory",
        "path": str(folder),
        "size": sum((folder / name).stat().st_size for name in {"config.json", *map(file_name, files.values())}),
        "sha256": sha256 or "",
        "verified": None,
    }


def _record(record: Any) -> dict[str, Any]:
    return {"model": record.model, "source": record.source, "path": record.path, "size": record.size,
            "sha256": record.sha256, "verified": record.verified_at}


def _derived(entry: Any) -> dict:
    """A row of `zoo cache ls` for an export or a features file (computed again when needed: no sha256 to verify)."""
    return {"model": entry.model, "source": entry.kind, "path": str(entry.path), "size": entry.size,
            "sha256": None, "verified": None}


@click.group("cache")
def cache_group() -> None:
    """The weight cache (ZOO_HOME, default the user cache dir): list, verify, remove, clean."""


@cache_group.command("ls")
@json_option
def cache_ls(json_: bool) -> None:
    """List cached files: model, source, size, when verified, path; then the ONNX exports and features
    computed from them (source `onnx export` or `features`), which `zoo cache rm --derived` removes.

    \b
    Examples:
      zoo cache ls
      zoo cache ls --json
    """
    from zoo.cache import derived, records
    from zoo.fsio import orphans

    rows = [_record(r) for r in records()] + [_derived(d) for d in derived()]
    left = [o for o in orphans() if o.kind != "journal entry"]
    if left:
        size = human_count(sum(o.size for o in left)) + "B"
        click.echo(f"Note: {len(left)} file(s) left by interrupted runs ({size}); `zoo cache clean` removes them", err=True)
    if json_:
        emit_json(rows)
        return
    emit_table(
        ("MODEL", "SOURCE", "SIZE", "VERIFIED", "PATH"),
        [(r["model"], r["source"], human_count(r["size"]) + "B", r["verified"] or "-", r["path"]) for r in rows],
    )


@cache_group.command("verify")
@json_option
def cache_verify(json_: bool) -> None:
    """Re-hash every cached file; name each bad one (exit 1 when any is bad).

    A bad file is marked so: no load uses it until it is fetched again or passes a later verify.

    \b
    Examples:
      zoo cache verify
    """
    from zoo.cache import mark_bad, records, sha256_file, write_record

    rows = []
    for record in records():
        actual = sha256_file(record.path)
        ok = actual == record.sha256
        if not ok:
            mark_bad(record)
        else:  # re-verified: the record takes the file's status now (and loses a bad mark)
            write_record(record.model, record.source, record.path, actual, owned=record.owned, source_sha256=record.source_sha256)
        rows.append({**_record(record), "actual_sha256": actual, "ok": ok})
    if json_:
        emit_json(rows)
    else:
        emit_table(("MODEL", "STATUS", "PATH"), [(r["model"], "ok" if r["ok"] else "BAD", r["path"]) for r in rows])
    bad = [r for r in rows if not r["ok"]]
    if bad:
        raise WeightsIntegrityError(
            "; ".join(f"{r['path']} ({r['model']}) has sha256 {r['actual_sha256']}, expected {r['sha256']}" for r in bad),
            "remove them with `zoo cache rm NAME` and fetch them again with `zoo pull NAME`",
        )


@cache_group.command("rm")
@click.argument("names", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Remove every cached file, exports and features included.")
@click.option("--derived", is_flag=True,
              help="Remove only ONNX exports and features (of NAMES, or all of them): computed again when needed.")
def cache_rm(names: tuple[str, ...], all_: bool, derived: bool) -> None:
    """Remove the cached files of NAMES (weight ids or aliases) with the exports and features computed
    from them; or --derived (exports and features only); or --all.

    Files zoo converted or downloaded are deleted; files inside installed packages are only forgotten.

    \b
    Examples:
      zoo cache rm resnet18
      zoo cache rm --derived
      zoo cache rm resnet18 --derived
      zoo cache rm --all
    """
    from zoo.cache import derived as computed
    from zoo.cache import records, remove, remove_derived
    from zoo.registry import default_registry

    if all_ and (names or derived):
        raise click.UsageError("--all removes everything: give it alone")
    if not (names or all_ or derived):
        raise click.UsageError("give NAME..., --derived or --all")
    registry = default_registry()
    keys = {name: {name, _cache_key(name, registry)} for name in names}  # an export names the model as it was given
    wanted = set().union(*keys.values())
    everything = all_ or not names
    chosen = [] if derived else [r for r in records() if everything or r.model in wanted]
    made = [d for d in computed() if everything or d.model in wanted]
    found = {r.model for r in chosen} | {d.model for d in made}
    missing = [name for name in names if not keys[name] & found]
    if missing:  # refused before anything is removed: a typo must not leave the command half done
        _not_cached(_cache_key(missing[0], registry), registry, "exports or features" if derived else "files")
    for record in chosen:
        if remove(record):
            click.echo(f"removed {record.model}: {record.path}", err=True)
        else:
            click.echo(f"forgot {record.model}: {record.path} (not a file zoo wrote; left in place)", err=True)
    for entry in made:
        remove_derived(entry)
        click.echo(f"removed {entry.kind} of {entry.model}: {entry.path} ({human_count(entry.size)}B)", err=True)


@cache_group.command("clean")
@click.option("--dry-run", is_flag=True, help="List what would be removed, remove nothing.")
@json_option
def cache_clean(dry_run: bool, json_: bool) -> None:
    """Remove what killed runs left: temporary files in ZOO_HOME, staging folders of exports and
    model directories; a replacement that was cut short is finished or undone (the old model put back).

    Only files whose writing process is gone are touched.

    \b
    Examples:
      zoo cache clean --dry-run
      zoo cache clean
    """
    from zoo.fsio import clean, orphans

    rows = []
    for orphan in orphans():
        done = "would clean" if dry_run else clean(orphan)
        rows.append({"kind": orphan.kind, "path": str(orphan.path), "size": orphan.size, "done": done})
    if json_:
        emit_json(rows)
        return
    emit_table(("KIND", "SIZE", "DONE", "PATH"), [(r["kind"], human_count(r["size"]) + "B", r["done"], r["path"]) for r in rows])


def _cache_key(name: str, registry: Any) -> str:
    """The model a cache record of NAME is filed under: what the resolvers make of it (a weight id,
    a model directory's path), or NAME itself when they know nothing of it."""
    from zoo.errors import ZooError
    from zoo.registry import ModelDirectory
    from zoo.resolvers import resolve

    try:
        found = resolve(name, registry=registry)
    except ZooError:
        return name
    if isinstance(found, ModelDirectory):
        return str(found.path.resolve())
    return found.weights.id if found.weights is not None else name


def _not_cached(name: str, registry: Any, what: str = "files") -> None:
    """Say why `name` has nothing to remove: a name zoo does not know, or weights with no `what` in the cache."""
    from zoo.cache import derived, records
    from zoo.errors import ArgumentError

    if name in registry.weights:
        raise ArgumentError(f"{name} has no {what} in the cache", "`zoo cache ls` lists what is cached")
    cached = sorted({r.model for r in records()} | {d.model for d in derived()})
    close = difflib.get_close_matches(name, cached, n=3, cutoff=0.6)
    raise ArgumentError(
        f"nothing in the cache is named {name!r}",
        f"did you mean {', '.join(repr(c) for c in close)}?" if close else "`zoo cache ls` lists what is cached",
    )


def info_model_dir(path: str, json_: bool) -> None:
    """`zoo info DIR`: describe a model directory (no torch imported)."""
    from zoo.modeldir import describe

    record = describe(path)
    if json_:
        emit_json(record)
        return
    weights = record["files"].get("weights", {})
    lines = [
        ("name", record["name"]),
        ("kind", record["kind"]),
        ("path", record["path"]),
        ("architecture", record["architecture"]),
        ("arguments", ", ".join(f"{k}={v!r}" for k, v in record["arch_args"].items())),
        ("preprocess", ", ".join(f"{k}={v!r}" for k, v in (record["preprocess"] or {}).items())),
        ("vocabulary", record["vocab"]),
        ("num_classes", record["num_classes"]),
        ("labels", ", ".join(record["labels"][:10]) + (" ..." if len(record["labels"]) > 10 else "") if record["labels"] else None),
        ("base weights", (record["base_weights"] or {}).get("id")),
        ("weights", f"{weights.get('path')} ({human_count(weights.get('size'))}B, sha256 {str(weights.get('sha256'))[:16]})"),
        ("license", record["card"].get("license")),
        ("base_model", record["card"].get("base_model")),
        ("training", _scalars(record["training"])),
        ("metrics", _scalars(record["metrics"])),
    ]
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        if value not in (None, ""):
            click.echo(f"{key.ljust(width)}  {value}")


def _scalars(section: dict[str, Any] | None) -> str | None:
    """The one-value entries of a config section, for a line; --json has the nested ones too."""
    items = [(k, v) for k, v in (section or {}).items() if isinstance(v, (str, int, float, bool))]
    return ", ".join(f"{k}={round(v, 4) if isinstance(v, float) else v}" for k, v in items) or None


COMMANDS = [pull_command, cache_group]
