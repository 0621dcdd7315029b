"""lstm-text on the CPU: intra-op threads (1 vs torch's default) and oneDNN (on vs off), in turns.

    python benchmarks/lstm_threads.py
    python benchmarks/lstm_threads.py --rounds 10

Times, per call, the forward of 64 windows of 40 characters, the scoring of a 400-character text
(`position_logits`: 400 windows), and one training step on 32 windows (forward, cross-entropy,
backward, AdamW), each with threads and oneDNN set four ways. The settings run in turns, round
after round, and each one's median wall time and CPU time are printed, so that a machine shared
with other work slows all of them alike. zoo's language-model fine-tuning runs on one thread on
the CPU (zoo.finetuning.text_inputs.language_model_threads), with oneDNN as torch sets it.
"""
from __future__ import annotations

import argparse
import itertools
import os
import statistics
import time
from typing import Callable

import torch

import zoo


def cases(model: torch.nn.Module) -> dict[str, Callable[[], None]]:
    windows, text = torch.randint(1, 465, (64, 40)), torch.randint(1, 465, (1, 400))
    batch, targets = torch.randint(1, 465, (32, 40)), torch.randint(1, 465, (32,))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def forward() -> None:
        with torch.inference_mode():
            model(windows)

    def score() -> None:
        with torch.inference_mode():
            model.position_logits(text)

    def train_step() -> None:
        loss = torch.nn.functional.cross_entropy(model(batch), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return {"forward 64 × 40": forward, "score 1 × 400": score, "train step 32 × 40": train_step}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=3, help="calls per setting and round")
    args = parser.parse_args()
    default_threads = torch.get_num_threads()
    settings = list(itertools.product(sorted({1, default_threads}), (True, False)))
    model = zoo.load("lstm-text")
    times: dict[tuple[str, int, bool], list[tuple[float, float]]] = {}
    for _ in range(args.rounds):
        for name, run in cases(model).items():
            for threads, onednn in settings:
                torch.set_num_threads(threads)
                torch.backends.mkldnn.enabled = onednn
                run()  # warm-up: oneDNN builds its primitives on the first call of a shape
                wall, cpu = time.perf_counter(), time.process_time()
                for _ in range(args.calls):
                    run()
                times.setdefault((name, threads, onednn), []).append(
                    ((time.perf_counter() - wall) / args.calls, (time.process_time() - cpu) / args.calls)
                )
    load = os.getloadavg()[0]
    print(f"lstm-text on the CPU, {os.cpu_count()} cores, load average {load:.1f}; median of {args.rounds} rounds of {args.calls} calls")
    print(f"{'case':<20} {'threads':>7} {'oneDNN':>7} {'wall ms':>9} {'CPU ms':>9}")
    for (name, threads, onednn), values in times.items():
        wall = statistics.median(v[0] for v in values) * 1e3
        cpu = statistics.median(v[1] for v in values) * 1e3
        print(f"{name:<20} {threads:>7} {'on' if onednn else 'off':>7} {wall:>9.1f} {cpu:>9.1f}")


if __name__ == "__main__":
    main()
