"""Cold-process `zoo list` against `python -c "import timm; timm.list_models()"`.

Runs each command several times in fresh processes, interleaved so machine noise hits both alike,
and prints both medians and their ratio. Target: zoo at most 0.10 times timm.

    python benchmarks/list_speed.py [--runs 7]
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    zoo_exe = shutil.which("zoo") or str(Path(sys.executable).parent / "zoo")
    commands = {
        "zoo list": [zoo_exe, "list"],
        "timm.list_models()": [sys.executable, "-c", "import timm; timm.list_models()"],
    }
    for command in commands.values():  # warm the file cache once
        timed(command)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.runs):
        for name, command in commands.items():
            times[name].append(timed(command))
    zoo_median = statistics.median(times["zoo list"])
    timm_median = statistics.median(times["timm.list_models()"])
    print(f"{'command':<22}{'median s':>10}{'min s':>10}{'max s':>10}   ({args.runs} cold processes each)")
    for name, values in times.items():
        print(f"{name:<22}{statistics.median(values):>10.3f}{min(values):>10.3f}{max(values):>10.3f}")
    ratio = zoo_median / timm_median
    verdict = "meets" if ratio <= 0.10 else "misses"
    print(f"ratio zoo/timm: {ratio:.3f} ({verdict} the target of 0.10)")


if __name__ == "__main__":
    main()
