"""Writing data to stdout: JSON, or an aligned table; and how often progress is logged to a stderr
that is not a terminal (the progress itself goes to stderr from each command)."""
from __future__ import annotations

import json
import math
import os
from typing import Any, Sequence

import click


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def emit_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(h) for h in headers], *[["" if c is None else str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())


def human_count(n: int | None) -> str:
    """11689512 -> '11.7M'."""
    if n is None:
        return "?"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f}{unit}"
    return str(n)


json_option = click.option("json_", "--json", is_flag=True, help="Print JSON on stdout instead of a table.")


PROGRESS_SECONDS = "ZOO_PROGRESS_SECONDS"


def progress_interval() -> float:
    """Seconds between two progress lines when stderr is not a terminal: $ZOO_PROGRESS_SECONDS, else 60."""
    from zoo.errors import ArgumentError

    value = os.environ.get(PROGRESS_SECONDS, "").strip() or "60"
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not seconds >= 0 or math.isinf(seconds):
        raise ArgumentError(f"{PROGRESS_SECONDS} must be a number of seconds, got {value!r}", f"unset it, or set {PROGRESS_SECONDS}=60")
    return seconds
