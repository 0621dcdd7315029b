"""The feature pass on a GPU: JPEGs decoded on the device vs on the CPU, against decode-only and forward-only.

Writes 10,000+ real JPEGs (scikit-image's LFW faces and photos, scaled, flipped and cropped), then
times on the same files, batch 256, bf16 autocast, channels_last:

- decode only: zoo's device path without the model (files read by DataLoader workers, decoded by
  nvjpeg, resized, cropped and normalised on the GPU);
- forward only: the backbone's `pre_logits` on random input already on the GPU;
- the feature pass with device decoding (zoo.data.device_decode), and with CPU decoding (PIL in
  DataLoader workers, what ran before).

Target: the device feature pass at >= 0.8x the smaller of decode-only and forward-only.

    python benchmarks/gpu_feature_pass.py                       # tf_efficientnet_lite0.in1k, 10,240 JPEGs
    python benchmarks/gpu_feature_pass.py --images 20000 --workers 12

Needs CUDA: without it, it says so and exits 2.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "motorcycle_left", "immunohistochemistry", "hubble_deep_field", "cat")


def sources() -> list[tuple[str, object]]:
    """(class, RGB uint8 array): LFW faces and non-faces, and scikit-image's colour photos."""
    import numpy as np
    from skimage import data

    faces = data.lfw_subset()
    found = [("face" if i < 100 else "other", np.stack([(f * 255).astype("uint8")] * 3, -1)) for i, f in enumerate(faces)]
    for name in PHOTOS:
        image = getattr(data, name, None)
        if image is not None:
            pixels = image()
            found.append(("other", pixels if pixels.ndim == 3 else np.stack([pixels] * 3, -1)))
    return found


def write_one(task: tuple[int, str, object, Path]) -> None:
    """One JPEG: a source photo scaled to 120-640 px, maybe mirrored, cropped, at quality 75-95."""
    import random

    from PIL import Image, ImageOps

    index, label, pixels, root = task
    rng = random.Random(index)
    image = Image.fromarray(pixels[..., :3])
    side = rng.randint(120, 640)
    scale = side / max(image.size)
    image = image.resize((max(16, round(image.width * scale)), max(16, round(image.height * scale))), Image.BICUBIC)
    if rng.random() < 0.5:
        image = ImageOps.mirror(image)
    w, h = image.size
    left, top = rng.randint(0, w // 8), rng.randint(0, h // 8)
    image = image.crop((left, top, w - rng.randint(0, w // 8), h - rng.randint(0, h // 8)))
    image.save(root / label / f"{index:06d}.jpg", quality=rng.randint(75, 95))


def write_jpegs(root: Path, count: int, workers: int) -> None:
    found = sources()
    for label in {label for label, _ in found}:
        (root / label).mkdir(parents=True, exist_ok=True)
    tasks = [(i, *found[i % len(found)], root) for i in range(count)]
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(write_one, tasks, chunksize=64))


def timed(run) -> float:
    import torch

    torch.cuda.synchronize()
    start = time.perf_counter()
    run()
    torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tf_efficientnet_lite0.in1k")
    parser.add_argument("--images", type=int, default=10_240)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        print("error: benchmarks/gpu_feature_pass.py measures decoding on a CUDA GPU, and torch sees none "
              "(run it on a machine with one; benchmarks/finetune_cached.py measures the CPU)", file=sys.stderr)
        sys.exit(2)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    tmp = Path(tempfile.mkdtemp(prefix="zoo-gpu-bench-"))
    os.environ["ZOO_HOME"] = str(tmp / "zoo-home")
    start = time.perf_counter()
    write_jpegs(tmp / "jpegs", args.images, os.cpu_count() or 1)
    print(f"wrote {args.images} JPEGs in {time.perf_counter() - start:.1f} s", file=sys.stderr)

    import zoo
    from torch.utils.data import DataLoader

    from zoo.data import read_data
    from zoo.data.device_decode import fast_batches
    from zoo.data.images import ImageSamples, ImageTransform
    from zoo.finetuning.features import compute_features, pre_logits

    cuda = torch.device("cuda")
    model = zoo.load(args.model).to(cuda).to(memory_format=torch.channels_last).eval()
    data = read_data(tmp / "jpegs")
    samples = ImageSamples(data.train + data.val, ImageTransform(model.zoo.preprocess))
    n = len(samples)

    def device_batches():
        return fast_batches(samples, args.batch_size, cuda, args.workers)

    def cpu_batches():
        return DataLoader(samples, batch_size=args.batch_size, num_workers=args.workers, pin_memory=True)

    def decode_only() -> None:
        for x, _ in device_batches():
            x.sum()

    x = torch.randn(args.batch_size, *model.zoo.preprocess["input_size"], device=cuda).contiguous(memory_format=torch.channels_last)
    steps = max(1, n // args.batch_size)

    def forward_only() -> None:
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
            for _ in range(steps):
                pre_logits(model, x)

    forward_only()  # warm-up: cuDNN plans, nvjpeg handles, worker start
    compute_features(model, fast_batches(ImageSamples(samples.samples[:512], samples.transform), args.batch_size, cuda), cuda, 512)
    rates = {
        "decode only (device path, no model)": n / timed(decode_only),
        "forward only (input on the GPU)": steps * args.batch_size / timed(forward_only),
        "feature pass, JPEGs decoded on the GPU": n / timed(lambda: compute_features(model, device_batches(), cuda, n)),
        "feature pass, decoded on the CPU (PIL)": n / timed(lambda: compute_features(model, cpu_batches(), cuda, n)),
    }
    print(f"\n{torch.cuda.get_device_name()}: {args.model}, {n} JPEGs, batch {args.batch_size}, bf16 + channels_last, "
          f"{args.workers} workers")
    for name, rate in rates.items():
        print(f"{name:42s} {rate:10.0f} images/s")
    floor = min(rates["decode only (device path, no model)"], rates["forward only (input on the GPU)"])
    ratio = rates["feature pass, JPEGs decoded on the GPU"] / floor
    print(f"{'device feature pass / min(decode, forward)':42s} {ratio:10.2f} (target >= 0.8)")


if __name__ == "__main__":
    main()
