"""The wheel: `pip install .` ships the core, the built-in plugins and registry.yaml, and `zoo list` runs from it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

from helpers import ROOT


def test_wheel_ships_core_plugins_and_registry_and_lists_from_the_install(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True,
    )
    (wheel,) = tmp_path.glob("zoo-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"zoo/__init__.py", "zoo/registry.yaml", "zoo/py.typed", "zoo_perceptron/__init__.py", "zoo_mlp/model.py"} <= names
    assert not any(name.startswith(("tests/", "plugins/", "benchmarks/")) for name in names)
    assert any(name.endswith("entry_points.txt") for name in names)

    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
        check=True, capture_output=True,
    )
    code = (
        "import json, zoo, zoo_mlp\n"
        "from zoo.registry_file import default_registry_path\n"
        "from zoo.cli import cli\n"
        "print(json.dumps([zoo.__file__, zoo_mlp.__file__, str(default_registry_path())]))\n"
        "cli.main(args=['list', '--json'], standalone_mode=False)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    first, rest = result.stdout.split("\n", 1)
    assert all(path.startswith(str(site)) for path in json.loads(first)), first
    assert {"perceptron", "mlp"} <= {row["name"] for row in json.loads(rest)}
