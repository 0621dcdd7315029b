"""`zoo finetune MODEL --data PATH`: a new head on a folder or file of examples, written as a model directory."""
from __future__ import annotations

import sys
from typing import Any

import click

from zoo.cli.output import emit_json, json_option


class ProgressBars:
    """Progress on stderr: a bar for the feature pass and for each epoch's batches, a line per epoch."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bars: dict[str, Any] = {}

    def __call__(self, stage: str, done: int, total: int, info: dict) -> None:
        if not self.enabled:
            return
        if stage == "epoch":
            self._line(done, total, info)
            return
        bar = self.bars.get(stage)
        if bar is None:
            from tqdm import tqdm

            label = "features" if stage == "features" else f"epoch {info.get('epoch')}"
            bar = self.bars[stage] = tqdm(total=total, desc=label, file=sys.stderr, leave=False, dynamic_ncols=True)
        bar.update(done - bar.n)
        if "loss" in info:
            bar.set_postfix(loss=f"{info['loss']:.4f}", refresh=False)
        if done >= total:
            bar.close()
            del self.bars[stage]

    @staticmethod
    def _line(epoch: int, epochs: int, info: dict) -> None:
        click.echo(
            f"epoch {epoch}/{epochs}  train_loss {info['train_loss']:.4f}  val_loss {info['val_loss']:.4f}  "
            f"val_accuracy {info['val_accuracy']:.4f}  {info['seconds']:.1f}s  ETA {info['eta']:.0f}s",
            err=True,
        )


@click.command("finetune")
@click.argument("model")
@click.option("--data", "data", required=True, type=click.Path(), help="Image folder, text folder, .csv file or text corpus.")
@click.option("--output", "-o", type=click.Path(file_okay=False), help="The model directory to write [default: ./<model>-finetuned].")
@click.option("--strategy", help="head (the default), last-n:K or full (the default for a language model).")
@click.option("--epochs", default=5, show_default=True, type=int)
@click.option("--batch-size", default=32, show_default=True, type=int)
@click.option("--lr", default=1e-3, show_default=True, type=float, help="The head's learning rate (lower groups: × --lr-decay per group).")
@click.option("--lr-decay", default=0.5, show_default=True, type=float, help="Discriminative rate factor between groups.")
@click.option("--weight-decay", default=0.01, show_default=True, type=float)
@click.option("--label-smoothing", default=0.0, show_default=True, type=float)
@click.option("--patience", default=3, show_default=True, type=int, help="Epochs without a better val loss before stopping (0: never).")
@click.option("--augment", is_flag=True, help="Random resized crops and flips (the backbone then runs every epoch).")
@click.option("--val-split", default=0.2, show_default=True, type=float, help="Held-out share of each class when there is no val/ folder.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"]))
@click.option("--workers", default=0, show_default=True, type=int, help="Data-loading processes.")
@click.option("--image-size", type=int, help="Train at this size instead of the model's input size.")
@click.option("--steps-per-epoch", type=int, help="Batches per epoch, drawn at random (default: the whole training set).")
@click.option("--max-length", default=256, show_default=True, type=int, help="Tokens kept per text.")
@click.option("--format", "data_format", help="The data format, when detection is not wanted (zoo.data formats).")
@click.option("--text-column", default="text", show_default=True, help="CSV: the column holding the text.")
@click.option("--label-column", default="label", show_default=True, help="CSV: the column holding the label.")
@click.option("--strict-data", is_flag=True, help="Fail on a corrupt or empty file instead of skipping it.")
@click.option("--no-cache", is_flag=True, help="Run the backbone every epoch even when its features could be cached.")
@click.option("--random-init", is_flag=True, help="Start from random weights instead of the pretrained ones.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its last checkpoint.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output directory.")
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
@json_option
def finetune_command(model: str, data: str, quiet: bool, json_: bool, no_cache: bool, random_init: bool, **options: Any) -> None:
    """Fine-tune MODEL on --data and write a model directory.

    \b
    Examples:
      zoo data lfw-faces ./faces
      zoo finetune tf_efficientnet_lite0.in1k --data ./faces --epochs 5
      zoo finetune resnet18 --data ./folder --strategy last-n:2 --augment
      zoo finetune lstm-text --data lines.csv --text-column text --label-column play --json
    """
    from zoo.finetune import finetune

    show = not quiet and not json_ and sys.stderr.isatty()
    result = finetune(
        model, data, cache=not no_cache, pretrained=False if random_init else None,
        progress=ProgressBars(show), **options,
    )
    if not quiet and not json_:
        for reason, count in result.data.get("skipped", {}).items():
            click.echo(f"Warning: skipped {count} file(s): {reason}", err=True)
    if json_:
        emit_json(result.summary())
        return
    metrics = result.metrics
    rows = [("output", str(result.output))]
    rows += [(key, f"{metrics[key]:.4f}") for key in ("val_accuracy", "val_loss", "val_nats_per_char", "val_nats_per_char_before", "majority_baseline") if metrics.get(key) is not None]
    rows += [("epochs", str(len(result.history))), ("features", result.features), ("seconds", f"{result.seconds:.1f}")]
    width = max(len(key) for key, _ in rows)
    for key, value in rows:
        click.echo(f"{key.ljust(width)}  {value}")


COMMANDS = [finetune_command]
