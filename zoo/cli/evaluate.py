"""`zoo eval MODEL --data PATH`: accuracy, per-class precision/recall/F1, confusion matrix; nats/char for a language model."""
from __future__ import annotations

import sys
from typing import Any

import click

from zoo.cli.output import emit_json, emit_table, json_option

# A confusion matrix wider than this is left to --json and --plot.
TABLE_CLASSES = 20


@click.command("eval")
@click.argument("model")
@click.option("--data", "data", required=True, type=click.Path(), help="Image folder, text folder, .csv file; a corpus for a language model.")
@click.option(
    "--split", type=click.Choice(["all", "val"]), default="all", show_default=True,
    help="val: only the samples the model's fine-tuning held out (its val_split and seed).",
)
@click.option("--plot", type=click.Path(dir_okay=False), help="Write the confusion matrix as a PNG here.")
@click.option("--batch-size", "-b", "batch_size", default=64, show_default=True, type=click.IntRange(min=1), help="Examples per batch.")
@click.option("--workers", default=0, show_default=True, type=click.IntRange(min=0), help="Data-loading processes.")
@click.option("--top-k", "top_k", default=5, show_default=True, type=click.IntRange(min=1), help="Top-k accuracy (models with at least k classes).")
@click.option("--data-format", help="The data format, when detection is not wanted [default: the fine-tune's].")
@click.option("--text-column", help="CSV: the column holding the text [default: the fine-tune's, else text].")
@click.option("--label-column", help="CSV: the column holding the label [default: the fine-tune's, else label].")
@click.option("--max-windows", type=click.IntRange(min=1), metavar="N", help="Language models: score a seeded sample of N windows.")
@click.option("--seed", default=0, show_default=True, type=int, help="The seed of the --max-windows sample.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True, help="Where to run.")
@click.option(
    "--runtime", type=click.Choice(["eager", "onnx"]), default="eager", show_default=True,
    help="onnx: run the model.onnx that `zoo export` wrote in the model directory.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
@json_option
def eval_command(model: str, data: str, plot: str | None, quiet: bool, json_: bool, **options: Any) -> None:
    """Evaluate MODEL on --data: accuracy, loss, top-5, per-class precision/recall/F1, confusion matrix.

    The data is read and preprocessed as `zoo finetune` reads it, and its classes are matched to
    the model's labels by name (it may hold fewer). --split val evaluates the samples the model's
    fine-tuning held out, and reproduces the val_accuracy it reported. A language model is scored
    on a corpus (a .txt/.md file or a folder of them): nats and bits per character, perplexity.

    \b
    Examples:
      zoo eval ./lite0-faces --data ./faces --split val
      zoo eval ./lite0-faces --data ./test-faces --plot confusion.png
      zoo eval lenet5-digits --data ./digits --json
      zoo eval ./lines-model --data lines.csv --label-column play
      zoo eval lstm-text --data ./plays --max-windows 2000
    """
    from zoo.evaluating import evaluate

    bar = _ProgressBar(enabled=not quiet and not json_ and sys.stderr.isatty())
    try:
        report = evaluate(model, data, progress=bar, **options)
    finally:
        bar.close()
    if not quiet and not json_:
        for line in report.data.get("skip_report", []):
            click.echo(f"Warning: {line}", err=True)
    if plot:
        _plot(report, plot)
    if json_:
        emit_json(report.to_dict())
        return
    _print_report(report)


class _ProgressBar:
    """A bar on stderr over the examples evaluated."""

    def __init__(self, enabled: bool):
        self.enabled, self.bar = enabled, None

    def __call__(self, stage: str, done: int, total: int, info: dict) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=stage, unit="ex", file=sys.stderr, leave=False, dynamic_ncols=True)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _plot(report: Any, path: str) -> None:
    from zoo.errors import ArgumentError
    from zoo.finetuning.report import confusion_png
    from zoo.fsio import atomic_path

    if not report.confusion_matrix:
        raise ArgumentError(f"{report.model} is a language model: there is no confusion matrix to plot", "drop --plot")
    with atomic_path(path) as tmp:
        confusion_png(report.confusion_matrix, report.labels, tmp)


def _print_report(report: Any) -> None:
    rows = [("model", report.model), ("data", f"{report.data['path']} ({report.data['format']}, split {report.split})"),
            ("n", str(report.n))]
    figures = ("accuracy", "top_k_accuracy", "loss", "nats_per_char", "bits_per_char", "perplexity")
    for key in figures:
        value = getattr(report, key)
        if value is not None:
            rows.append((f"top-{report.top_k} accuracy" if key == "top_k_accuracy" else key.replace("_", " "), f"{value:.4f}"))
    if report.windows is not None:
        rows.append(("windows", f"{report.windows} of {report.windows_total}"))
    rows += [(key.replace("_", " "), _figure(value)) for key, value in report.metrics.items()]  # a plugin task's
    rows.append(("examples/s", f"{report.examples_per_second:.1f}"))
    width = max(len(key) for key, _ in rows)
    for key, value in rows:
        click.echo(f"{key.ljust(width)}  {value}")
    if not report.per_class:
        return
    click.echo("")
    emit_table(
        ("CLASS", "PRECISION", "RECALL", "F1", "SUPPORT"),
        [(label, _figure(m["precision"]), _figure(m["recall"]), _figure(m["f1"]), m["support"]) for label, m in report.per_class.items()]
        + [("(macro)", *(_figure(report.macro.get(k)) for k in ("precision", "recall", "f1")), report.n)],
    )
    click.echo("")
    if len(report.labels) > TABLE_CLASSES:
        click.echo(f"confusion matrix: {len(report.labels)} classes, see --json or --plot")
        return
    click.echo("confusion matrix (rows: true, columns: predicted)")
    emit_table(("", *report.labels), [(label, *row) for label, row in zip(report.labels, report.confusion_matrix)])


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


COMMANDS = [eval_command]
