"""`zoo export`: write a model in a deployable format and prove it computes the same function."""
from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click

from zoo.cli.output import emit_json, emit_table, json_option


@click.command("export")
@click.argument("model")
@click.option(
    "-f", "--format", "format_", help="onnx (default), torchscript, pt2, safetensors, or a plugin's format."
)
@click.option(
    "-o", "--output", type=click.Path(), help="File (folder for safetensors) to write. Default: <name><suffix> "
    "here, or model<suffix> inside a model directory."
)
@click.option("--opset", type=click.IntRange(min=7), help="ONNX opset version (default: the exporter's).")
@click.option("--static", is_flag=True, help="Fix the batch (1) and sequence length instead of keeping them dynamic.")
@click.option("--no-check", is_flag=True, help="Skip the parity check against the eager model.")
@click.option(
    "--atol", type=click.FloatRange(min=0), default=1e-4, show_default=True,
    help="Largest absolute difference the parity check allows."
)
@click.option("--check-only", is_flag=True, help="Only check the existing export at -o against MODEL (updates its sidecar).")
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
@json_option
def export_command(
    model: str,
    format_: str | None,
    output: str | None,
    opset: int | None,
    static: bool,
    no_check: bool,
    atol: float,
    check_only: bool,
    quiet: bool,
    json_: bool,
) -> None:
    """Export MODEL (a registry name or a model directory) and check parity with eager PyTorch.

    The parity check feeds fresh random inputs at batch sizes 1, 2, 7 (and, for sequence models,
    lengths 1, 13, 64) to both, prints the worst absolute difference per shape, and records it in a
    JSON sidecar next to the file (<file>.json). A failure writes nothing and exits 1.

    \b
    Examples:
      zoo export tf_efficientnet_lite0.in1k --format onnx -o m.onnx
      zoo export lstm-text --format onnx -o lm.onnx
      zoo export ./out                      # writes ./out/model.onnx
      zoo export mlp --format pt2 -o mlp.pt2 --json
      zoo export mlp.digits -o digits.onnx --check-only   # a model with weights, or a directory
    """
    from zoo.exporting import exporters

    known = exporters()
    if format_ is not None and format_ not in known:
        raise click.BadParameter(f"unknown format {format_!r}; use one of: {', '.join(sorted(known))}", param_hint="--format")
    if check_only and output is None:
        raise click.UsageError("--check-only needs -o, the export to check")
    if not (quiet or json_) and sys.stderr.isatty():
        click.echo(f"{'checking' if check_only else 'exporting'} {model}…", err=True)
    with _terminate_cleanly():
        if check_only:
            _check_only(model, output, format_, atol, json_)
        else:
            _export(model, output, format_ or "onnx", opset, static, not no_check, atol, json_)


def _export(model: str, output: str | None, format_: str, opset: int | None, static: bool, check: bool,
            atol: float, json_: bool) -> None:
    from zoo.errors import ParityError
    from zoo.exporting import export

    try:
        result = export(model, output, format_, opset=opset, static=static, check=check, atol=atol)
    except ParityError as exc:
        if not json_:
            _print_report(exc.report)  # type: ignore[attr-defined]
        raise
    if json_:
        emit_json({**result.record, "path": str(result.path), "sidecar": str(result.sidecar)})
        return
    if result.parity is not None:
        _print_report(result.parity)
    click.echo(f"wrote {_shown(result.path)} ({result.format}, {_size(result.path)}), sidecar {_shown(result.sidecar)}")


def _check_only(model: str, output: str, format_: str | None, atol: float, json_: bool) -> None:
    from zoo.errors import ParityError
    from zoo.exporting import verify

    try:
        report = verify(model, output, format_, atol=atol)
    except ParityError as exc:
        _show_check(exc.report, json_)  # type: ignore[attr-defined]
        raise
    _show_check(report, json_)


def _show_check(report: Any, json_: bool) -> None:
    if json_:
        emit_json(report.to_dict())
    else:
        _print_report(report)


def _print_report(report: Any) -> None:
    def shape(s: Any) -> str:
        return "×".join(map(str, s))

    def float64(c: Any) -> str:
        ref = c.float64
        return f"export {ref['export_error']:.2g}, eager {ref['eager_error']:.2g}" if ref else "-"

    judged = any(c.float64 for c in report.cases)
    emit_table(
        ("INPUT", "OUTPUTS", "MAX |Δ|", *(("FROM FLOAT64",) if judged else ())),
        [
            (shape(c.input_shape), ", ".join(shape(s) for s in c.output_shapes), c.error or f"{c.max_abs_diff:.3g}",
             *((float64(c),) if judged else ()))
            for c in report.cases
        ],
    )
    click.echo(report.summary())


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _size(path: Path) -> str:
    total = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if total >= scale:
            return f"{total / scale:.1f} {unit}"
    return f"{total} B"


class _terminate_cleanly:
    """Turn SIGTERM into SystemExit while exporting, so the staging folder is removed on `kill`."""

    def __enter__(self) -> None:
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, _exit)

    def __exit__(self, *exc: Any) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)


def _exit(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


COMMANDS = [export_command]
