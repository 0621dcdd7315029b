"""onnxruntime vs eager PyTorch on the CPU: the same model, exported by `zoo.export`, at batch 1 and 32.

Each measurement runs in its own process (in one process the two thread pools fight), with the
same number of threads for both runtimes. Prints a table of median latencies and ORT's speed-up.

    python benchmarks/ort_vs_eager.py                      # tf_efficientnet_lite0.in1k, batches 1 and 32
    python benchmarks/ort_vs_eager.py --model resnet18 --random --batches 1 8 32 --threads 2
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def load_model(name: str, random: bool):
    import zoo

    return zoo.load(name, pretrained=False) if random else zoo.load(name)


def measure(args: argparse.Namespace) -> dict:
    """One runtime at one batch size: warm up, then time calls until the budget is spent."""
    import torch

    torch.set_num_threads(args.threads)
    from zoo.parity import signature_of

    model = load_model(args.model, args.random).eval()
    x = signature_of(model).sample(args.batch, 64, torch.Generator().manual_seed(0))
    if args.runtime == "onnx":
        from zoo.predict.onnx_runtime import OnnxRunner

        run = OnnxRunner(args.onnx, threads=args.threads)
        call = lambda: run(x)  # noqa: E731
    else:
        call = lambda: model(x)  # noqa: E731
    times = []
    with torch.inference_mode():
        for _ in range(args.warmup):
            call()
        deadline = time.perf_counter() + args.seconds
        while len(times) < args.min_runs or (time.perf_counter() < deadline and len(times) < args.max_runs):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
    return {"runtime": args.runtime, "batch": args.batch, "median_ms": 1000 * statistics.median(times), "runs": len(times)}


def spawn(args: argparse.Namespace, runtime: str, batch: int, onnx_path: Path) -> dict:
    command = [
        sys.executable, __file__, "--worker", "--runtime", runtime, "--batch", str(batch), "--model", args.model,
        "--onnx", str(onnx_path), "--threads", str(args.threads), "--seconds", str(args.seconds),
    ] + (["--random"] if args.random else [])
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tf_efficientnet_lite0.in1k")
    parser.add_argument("--random", action="store_true", help="random weights instead of the pretrained ones")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seconds", type=float, default=3.0, help="time budget per measurement")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--runtime", choices=["torch", "onnx"], help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--onnx", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.warmup, args.min_runs, args.max_runs = 3, 5, 200
    if args.worker:
        print(json.dumps(measure(args)))
        return

    import zoo

    with tempfile.TemporaryDirectory() as tmp:
        exported = zoo.export(load_model(args.model, args.random), Path(tmp) / "model.onnx")
        print(f"{args.model}: {exported.parity.summary()}", file=sys.stderr)
        rows = []
        for batch in args.batches:
            eager = spawn(args, "torch", batch, exported.path)
            ort = spawn(args, "onnx", batch, exported.path)
            rows.append((batch, eager["median_ms"], ort["median_ms"], eager["median_ms"] / ort["median_ms"]))
    print(f"{args.model}, CPU, {args.threads} threads, median latency per call, each in its own process")
    print(f"{'batch':>5}  {'eager ms':>9}  {'ORT ms':>9}  {'ORT speed-up':>12}")
    for batch, eager_ms, ort_ms, ratio in rows:
        print(f"{batch:>5}  {eager_ms:>9.1f}  {ort_ms:>9.1f}  {ratio:>11.2f}×")


if __name__ == "__main__":
    main()
