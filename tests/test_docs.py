"""The docs keep up with the code: every hook and every CLI command is documented."""
from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import click
import pytest

import zoo
from zoo import hookspecs
from zoo.cli import cli

from helpers import ROOT

DOCS = ROOT / "docs"
HOOKS = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("register_")]


def command_paths(group: click.Group, prefix: str = "zoo") -> list[tuple[str, click.Command]]:
    ctx = click.Context(group)
    out = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        path = f"{prefix} {name}"
        out.append((path, command))
        if isinstance(command, click.Group):
            out += command_paths(command, path)
    return out


def builtin_cli() -> click.Group:
    """The commands zoo itself ships (each `zoo.cli` module's COMMANDS), without any plugin's."""
    import zoo.cli

    group = click.Group("zoo")
    for info in pkgutil.iter_modules(zoo.cli.__path__):
        for command in getattr(importlib.import_module(f"zoo.cli.{info.name}"), "COMMANDS", ()):
            group.add_command(command)
    return group


@pytest.fixture
def builtin_commands():
    """Only what zoo itself ships must be documented here: installed plugins may add their own commands."""
    return command_paths(builtin_cli())


def test_every_hook_is_documented_with_its_signature_and_an_example():
    text = (DOCS / "plugin_hooks.md").read_text()
    for hook in HOOKS:
        section = re.search(rf"^## {hook}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
        assert section, f"docs/plugin_hooks.md has no section '## {hook}'"
        params = ", ".join(inspect.signature(getattr(hookspecs, hook)).parameters)
        assert f"{hook}({params}" in section.group(1), f"{hook}: signature missing"
        assert "@zoo.hookimpl" in section.group(1), f"{hook}: example missing"


def test_every_cli_command_is_documented_and_has_help(builtin_commands):
    text = (DOCS / "cli.md").read_text()
    assert builtin_commands
    for path, command in builtin_commands:
        assert f"### `{path}`" in text, f"docs/cli.md has no section for `{path}`"
        assert (command.help or "").strip(), f"`{path}` has no help text"


def test_the_builtin_commands_are_the_cli_s_own_and_a_plugin_command_is_not_one_of_them(monkeypatch):
    cli.list_commands(click.Context(cli))  # plugin commands (an installed third-party plugin's too) are loaded now
    builtin = dict(command_paths(builtin_cli()))
    assert builtin == {path: command for path, command in command_paths(cli) if path in builtin}
    others = [path for path, command in command_paths(cli) if path not in builtin and getattr(command.callback, "__module__", "").startswith("zoo.")]
    assert not others, f"commands of zoo itself missing from the built-in list: {others}"
    monkeypatch.setitem(cli.commands, "undocumented-plugin-command", click.Command("undocumented-plugin-command"))
    assert "zoo undocumented-plugin-command" in dict(command_paths(cli))
    assert "zoo undocumented-plugin-command" not in dict(command_paths(builtin_cli()))


def test_every_public_name_is_in_the_python_api_docs():
    text = (DOCS / "python_api.md").read_text()
    for name in zoo.__all__:
        if name != "__version__":
            assert name in text, f"docs/python_api.md does not mention {name}"


def test_docs_index_links_resolve():
    for target in re.findall(r"\]\(([^)#]+\.md)\)", (DOCS / "index.md").read_text()):
        assert (DOCS / target).exists(), f"docs/index.md links to missing {target}"
