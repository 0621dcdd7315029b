"""docs/writing_plugins.md works as written: its files are extracted, pip-installed (offline, into a
target folder), checked with the conformance kit, and its commands load, fine-tune and export the model."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT

GUIDE = ROOT / "docs" / "writing_plugins.md"
FENCE = re.compile(r'^```\w+ title="([^"]+)"\n(.*?)^```$', re.MULTILINE | re.DOTALL)
BIN = Path(sys.executable).parent


def guide_files() -> dict[str, str]:
    """The guide's files: each fenced block that names one with title="path"."""
    return {name: body for name, body in FENCE.findall(GUIDE.read_text())}


def test_the_guide_names_every_file_of_a_complete_plugin():
    files = guide_files()
    assert {"zoo-tinynet/pyproject.toml", "zoo-tinynet/zoo_tinynet/__init__.py", "zoo-tinynet/zoo_tinynet/model.py",
            "zoo-tinynet/tests/test_conformance.py", "try.sh", "try_tinynet.py"} <= set(files)
    assert re.search(r'^version = "', files["zoo-tinynet/pyproject.toml"], re.MULTILINE)
    assert "check_plugin(" in files["zoo-tinynet/tests/test_conformance.py"]


@pytest.mark.slow
def test_the_guide_works_verbatim(tmp_path):
    """Run try.sh line by line in a folder holding the guide's files; `pip install` goes to a target folder."""
    for name, body in guide_files().items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(body)
    site = tmp_path / "site"
    env = {**os.environ, "PYTHONPATH": str(site), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "PIP_NO_INDEX": "1"}
    transcript = []
    for line in (tmp_path / "try.sh").read_text().splitlines():
        argv = shlex.split(line)
        if argv[:2] == ["pip", "install"]:  # offline, beside the project's venv rather than into it
            argv = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(site), *argv[2:]]
        elif argv[0] == "python":
            argv[0] = sys.executable
        done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        transcript.append(f"$ {line}\n{done.stdout}{done.stderr}")
        assert done.returncode == 0, "\n".join(transcript)
    print("\n".join(transcript))
    out = "\n".join(transcript)
    assert "tinynet" in out.split("$ zoo list tinynet", 1)[1].split("$ ", 1)[0]
    assert re.search(r"1 passed", out)
    tuned = dict(re.findall(r"^(val_accuracy|majority_baseline) +([0-9.]+)$", out, re.MULTILINE))
    assert float(tuned["val_accuracy"]) >= float(tuned["majority_baseline"]) + 0.3, out  # it learns, in 3 epochs
    assert (tmp_path / "tinynet-digits" / "config.json").is_file()
    assert (tmp_path / "tinynet-digits" / "model.onnx").is_file()
    assert (tmp_path / "tinynet.onnx").is_file() and "parity True" in out
