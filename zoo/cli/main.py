"""The `zoo` group: error mapping, plugin commands, and the wiring of the command modules."""
from __future__ import annotations

import os
import sys
import warnings
from typing import Any

import click

from zoo import __version__
from zoo.errors import ZooError

EPILOG = """\b
Examples:
  zoo list 'resnet*' --family cnn --pretrained
  zoo info mlp
  zoo plugins --json
"""


class ZooGroup(click.Group):
    """A click group that adds the plugins' commands on first lookup and maps errors to one line."""

    plugins_loaded = False

    def _load_plugin_commands(self) -> None:
        if not self.plugins_loaded:
            self.plugins_loaded = True
            from zoo.plugins import default_plugin_manager

            default_plugin_manager().call_commands(self)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_plugin_commands()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        self._load_plugin_commands()
        return super().get_command(ctx, name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, KeyboardInterrupt, BrokenPipeError):
            raise
        except Exception as exc:
            if _debug():
                raise
            click.echo(error_line(exc), err=True)
            ctx.exit(1)


def error_line(exc: Exception) -> str:
    """The one `Error: ...` line for an exception that reached the CLI: a ZooError, an OSError zoo can
    explain (permissions, a read-only ZOO_HOME, a full disk), or else an internal error to report."""
    if isinstance(exc, OSError):
        from zoo.cache import zoo_home
        from zoo.errors import storage_error

        exc = storage_error(exc, home=zoo_home()) or exc
    if isinstance(exc, ZooError):
        return f"Error: {exc}"
    return f"Error: internal error: {type(exc).__name__}: {exc} (run with ZOO_DEBUG=1 for the traceback and report it)"


def _debug() -> bool:
    return os.environ.get("ZOO_DEBUG", "") not in ("", "0")


@click.group(cls=ZooGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="zoo")
def cli() -> None:
    """zoo: a model zoo for PyTorch. List, inspect, load, fine-tune and export models."""


def _format_warning(message: Any, category: Any, filename: str, lineno: int, line: str | None = None) -> str:
    return f"Warning: {message}\n"


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    warnings.formatwarning = _format_warning
    try:
        cli.main(args=argv, prog_name="zoo")
    except BrokenPipeError:  # `zoo list | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except Exception as exc:  # raised outside a command (`zoo --help` loads the plugins' commands)
        if _debug():
            raise
        click.echo(error_line(exc), err=True)
        sys.exit(1)

