"""`zoo finetune MODEL --data PATH`: a new head on a folder or file of examples, written as a model directory."""
from __future__ import annotations

import dataclasses
import math
import shlex
import sys
import time
import typing
import warnings
from typing import Any, Callable

import click
from click.core import ParameterSource

from zoo.cli.output import emit_json, json_option, progress_interval
from zoo.finetuning.options import DEVICES, FinetuneOptions


class ProgressBars:
    """Progress on stderr: a bar for the feature pass and for each epoch's batches, a line per epoch."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bars: dict[str, Any] = {}

    def __call__(self, stage: str, done: int, total: int, info: dict) -> None:
        if not self.enabled:
            return
        if stage == "epoch":
            click.echo(epoch_line(done, total, info), err=True)
            return
        bar = self.bars.get(stage)
        if bar is None:
            from tqdm import tqdm

            label = {"features": "features", "evaluate": "evaluating"}.get(stage) or f"epoch {info.get('epoch')}"
            bar = self.bars[stage] = tqdm(total=total, desc=label, file=sys.stderr, leave=False, dynamic_ncols=True)
        bar.update(done - bar.n)
        if "loss" in info:
            bar.set_postfix(loss=f"{info['loss']:.4f}", refresh=False)
        if done >= total:
            bar.close()
            del self.bars[stage]


def epoch_line(epoch: int, epochs: int, info: dict) -> str:
    """The line that ends an epoch: its losses, accuracy, time and the time left."""
    return (
        f"epoch {epoch}/{epochs}  train_loss {info['train_loss']:.4f}  val_loss {info['val_loss']:.4f}  "
        f"val_accuracy {info['val_accuracy']:.4f}  {info['seconds']:.1f}s  ETA {info['eta']:.0f}s"
    )


class ProgressLog:
    """Progress when stderr is not a terminal (a log file, a CI job): no bars, but a line on the phase under
    way (features, an epoch's training, an evaluation) at most once every `interval` seconds, so that a
    long run is seen to be alive: `finetune: evaluating 40/128 batches (61 s)`."""

    def __init__(self, interval: float):
        self.interval = interval
        self.last = self.phase_started = time.monotonic()
        self.phase: tuple[str, Any, int] = ("", None, 0)

    def __call__(self, stage: str, done: int, total: int, info: dict) -> None:
        now = time.monotonic()
        name, epoch, previous = self.phase
        if (stage, info.get("epoch")) != (name, epoch) or done < previous:  # a new phase (the next evaluation, say)
            self.phase_started = now
        self.phase = (stage, info.get("epoch"), done)
        if now - self.last < self.interval:
            return
        self.last = now
        if stage == "epoch":
            click.echo(f"finetune: {epoch_line(done, total, info)}", err=True)
            return
        what = {
            "features": f"computing features {done:,}/{total:,} samples",
            "evaluate": f"evaluating {done:,}/{total:,} batches",
        }.get(stage) or f"epoch {info.get('epoch')}: training {done:,}/{total:,} batches, loss {info.get('loss', math.nan):.4f}"
        click.echo(f"finetune: {what} ({now - self.phase_started:.0f} s)", err=True)


def interrupted_line(stopped: Any) -> str:
    """The one line a stopped run prints: what is kept and the exact command that continues it."""
    if stopped.checkpoint is None:
        return f"Interrupted: {stopped.message}; nothing to resume (run the same command again)"
    return f"Interrupted: {stopped.message}; to continue: {resume_command()}"


def resume_command() -> str:
    """This command line with --resume: what the user typed, when zoo runs as its console script."""
    args = sys.argv[1:]
    if "finetune" not in args:  # called in-process (CliRunner): the typed line is not known
        return "the same command with --resume"
    return shlex.join(["zoo", *args, *([] if "--resume" in args else ["--resume"])])


# How the CLI parses a field when its type alone does not say (names, defaults and help are the dataclass's).
CLICK_TYPES: dict[str, Any] = {"output": click.Path(file_okay=False), "device": click.Choice(DEVICES)}


def flags_of(spec: dataclasses.Field) -> tuple[str, ...]:
    """The CLI flags of a field of `FinetuneOptions`: its own, else `--<name>`."""
    return spec.metadata["flags"] or ("--" + spec.name.replace("_", "-"),)


def option_flags(command: Callable) -> Callable:
    """Add one click option per field of `FinetuneOptions`, with its flags, default and help."""
    hints = typing.get_type_hints(FinetuneOptions)
    for spec in reversed(dataclasses.fields(FinetuneOptions)):
        flags = flags_of(spec)
        kind = next(t for t in typing.get_args(hints[spec.name]) or (hints[spec.name],) if t is not type(None))
        if kind is bool:
            # a bare flag sets True; a flag of its own (--no-cache, --random-init) sets False
            value = not spec.metadata["flags"]
            option = click.option(*flags, spec.name, is_flag=True, flag_value=value, default=None, help=spec.metadata["help"])
        else:
            option = click.option(
                *flags, spec.name, type=CLICK_TYPES.get(spec.name, kind), default=spec.default,
                show_default=spec.default is not None, help=spec.metadata["help"],
            )
        command = option(command)
    return command


def rank_command(model: str, data: str, given: dict[str, Any], quiet: bool, json_: bool) -> list[str]:
    """The command line (after `zoo`) that each rank of `--nproc` runs: the options given, without --nproc."""
    fields = {spec.name: spec for spec in dataclasses.fields(FinetuneOptions)}
    argv = ["finetune", model, "--data", data]
    for name, value in given.items():
        flag = flags_of(fields[name])[0]
        argv += [flag] if isinstance(value, bool) else [flag, str(value)]
    return argv + ["--quiet"] * quiet + ["--json"] * json_


def data_format_alias(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """`--format`, the old name of `--data-format`: still read, with a one-line note on stderr."""
    if value is not None:
        click.echo("Warning: `zoo finetune --format` is deprecated; use --data-format", err=True)
    return value


@click.command("finetune")
@click.argument("model")
@click.option("--data", "data", required=True, type=click.Path(), help="Image folder, text folder, .csv file or text corpus.")
@option_flags
@click.option("--format", "legacy_format", hidden=True, callback=data_format_alias)
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
@click.option(
    "--nproc", type=click.IntRange(min=1), default=1, show_default=True,
    help="Ranks (processes) training data-parallel on this machine, started through torch.distributed.run; see docs/scaling.md.",
)
@json_option
def finetune_command(
    model: str, data: str, quiet: bool, json_: bool, legacy_format: str | None, nproc: int, **options: Any
) -> None:
    """Fine-tune MODEL on --data and write a model directory.

    \b
    Examples:
      zoo data lfw-faces ./faces
      zoo finetune tf_efficientnet_lite0.in1k --data ./faces --epochs 5
      zoo finetune resnet18 --data ./folder --strategy last-n:2 --augment
      zoo finetune lstm-text --data lines.csv --text-column text --label-column play --json
      zoo finetune lstm-text --data ./plays --data-format corpus --warmup 0.05 --max-grad-norm 0.5
      zoo finetune lenet5.digits --data ./faces --strategy full --nproc 2
    """
    from zoo.finetuning import finetune
    from zoo.finetuning.distributed import is_main_process, reported_by_launcher

    ctx = click.get_current_context()
    if not is_main_process():
        warnings.simplefilter("ignore")  # every rank would say the same: rank 0 says it once
    given = {name: value for name, value in options.items() if ctx.get_parameter_source(name) != ParameterSource.DEFAULT}
    if legacy_format is not None:
        if given.get("data_format", legacy_format) != legacy_format:
            raise click.UsageError("--format is the old name of --data-format: give one of them")
        given["data_format"] = legacy_format
    if nproc > 1:
        launch_ranks(model, data, given, quiet, json_, nproc)
        return
    show = not quiet and not json_ and sys.stderr.isatty() and is_main_process()
    from zoo.finetuning.loop import TrainingInterrupted

    try:
        # stderr not a terminal (a log, a CI job): a line on the phase under way, once a minute
        display = ProgressBars(show) if show or quiet or json_ else ProgressLog(progress_interval())
        result = finetune(model, data, progress=display, **given)
    except Exception as exc:
        if reported_by_launcher():  # a rank of --nproc: its launcher prints the one line naming the failed rank
            ctx.exit(1)
        if not isinstance(exc, TrainingInterrupted):
            raise
        if is_main_process():  # under torchrun every rank stops; rank 0 says so
            click.echo(interrupted_line(exc), err=True)
        ctx.exit(128 + exc.signum)
    if not is_main_process():  # rank 0 reports for every rank
        return
    if not quiet and not json_:
        for line in result.data.get("skip_report", []):
            click.echo(f"Warning: {line}", err=True)
    if json_:
        emit_json(result.summary())
        return
    metrics = result.metrics
    rows = [("output", str(result.output))]
    rows += [(key, f"{metrics[key]:.4f}") for key in ("val_accuracy", "val_loss", "val_nats_per_char", "val_nats_per_char_before", "majority_baseline") if metrics.get(key) is not None]
    rows += [(key, f"{metrics[key]:.4f}") for key in result.task_metrics if metrics.get(key) is not None]  # a plugin task's
    if metrics.get("val_windows") is not None:  # a corpus: the held-out sample scored before and after
        rows.append(("val_windows", f"{metrics['val_windows']:,} of {metrics['val_windows_total']:,}"))
    rows += [("epochs", str(len(result.history))), ("features", result.features)]
    if result.feature_pass and result.feature_pass.get("runtime"):  # what ran the backbone (--runtime), and why
        rows.append(("runtime", f"{result.feature_pass['runtime']} ({result.feature_pass['reason']})"))
    rows.append(("seconds", f"{result.seconds:.1f}"))
    width = max(len(key) for key, _ in rows)
    for key, value in rows:
        click.echo(f"{key.ljust(width)}  {value}")


def launch_ranks(model: str, data: str, given: dict[str, Any], quiet: bool, json_: bool, nproc: int) -> None:
    """`--nproc N`: the options checked once here, then N ranks of this command through torch.distributed.run."""
    import torch

    from zoo.finetuning.distributed import RanksInterrupted, launch
    from zoo.finetuning.engine import output_path, partial_dir
    from zoo.finetuning.loop import TrainingInterrupted

    from zoo.resolvers import resolve

    options = FinetuneOptions(**given)  # a bad option, or a mistyped model, is refused once, before any rank starts
    resolve(model)
    checkpoint = partial_dir(output_path(given.get("output"), model)) / "checkpoint.pt"
    try:
        launch(rank_command(model, data, given, quiet, json_), nproc, checkpoint, options.device)
    except RanksInterrupted as stopped:  # Ctrl-C: the line one process prints, for the N ranks
        done = torch.load(checkpoint, map_location="cpu", mmap=True, weights_only=True)["epoch"] if checkpoint.is_file() else 0
        click.echo(interrupted_line(TrainingInterrupted(stopped.signum, checkpoint, done, options.epochs)), err=True)
        click.get_current_context().exit(128 + stopped.signum)


COMMANDS = [finetune_command]
