"""What several test files share that is not a fixture: the repository root and the `zoo` console script."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_zoo(*args: str, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    """Run the installed `zoo` console script in a subprocess."""
    exe = Path(sys.executable).parent / "zoo"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env={**os.environ, **(env or {})}, **kwargs)
