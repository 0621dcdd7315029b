"""Cached features vs the naive loop: fine-tuning a new head on real faces, the same data, seed and epochs.

Rows: zoo with cached features computed by ONNX Runtime (`runtime="onnx"`: first with the backbone's
export included, then with the export cached, as every later run has it) and by eager PyTorch (a
cold feature cache: the backbone runs once), a warm feature cache (the backbone does not run),
zoo's naive path (`cache=False`: the backbone runs every epoch), and the loop people write by hand
in plain PyTorch (frozen backbone, new head, a forward every epoch). Prints wall time, validation
accuracy and speed-ups. Targets: onnx-cached >= 10x faster than the naive loop over 5 epochs,
accuracy within one point.

On the CPU it then times the feature pass alone (read, decode, resize, normalise, forward) in each
runtime against ONNX Runtime's forward-only images/s on random input of the same batch size: target,
the onnx feature pass at >= 0.8x forward-only.

With `--device cuda` it also times the feature pass (images/s, data loading included) against the
backbone's forward-only throughput (bf16 autocast, channels_last, random input already on the GPU).

    python benchmarks/finetune_cached.py                     # CPU, tf_efficientnet_lite0.in1k, 224 px
    python benchmarks/finetune_cached.py --device cuda       # plus the GPU throughput table
    python benchmarks/finetune_cached.py --image-size 96     # quicker on a slow CPU
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path


def zoo_run(
    model: str, faces: Path, out: Path, args: argparse.Namespace, cache: bool, runtime: str = "eager"
) -> tuple[float, float]:
    import zoo

    start = time.perf_counter()
    result = zoo.finetune(
        model, faces, output=str(out), epochs=args.epochs, seed=args.seed, device=args.device, cache=cache,
        image_size=args.image_size, workers=args.workers, batch_size=args.batch_size, runtime=runtime,
    )
    seconds = time.perf_counter() - start
    print(f"{out.name}: {seconds:.1f} s, val accuracy {result.val_accuracy:.3f}, {result.feature_pass}", file=sys.stderr)
    return seconds, result.val_accuracy


def cold_features(faces: Path, out: Path, args: argparse.Namespace, runtime: str) -> tuple[float, float]:
    """A run with an empty feature cache (an exported backbone stays cached)."""
    from zoo.finetuning.features import features_dir

    shutil.rmtree(features_dir(), ignore_errors=True)
    return zoo_run(args.model, faces, out, args, cache=True, runtime=runtime)


def cpu_feature_pass(folder: Path, args: argparse.Namespace) -> dict[str, float]:
    """Images/s of the feature pass in each runtime (data loading included) and of ORT's forward alone."""
    import torch

    import zoo
    from zoo.data import read_data
    from zoo.data.images import ImageSamples, ImageTransform
    from zoo.finetuning.feature_runtime import choose_runtime, feature_batches, model_id
    from zoo.finetuning.features import compute_features
    from zoo.finetuning.inputs import Inputs, image_preprocess

    model = zoo.load(args.model).to(memory_format=torch.channels_last).eval()
    data = read_data(folder)
    preprocess = ImageTransform(image_preprocess(model, data, args.image_size)).preprocess
    samples = ImageSamples(data.train + data.val, ImageTransform(preprocess))
    inputs = Inputs(samples, samples, samples, preprocess, args.batch_size, args.workers)
    cpu, rates = torch.device("cpu"), {}
    for name in ("eager", "onnx"):
        runtime = choose_runtime(model, name, task=data.task, device=cpu, identity=str(model.zoo.weights_sha256),
                                 model_id=model_id(model), preprocess=preprocess, images=len(samples))
        start = time.perf_counter()
        compute_features(model, feature_batches(inputs, samples, cpu), cpu, len(samples), forward=runtime)
        rates[name] = len(samples) / (time.perf_counter() - start)
    x = torch.randn(args.batch_size, *preprocess["input_size"])
    runtime(x)  # warm
    start, runs = time.perf_counter(), max(3, len(samples) // args.batch_size)
    for _ in range(runs):
        runtime(x)
    rates["forward"] = runs * args.batch_size / (time.perf_counter() - start)
    return rates


def hand_loop(model_name: str, faces: Path, args: argparse.Namespace) -> tuple[float, float]:
    """The usual hand-written loop: the same split, transform, weights and optimiser; a forward every epoch."""
    import torch
    from torch.utils.data import DataLoader

    import zoo
    from zoo.data import ReadOptions, read_data
    from zoo.data.images import ImageSamples, ImageTransform
    from zoo.finetuning.inputs import image_preprocess

    start = time.perf_counter()
    device = torch.device("cuda" if args.device == "cuda" else "cpu")
    torch.manual_seed(args.seed)
    data = read_data(faces, options=ReadOptions(seed=args.seed))
    model = zoo.load(model_name)
    model.reset_classifier(len(data.classes))
    model.to(device)
    transform = ImageTransform(image_preprocess(model, data, args.image_size))
    loader_args = {"batch_size": args.batch_size, "num_workers": args.workers, "pin_memory": device.type == "cuda"}
    train = DataLoader(ImageSamples(data.train, transform), shuffle=True, **loader_args)
    val = DataLoader(ImageSamples(data.val, transform), **loader_args)
    for param in model.parameters():
        param.requires_grad_(False)
    head = model.get_classifier()
    for param in head.parameters():
        param.requires_grad_(True)
    optimizer = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=0.01)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    for _ in range(args.epochs):
        model.eval()  # frozen backbone: BatchNorm statistics must not move
        for x, y in train:
            with autocast:
                loss = torch.nn.functional.cross_entropy(model(x.to(device)).float(), y.to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        correct = 0
        with torch.inference_mode(), autocast:
            for x, y in val:
                correct += int((model(x.to(device)).argmax(-1).cpu() == y).sum())
    return time.perf_counter() - start, correct / len(data.val)


def gpu_throughput(model_name: str, folder: Path, args: argparse.Namespace) -> tuple[float, float]:
    """(feature pass images/s with data loading, forward-only images/s), both bf16 + channels_last."""
    import torch
    from torch.utils.data import DataLoader

    import zoo
    from zoo.data import read_data
    from zoo.data.images import ImageSamples, ImageTransform
    from zoo.finetuning.features import compute_features, pre_logits
    from zoo.finetuning.inputs import image_preprocess

    device = torch.device("cuda")
    model = zoo.load(model_name).to(device).to(memory_format=torch.channels_last).eval()
    data = read_data(folder)
    transform = ImageTransform(image_preprocess(model, data, args.image_size))
    samples = ImageSamples(data.train + data.val, transform)
    workers = args.workers or min(16, os.cpu_count() or 1)
    loader = DataLoader(samples, batch_size=256, num_workers=workers, pin_memory=True, persistent_workers=True)
    compute_features(model, loader, device, len(samples))  # warm-up: workers, cuDNN autotuning
    torch.cuda.synchronize()
    start = time.perf_counter()
    compute_features(model, loader, device, len(samples))
    torch.cuda.synchronize()
    feature_rate = len(samples) / (time.perf_counter() - start)
    x = torch.randn(256, *transform.preprocess["input_size"], device=device).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
        for _ in range(5):
            pre_logits(model, x)
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(20):
            pre_logits(model, x)
        torch.cuda.synchronize()
    return feature_rate, 20 * 256 / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tf_efficientnet_lite0.in1k")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=None, help="default: the model's own (224)")
    parser.add_argument("--workers", type=int, default=0)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="zoo-bench-"))
    os.environ["ZOO_HOME"] = str(tmp / "zoo-home")  # a cold feature cache
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights come from their pip package
    from zoo.data.packaged import write_dataset

    faces = tmp / "faces"
    write_dataset("lfw-faces", faces)
    import zoo

    zoo.load(args.model)  # imports and first-load costs stay out of the timings
    if args.device == "cuda":  # CUDA context, cuDNN plans and workers: one untimed epoch, no cache touched
        zoo_run(args.model, faces, tmp / "warmup", argparse.Namespace(**{**vars(args), "epochs": 1}), cache=False)

    rows = []
    if args.device == "cpu":
        rows += [
            ("onnx-cached, export included", *cold_features(faces, tmp / "o1", args, "onnx")),
            ("onnx-cached (export cached)", *cold_features(faces, tmp / "o2", args, "onnx")),
        ]
    rows += [
        ("eager-cached (cold cache)", *cold_features(faces, tmp / "a", args, "eager")),
        ("cached features (warm cache)", *zoo_run(args.model, faces, tmp / "b", args, cache=True)),
        ("naive (backbone every epoch)", *zoo_run(args.model, faces, tmp / "c", args, cache=False)),
        ("plain PyTorch loop (by hand)", *hand_loop(args.model, faces, args)),
    ]
    naive, hand = rows[-2][1], rows[-1][1]
    print(f"\n{args.model} on LFW faces vs non-faces (160 train / 40 val), {args.epochs} epochs, seed {args.seed}, {args.device}")
    print(f"{'zoo path':36s} {'wall s':>8s} {'val acc':>8s} {'vs naive':>9s} {'vs hand':>8s}")
    for name, seconds, accuracy in rows:
        print(f"{name:36s} {seconds:8.1f} {accuracy:8.3f} {naive / seconds:8.1f}x {hand / seconds:7.1f}x")
    best = rows[1] if args.device == "cpu" else rows[0]
    speedup, delta = naive / best[1], 100 * abs(best[2] - rows[-2][2])
    print(f"\n{best[0]} vs naive loop: {speedup:.1f}x faster (target >= 10x), accuracy differs by {delta:.1f} points (target <= 1)")

    if args.device == "cpu":
        rates = cpu_feature_pass(faces, args)
        print(f"\nfeature pass on the CPU, 200 images, batch {args.batch_size} (read, decode, resize, normalise, forward)")
        print(f"{'eager feature pass':40s} {rates['eager']:8.1f} images/s")
        print(f"{'onnx feature pass':40s} {rates['onnx']:8.1f} images/s")
        print(f"{'ORT forward only (random input)':40s} {rates['forward']:8.1f} images/s")
        print(f"{'onnx feature pass / ORT forward only':40s} {rates['onnx'] / rates['forward']:8.2f} (target >= 0.8)")

    if args.device == "cuda":
        import torch

        digits = tmp / "digits"
        write_dataset("digits", digits)
        features, forward = gpu_throughput(args.model, digits, args)
        print(f"\n{torch.cuda.get_device_name()}: {args.model}, 1,797 digit images, batch 256, bf16 + channels_last")
        print(f"{'feature pass (decode, resize, forward)':40s} {features:10.0f} images/s")
        print(f"{'forward only (input already on the GPU)':40s} {forward:10.0f} images/s")
        print(f"{'feature pass / forward only':40s} {features / forward:10.2f}")


if __name__ == "__main__":
    main()
