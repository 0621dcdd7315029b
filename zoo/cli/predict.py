"""`zoo predict`: run a model on inputs and print the top-k answers (images; texts: continuations or classes)."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import click

from zoo.cli.output import emit_json, emit_table, json_option
from zoo.errors import ArgumentError


@click.command("predict")
@click.argument("model")
@click.argument("inputs", nargs=-1, required=True)
@click.option("--top-k", "-k", "top_k", default=5, show_default=True, type=click.IntRange(min=1), help="Classes per input.")
@click.option(
    "--runtime", type=click.Choice(["eager", "onnx", "torch"]), default="eager", show_default=True,
    help="eager: PyTorch (torch is another name for it); onnx: run the exported model.onnx of a model directory "
    "(or an .onnx file) in onnxruntime.",
)
@click.option(
    "--batch-size", "-b", "batch_size", default=32, show_default=True, type=click.IntRange(min=1),
    help="Inputs the model sees at once; memory grows with it, not with the number of inputs.",
)
@click.option(
    "--output", "-o", type=click.Path(dir_okay=True, path_type=Path), metavar="FILE.csv|FILE.jsonl",
    help="Images: write one row per file (path, top-k labels and probabilities; skipped files with an error) to this file.",
)
@click.option("--overwrite", is_flag=True, help="With --output: replace an existing file.")
@click.option(
    "--workers", "-w", type=click.IntRange(min=0), metavar="N",
    help="With --output: processes that decode and preprocess images (0: the main one) [default: one per spare core, at most 4].",
)
@click.option("--generate", type=click.IntRange(min=0), metavar="N", help="Language models: sample N tokens after each text.")
@click.option("--temperature", default=0.7, show_default=True, type=click.FloatRange(min=0), help="With --generate: 0 is greedy.")
@click.option("--seed", default=0, show_default=True, type=int, help="With --generate: the same seed, the same text.")
@json_option
def predict_command(
    model: str, inputs: tuple[str, ...], top_k: int, runtime: str, batch_size: int, output: Path | None,
    overwrite: bool, workers: int | None, generate: int | None, temperature: float, seed: int, json_: bool,
) -> None:
    """Classify INPUTS with MODEL (a name, a model directory or hf://org/repo).

    Images may be PNG or JPEG in any mode (L, RGB, RGBA, CMYK, P); each model's own preprocessing
    and labels are used. A folder stands for its own image files, in name order. Images run in
    batches of --batch-size, each printed as soon as it is done, so memory stays flat however many
    there are. With --output FILE.csv or FILE.jsonl, a folder stands for its image files at any
    depth, in path order, and every file gets one row, in order, written as the run goes and
    renamed into place at the end; a file that cannot be read is skipped, counted on stderr and
    named in its row; progress goes to stderr.
    For a text model, INPUTS are texts: a language model prints their likely
    continuations (or, with --generate N, samples N tokens), a text classifier their classes.

    \b
    Examples:
      zoo predict tf_efficientnet_lite0.in1k cat.png
      zoo predict ./out photo1.jpg photo2.jpg --top-k 3 --json
      zoo predict ./out ./photos/ --batch-size 64     # every image in the folder
      zoo predict ./out ./photos/ --output preds.csv  # one row per image, into a file
      zoo predict ./out photo.jpg --runtime onnx      # after `zoo export ./out`
      zoo predict lenet5-digits digit.png
      zoo predict lstm-text "I love recurrent neural"
      zoo predict lstm-text "I love recurrent neural" --generate 60 --seed 1
    """
    if output is not None:
        from zoo.predict.files import checked_output

        checked_output(output, overwrite)  # before the model loads
    elif overwrite or workers is not None:
        raise click.UsageError("--overwrite and --workers go with --output")
    loaded = _load(model, runtime)
    from zoo.tasks import is_builtin, task_of

    task = task_of(loaded)  # a task no plugin registers: one line naming those that are
    if not is_builtin(task):
        _predict_task(loaded, task, model, inputs, top_k, output, generate, json_)
        return
    from zoo.predict.texts import is_text_model

    if is_text_model(loaded) and output is not None:
        raise ArgumentError(f"--output writes image predictions, and {model} reads text", "drop --output: texts' answers are printed")
    if is_text_model(loaded):
        _predict_texts(loaded, inputs, top_k, batch_size, generate, temperature, seed, json_)
        return
    if _reads_tokens(loaded):
        raise ArgumentError(
            f"{model} reads token ids but carries no vocabulary, so text cannot be turned into its input",
            "predict with a text model that has one: lstm-text, or a directory `zoo finetune` wrote from text",
        )
    if generate is not None:
        raise click.UsageError(f"--generate needs a language model; {model} is not one")
    if output is not None:
        _predict_to_file(loaded, inputs, output, top_k, batch_size, workers, overwrite, json_)
        return
    _predict_images(loaded, inputs, top_k, batch_size, json_)


def _load(model: str, runtime: str) -> Any:
    """The model to run: in onnxruntime, or loaded by zoo (an .onnx file needs --runtime onnx)."""
    if runtime == "onnx":
        from zoo.predict.onnx_runtime import load_onnx_model

        return load_onnx_model(model)
    if Path(model).suffix.lower() == ".onnx" and Path(model).is_file():
        raise ArgumentError(f"{model} is an ONNX export", "pass --runtime onnx to run it in onnxruntime")
    import zoo

    return zoo.load(model)


def _predict_images(model: Any, inputs: tuple[str, ...], top_k: int, batch_size: int, json_: bool) -> None:
    """Print each batch's results as soon as it is done: a JSON array, or one table whose columns
    are sized up front from the input names and the labels."""
    from zoo.predict.images import classify_image_batches, image_inputs

    paths = image_inputs(inputs)
    batches = classify_image_batches(model, paths, top_k=top_k, batch_size=batch_size)
    if json_:
        separator = "[\n"
        for batch in batches:
            for result in batch:
                click.echo(separator + textwrap.indent(json.dumps(result, indent=2, default=str), "  "), nl=False)
                separator = ",\n"
        click.echo("\n]")
        return
    labels = getattr(model.zoo, "labels", None) or ["99999"]  # unnamed classes print their index
    # A few of ImageNet's names run past 100 characters: those rows push their probability right.
    widths = (max([5, *(len(str(p)) for p in paths)]), max(4, len(str(top_k))), min(40, max([5, *map(len, labels)])), 0)
    row = "  ".join(f"{{:<{w}}}" for w in widths)
    header = row.format("INPUT", "RANK", "LABEL", "PROBABILITY")
    for batch in batches:  # the header comes with the first batch, so an unusable first image prints nothing
        if header:
            click.echo(header)
            header = ""
        for r in batch:
            for p in r["predictions"]:
                click.echo(row.format(r["input"], p["rank"], p["label"], f"{p['probability']:.4f}"))


def _predict_to_file(
    model: Any, inputs: tuple[str, ...], output: Path, top_k: int, batch_size: int, workers: int | None, overwrite: bool,
    json_: bool,
) -> None:
    """Write the rows, with progress and the skipped files on stderr; print what was written."""
    import sys

    from zoo.cli.output import progress_interval
    from zoo.predict.files import predict_files
    from zoo.predict.progress import Progress

    shown = Progress(sys.stderr, None if sys.stderr.isatty() else progress_interval())
    summary = predict_files(
        model, inputs, output, top_k=top_k, batch_size=batch_size, workers=workers, overwrite=overwrite, progress=shown,
    )
    shown.close()
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


def _predict_task(loaded: Any, task: Any, model: str, inputs: tuple[str, ...], top_k: int, output: Path | None,
                  generate: int | None, json_: bool) -> None:
    """A plugin's task: its prepare, the model, its decode; printed as its columns (or --json objects)."""
    from zoo.predict.decoded import predict_task, table_rows

    if output is not None or generate is not None:
        raise ArgumentError(f"--output and --generate are for classifiers and language models; {model} does {task.name}",
                            "drop them: the predictions are printed")
    results = predict_task(loaded, task, inputs, top_k)
    if json_:
        emit_json(results)
    else:
        emit_table(*table_rows(task, results))


def _reads_tokens(model: Any) -> bool:
    """Whether the model's registered architecture takes token ids (an untrained rnn/lstm/gru, say)."""
    from zoo.registry import default_registry

    arch = default_registry().archs.get(getattr(getattr(model, "zoo", None), "arch", None) or "")
    return arch is not None and arch.input.kind == "tokens"


def _predict_texts(
    model, texts: tuple[str, ...], top_k: int, batch_size: int, generate: int | None, temperature: float, seed: int,
    json_: bool,
) -> None:
    from zoo.predict.texts import classify_texts, continue_texts, generate_texts, is_language_model

    if generate is not None:
        results = generate_texts(model, texts, generate, temperature=temperature, seed=seed)
        if json_:
            emit_json(results)
        else:
            for r in results:
                click.echo(r["input"] + r["generated"])
        return
    if not is_language_model(model):
        results = classify_texts(model, texts, top_k=top_k, batch_size=batch_size)
        rows = [(r["input"], p["rank"], p["label"], f"{p['probability']:.4f}") for r in results for p in r["predictions"]]
        headers = ("INPUT", "RANK", "LABEL", "PROBABILITY")
    else:
        results = continue_texts(model, texts, top_k=top_k)
        rows = [
            (r["input"], c["rank"], json.dumps(c["text"], ensure_ascii=False), f"{c['probability']:.4f}")
            for r in results for c in r["continuations"]
        ]
        headers = ("INPUT", "RANK", "CONTINUATION", "PROBABILITY")
    if json_:
        emit_json(results)
    else:
        emit_table(headers, rows)


COMMANDS = [predict_command]
