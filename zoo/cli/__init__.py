"""The `zoo` command line: one module per command group, wired together here."""
from __future__ import annotations

from zoo.cli import catalog, data, evaluate, export, finetune, predict, share, weights
from zoo.cli.main import cli, main

for module in (catalog, weights, predict, finetune, evaluate, data, export, share):
    for command in module.COMMANDS:
        cli.add_command(command)

__all__ = ["cli", "main"]
