"""Training speed of zoo's LSTM language model: fused path vs the scratch cells vs raw nn.LSTM.

    python benchmarks/rnn_speed.py                      # CPU
    python benchmarks/rnn_speed.py --device cuda        # cuDNN on a GPU
    python benchmarks/rnn_speed.py --onednn             # inference with oneDNN (torch.backends.mkldnn) on vs off

One training step = forward, cross-entropy on every position, backward, Adam. The anchor is the same
network put together by hand from nn.Embedding, nn.LSTM and nn.Linear. The paths run in turns,
round after round, and each one's median is reported, so that a machine shared with other work
slows all of them alike. Target: zoo's fused path within 10 % of raw nn.LSTM.

`--onednn` times inference of zoo's pretrained recurrent models instead (english-ocr on one text
line, lstm-text on a 40-character window), with `torch.backends.mkldnn.enabled` on and off in
turns: oneDNN's LSTM kernels are much slower than torch's own on some CPUs.
"""
from __future__ import annotations

import argparse
import itertools
import statistics
import time
from typing import Callable

import torch
from torch import nn

import zoo


class RawLSTM(nn.Module):
    """The anchor: what one writes by hand without zoo."""

    def __init__(self, vocab: int, embed: int, hidden: int, layers: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.lstm(self.embedding(ids))[0])


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, ids: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        logits = model(ids[:, :-1])
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
        loss.backward()
        optimizer.step()

    return step


def timed(step: Callable[[], None], steps: int, device: torch.device) -> float:
    """Seconds per step over `steps` steps."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def onednn_table(rounds: int, steps: int) -> None:
    """Median inference time per call of the pretrained recurrent models, oneDNN on vs off."""
    ocr, text = zoo.load("english-ocr"), zoo.load("lstm-text")
    widths = itertools.count(300, 4)  # lines as they come: each call a width not seen before
    cases: dict[str, tuple[nn.Module, Callable[[], torch.Tensor]]] = {
        "english-ocr, 1 line 64×512": (ocr, lambda x=torch.randn(1, 1, 64, 512): x),
        "english-ocr, 1 line, new width": (ocr, lambda: torch.randn(1, 1, 64, next(widths))),
        "english-ocr, 8 lines 64×512": (ocr, lambda x=torch.randn(8, 1, 64, 512): x),
        "lstm-text, 1 × 40 chars": (text, lambda x=torch.randint(1, 465, (1, 40)): x),
        "lstm-text, 32 × 40 chars": (text, lambda x=torch.randint(1, 465, (32, 40)): x),
    }
    times: dict[tuple[str, bool], list[float]] = {}
    with torch.inference_mode():
        for _ in range(rounds):
            for name, (model, sample) in cases.items():
                for enabled in (True, False):
                    torch.backends.mkldnn.enabled = enabled
                    model(sample())  # warm-up: oneDNN builds its primitives on the first call of a shape
                    times.setdefault((name, enabled), []).append(timed(lambda: model(sample()), steps, torch.device("cpu")))
    torch.backends.mkldnn.enabled = True
    print(f"CPU inference, {torch.get_num_threads()} threads, median of {rounds} rounds of {steps} calls; "
          f"oneDNN available: {torch.backends.mkldnn.is_available()}")
    print(f"{'model, input':<30} {'oneDNN on ms':>13} {'off ms':>9} {'on / off':>9}")
    for name in cases:
        on, off = (statistics.median(times[name, enabled]) for enabled in (True, False))
        print(f"{name:<30} {on * 1e3:>13.1f} {off * 1e3:>9.1f} {on / off:>8.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5, help="steps per round and path")
    parser.add_argument("--no-scratch", action="store_true", help="skip the (slow) scratch cells")
    parser.add_argument("--onednn", action="store_true", help="time pretrained models' inference, oneDNN on vs off")
    args = parser.parse_args()
    if args.onednn:
        onednn_table(args.rounds, args.steps)
        return
    device = torch.device(args.device)
    vocab, embed = 128, 64
    torch.manual_seed(0)
    ids = torch.randint(1, vocab, (args.batch, args.seq + 1), device=device)  # a corpus stream: no padding
    shape = dict(vocab_size=vocab, embed_dim=embed, hidden_size=args.hidden, num_layers=args.layers)
    models = {
        "raw nn.LSTM": RawLSTM(vocab, embed, args.hidden, args.layers),
        "zoo lstm (fused)": zoo.load("lstm", **shape),
    }
    if not args.no_scratch:
        models["zoo lstm-scratch"] = zoo.load("lstm-scratch", **shape)
    steps = {}
    for name, model in models.items():
        model.to(device).train()
        steps[name] = train_step(model, torch.optim.Adam(model.parameters(), lr=1e-3), ids)
        steps[name]()  # warm-up: allocations, cuDNN plans
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, step in steps.items():
            times[name].append(timed(step, args.steps, device))
    tokens = args.batch * args.seq
    anchor = statistics.median(times["raw nn.LSTM"])
    print(f"device {device}, batch {args.batch} × {args.seq} tokens, hidden {args.hidden}, {args.layers} layers, "
          f"{torch.get_num_threads()} threads; median of {args.rounds} rounds of {args.steps} steps")
    print(f"{'path':<20} {'tokens/s':>12} {'ms/step':>9} {'vs raw nn.LSTM':>15}")
    for name, samples in times.items():
        seconds = statistics.median(samples)
        print(f"{name:<20} {tokens / seconds:>12,.0f} {seconds * 1e3:>9.1f} {anchor / seconds:>14.2f}x")


if __name__ == "__main__":
    main()
