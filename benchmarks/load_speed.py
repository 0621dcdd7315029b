"""Warm load time: `zoo.load` against `timm.create_model(pretrained=True)` on the same file, in process.

    python benchmarks/load_speed.py [--repeat 9]

tf_efficientnet_lite0 uses its real weights (the pip package, converted once into zoo's cache);
resnet50 and convnext_tiny use weights this script saves itself (a model directory), since no
real copy is offline. Each round times zoo then timm on the same safetensors file; the table shows
medians and the ratio (target: zoo at most 0.5x timm). Runs offline, in temporary caches.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

TARGET = 0.5


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def cases(work: Path) -> list[tuple[str, str, Callable[[], object], str]]:
    """(label, timm arch, zoo loader, weights file) for each model."""
    import zoo
    from zoo.modeldir import save_model_dir

    lite = zoo.load("tf_efficientnet_lite0.in1k")  # cold: converts the package's file once
    out = [("tf_efficientnet_lite0.in1k (pkg)", "tf_efficientnet_lite0", lambda: zoo.load("tf_efficientnet_lite0.in1k"),
            _cached_file(lite.zoo.weights))]  # fmt: skip
    for arch in ("resnet50", "convnext_tiny"):
        folder = save_model_dir(zoo.load(arch, pretrained=False), work / arch)
        out.append((f"{arch} (model dir)", arch, lambda f=folder: zoo.load(str(f)), str(folder / "model.safetensors")))
    return out


def _cached_file(weight_id: str) -> str:
    from zoo.cache import records

    return next(r.path for r in records() if r.model == weight_id)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9, help="timed rounds per model (median reported)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="zoo-load-bench-"))
    os.environ.update(ZOO_HOME=str(work / "zoo"), HF_HOME=str(work / "hf"), HF_HUB_OFFLINE="1")
    import timm
    import torch

    torch.set_num_threads(min(2, torch.get_num_threads()))
    rows = []
    for label, arch, zoo_load, file in cases(work):
        timm_load = lambda: timm.create_model(arch, pretrained=True, pretrained_cfg_overlay={"file": file})  # noqa: E731
        a, b = zoo_load(), timm_load()  # warm-up, and proof that both load the same tensors
        assert all(torch.equal(t, b.state_dict()[k]) for k, t in a.state_dict().items()), label
        zoo_ms, timm_ms = [], []
        for _ in range(args.repeat):
            zoo_ms.append(timed(zoo_load))
            timm_ms.append(timed(timm_load))
        rows.append((label, statistics.median(zoo_ms), statistics.median(timm_ms)))
    print(f"{'model':36} {'zoo.load ms':>12} {'timm ms':>10} {'zoo/timm':>9}  target <= {TARGET}")
    for label, zoo_ms, timm_ms in rows:
        ratio = zoo_ms / timm_ms
        print(f"{label:36} {zoo_ms:12.1f} {timm_ms:10.1f} {ratio:9.2f}  {'ok' if ratio <= TARGET else 'MISSED'}")
    return 0 if all(z / t <= TARGET for _, z, t in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
