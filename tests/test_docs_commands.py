"""The walk-throughs run as written: every `zoo ...` line of a docs block that starts from
`zoo data` runs, in order, in one fresh folder (the data it needs is what the block writes)."""
from __future__ import annotations

import re
import shlex

import pytest

from helpers import ROOT, run_zoo

WALK_THROUGHS = ["docs/finetune.md"]
# A command the docs say takes minutes here is skipped, with that as the reason; so is one that needs the Hub.
MINUTES = re.compile(r"#.*takes about (\d+) minutes")


def walk_throughs() -> list[tuple[str, list[str]]]:
    """(page:line, its `zoo` commands) for each fenced block that begins with `zoo data`."""
    found = []
    for page in WALK_THROUGHS:
        text = (ROOT / page).read_text(encoding="utf-8")
        for block in re.finditer(r"^```\n(zoo data .*?)^```", text, re.M | re.S):
            line = text.count("\n", 0, block.start()) + 2
            commands = [c for c in block.group(1).splitlines() if c.startswith("zoo ")]
            found.append((f"{page}:{line}", commands))
    return found


def skip_reason(command: str) -> str | None:
    if minutes := MINUTES.search(command):
        return f"documented as taking about {minutes.group(1)} minutes here"
    if "hf://" in command or command.startswith("zoo pull"):
        return "needs the Hugging Face Hub"
    return None


def test_the_walk_throughs_are_found():
    blocks = dict(walk_throughs())
    assert len(blocks) >= 2 and all(blocks.values())


@pytest.mark.slow
@pytest.mark.parametrize("where, commands", walk_throughs(), ids=[w for w, _ in walk_throughs()])
def test_every_documented_command_runs_as_written(where, commands, tmp_path):
    for index, command in enumerate(commands):
        reason = skip_reason(command)
        if reason is not None:  # what follows may need its output: the rest of the block is skipped too
            pytest.skip(f"{command!r} ({reason}) and the {len(commands) - index - 1} command(s) after it")
        done = run_zoo(*shlex.split(command, comments=True)[1:], cwd=tmp_path, env={"HF_HUB_OFFLINE": "1"}, timeout=600)
        assert done.returncode == 0, f"{where}: `{command}` failed: {done.stderr.strip()[-800:]}"
