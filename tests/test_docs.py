"""The docs keep up with the code: every hook and every CLI command is documented."""
from __future__ import annotations

import inspect
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


@pytest.fixture(scope="module")
def builtin_commands():
    import os

    os.environ["ZOO_LOAD_PLUGINS"] = ""  # only what zoo itself ships must be documented here
    try:
        return command_paths(cli)
    finally:
        del os.environ["ZOO_LOAD_PLUGINS"]


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


def test_every_public_name_is_in_the_python_api_docs():
    text = (DOCS / "python_api.md").read_text()
    for name in zoo.__all__:
        if name != "__version__":
            assert name in text, f"docs/python_api.md does not mention {name}"


def test_docs_index_links_resolve():
    for target in re.findall(r"\]\(([^)#]+\.md)\)", (DOCS / "index.md").read_text()):
        assert (DOCS / target).exists(), f"docs/index.md links to missing {target}"
