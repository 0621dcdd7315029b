"""`zoo predict`: run a model on inputs and print the top-k answers (images; texts: continuations or classes)."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any, Iterable, Sequence

import click

from zoo.cli.output import emit_json, emit_table, json_option
from zoo.errors import ArgumentError


class OptionMismatch(click.ClickException):
    """An option the model's task has no use for: one `Error:` line with the remedy, exit 2 (usage)."""

    exit_code = 2


@click.command("predict")
@click.argument("model")
@click.argument("inputs", nargs=-1, required=True)
@click.option("--top-k", "-k", "top_k", default=5, show_default=True, type=click.IntRange(min=1), help="Classes per input.")
@click.option(
    "--runtime", type=click.Choice(["auto", "eager", "onnx", "torch"]),
    help="eager: PyTorch (torch is another name for it); onnx: run the exported model.onnx of a model directory "
    "(or an .onnx file) in onnxruntime; auto (with --output): eager, or the model exported once into zoo's cache "
    "and run in onnxruntime when the run pays for the export [default: auto with --output, else eager].",
)
@click.option(
    "--batch-size", "-b", "batch_size", default=32, show_default=True, type=click.IntRange(min=1),
    help="Inputs the model sees at once; memory grows with it, not with the number of inputs.",
)
@click.option(
    "--output", "-o", type=click.Path(dir_okay=True, path_type=Path), metavar="FILE.csv|FILE.jsonl",
    help="Images: write one row per file (path, top-k labels and probabilities; skipped files with an error) to this file.",
)
@click.option("--overwrite", is_flag=True,
              help="With --output: replace an existing file, and start over when an interrupted run left rows for it.")
@click.option("--resume", is_flag=True,
              help="With --output: continue after the rows an interrupted run recorded (same model, files and options).")
@click.option(
    "--workers", "-w", type=click.IntRange(min=0), metavar="N",
    help="With --output: processes that decode and preprocess images (0: the main one) [default: one per spare core, at most 4].",
)
@click.option("--generate", type=click.IntRange(min=0), metavar="N", help="Language models: sample N tokens after each text.")
@click.option("--temperature", default=0.7, show_default=True, type=click.FloatRange(min=0), help="With --generate: 0 is greedy.")
@click.option("--seed", default=0, show_default=True, type=int, help="With --generate: the same seed, the same text.")
@json_option
def predict_command(
    model: str, inputs: tuple[str, ...], top_k: int, runtime: str | None, batch_size: int, output: Path | None,
    overwrite: bool, resume: bool, workers: int | None, generate: int | None, temperature: float, seed: int, json_: bool,
) -> None:
    """Predict INPUTS with MODEL (a name, a model directory or hf://org/repo), as its task says.

    Images may be PNG or JPEG in any mode (L, RGB, RGBA, CMYK, P); each model's own preprocessing
    and labels are used. A folder stands for its own image files, in name order. Images run in
    batches of --batch-size, each printed as soon as it is done, so memory stays flat however many
    there are. With --output FILE.csv or FILE.jsonl, a folder stands for its image files at any
    depth, in path order, and every file gets one row, in order, written as the run goes and
    renamed into place at the end; a file that cannot be read is skipped, counted on stderr and
    named in its row; progress goes to stderr. A run that stops (Ctrl-C, killed) keeps its rows
    beside the output: the same command with --resume continues after them.
    For a text model, INPUTS are texts: a language model prints their likely
    continuations (or, with --generate N, samples N tokens), a text classifier their classes.
    A model of a plugin's task prints that task's columns (english-ocr: each line's text).

    \b
    Examples:
      zoo predict tf_efficientnet_lite0.in1k cat.png
      zoo predict ./out photo1.jpg photo2.jpg --top-k 3 --json
      zoo predict ./out ./photos/ --batch-size 64     # every image in the folder
      zoo predict ./out ./photos/ --output preds.csv  # one row per image, into a file
      zoo predict ./out ./photos/ --output preds.csv --resume  # after an interrupted run
      zoo predict ./out photo.jpg --runtime onnx      # after `zoo export ./out`
      zoo predict lenet5-digits digit.png
      zoo predict lstm-text "I love recurrent neural"
      zoo predict lstm-text "I love recurrent neural" --generate 60 --seed 1
    """
    if output is not None:
        from zoo.predict.files import checked_output

        checked_output(output, overwrite)  # before the model loads
    elif overwrite or resume or workers is not None:
        raise click.UsageError("--overwrite, --resume and --workers go with --output")
    elif runtime == "auto":
        raise click.UsageError("--runtime auto goes with --output (printed predictions run eager unless --runtime onnx)")
    runtime = runtime or ("auto" if output is not None else "eager")
    from zoo.loading import require_registered_task
    from zoo.specs import is_model_dir

    if runtime != "onnx" or is_model_dir(model):  # an .onnx file's sidecar is read as it loads
        require_registered_task(model)  # a task no plugin registers: one line, before any weights load
    loaded = _load(model, runtime)
    from zoo.tasks import function, task_of

    task = task_of(loaded)
    _check_options(model, task, output, generate)
    if output is not None:
        _predict_to_file(loaded, task, inputs, output, top_k, batch_size, workers, overwrite, resume, runtime, json_)
        return
    from zoo.predict.decoded import predict_batches, task_inputs

    items = task_inputs(task, inputs)  # a missing file is named before any batch runs
    if task.predict is not None:
        options = dict(top_k=top_k, batch_size=batch_size, generate=generate, temperature=temperature, seed=seed)
        batches = function(task, "predict")(loaded, items, options)
    else:
        batches = predict_batches(loaded, task, items, top_k=top_k, batch_size=batch_size)
    if json_:
        _print_json(batches)
    elif generate is not None:
        for batch in batches:  # a sample prints as the text it continues
            for result in batch:
                click.echo(result["input"] + result["generated"])
    else:
        _print_table(task, loaded, items, batches)


def _check_options(model: str, task: Any, output: Path | None, generate: int | None) -> None:
    """Refuse --generate for a task without a predict of its own (only that samples), and --output
    for a task that reads texts."""
    if generate is not None and task.predict is None:
        raise OptionMismatch(f"--generate needs a language model; {model} is not one: it does {task.name} "
                             "(drop --generate: its answers are printed)")
    if output is not None and task.reads == "texts":
        raise ArgumentError(f"--output writes image predictions, and {model} reads text", "drop --output: texts' answers are printed")


def _load(model: str, runtime: str) -> Any:
    """The model to run: in onnxruntime, or loaded by zoo (an .onnx file needs --runtime onnx)."""
    if runtime == "onnx":
        from zoo.predict.onnx_runtime import load_onnx_model

        return load_onnx_model(model)
    if Path(model).suffix.lower() == ".onnx" and Path(model).is_file():
        raise ArgumentError(f"{model} is an ONNX export", "pass --runtime onnx to run it in onnxruntime")
    import zoo

    return zoo.load(model)


def _print_json(batches: Iterable[list[dict[str, Any]]]) -> None:
    """One JSON array, each batch's objects printed as soon as the batch is done."""
    separator = "[\n"
    for batch in batches:
        for result in batch:
            click.echo(separator + textwrap.indent(json.dumps(result, indent=2, default=str), "  "), nl=False)
            separator = ",\n"
    click.echo("[]" if separator == "[\n" else "\n]")


def _print_table(task: Any, model: Any, inputs: list[str], batches: Iterable[list[dict[str, Any]]]) -> None:
    """INPUT and the task's columns, one row per `rows` of each prediction.

    Texts (all given on the command line) print as one table sized to its cells. Images (a folder
    may hold thousands) print each batch as soon as it is done, in columns sized once: INPUT to the
    longest input, the last column not at all, the others to the first batch's cells, or to the
    model's longest label in a column of labels, at most 40 wide (a longer cell pushes its row right).
    """
    from zoo.predict.decoded import table_cells

    headers = ("INPUT", *task.columns)
    if task.reads == "texts":
        emit_table(headers, [cell for batch in batches for cell in table_cells(task, batch)])
        return
    line = ""
    for batch in batches:  # the header comes with the first batch, so an unusable first image prints nothing
        cells = table_cells(task, batch)
        if not line:
            widths = _widths(headers, inputs, cells, getattr(getattr(model, "zoo", None), "labels", None) or [])
            line = "  ".join(f"{{:<{w}}}" for w in widths)
            click.echo(line.format(*headers))
        for cell in cells:
            click.echo(line.format(*cell))


def _widths(headers: Sequence[str], inputs: list[str], cells: list[tuple[str, ...]], labels: Sequence[str]) -> list[int]:
    """The streamed table's column widths (`_print_table`)."""
    widths = [max(len(headers[0]), *map(len, inputs))]
    for i, header in enumerate(headers[1:-1], start=1):
        column = [c[i] for c in cells]
        known = labels if column and set(column) <= set(labels) else []
        widths.append(min(40, max([len(header), *map(len, column), *map(len, known)])))
    return [*widths, 0][: len(headers)]


def _predict_to_file(
    model: Any, task: Any, inputs: tuple[str, ...], output: Path, top_k: int, batch_size: int, workers: int | None,
    overwrite: bool, resume: bool, runtime: str, json_: bool,
) -> None:
    """Write the rows (a classifier's top-k, another task's decoded fields), with progress and the
    skipped files on stderr; print what was written (an ONNX export loaded by --runtime onnx runs as it is).
    Ctrl-C ends it with one line saying what is kept and how to continue (exit 130)."""
    import sys

    from zoo.cli.output import progress_interval
    from zoo.predict.files import predict_files
    from zoo.predict.partial import partial_dir
    from zoo.predict.progress import Progress

    shown = Progress(sys.stderr, None if sys.stderr.isatty() else progress_interval())
    try:
        summary = predict_files(
            model, inputs, output, top_k=top_k, batch_size=batch_size, workers=workers, overwrite=overwrite, progress=shown,
            runtime="eager" if runtime in ("eager", "torch") else "auto", task=task, resume=resume,
        )
    except KeyboardInterrupt:
        shown.close()
        work = partial_dir(output)
        kept = f"the rows so far are kept in {work}; run the same command with --resume to continue" if work.is_dir() else "nothing was kept"
        click.echo(f"Interrupted: {kept}", err=True)
        raise SystemExit(130) from None
    shown.close()
    if summary.resumed:
        click.echo(f"resumed after {summary.resumed:,} rows an interrupted run wrote", err=True)
    for line in summary.skip_report():
        click.echo(line, err=True)
    if json_:
        emit_json(summary.as_dict())
        return
    skipped = sum(summary.skipped.values())
    click.echo(
        f"wrote {summary.inputs:,} rows to {summary.output}: {summary.predicted:,} predicted, {skipped:,} skipped "
        f"({summary.seconds:.1f} s, {summary.images_per_s:.1f} images/s)"
    )


COMMANDS = [predict_command]
