"""Training speed of zoo's LSTM language model: fused path vs the scratch cells vs raw nn.LSTM.

    python benchmarks/rnn_speed.py                      # CPU
    python benchmarks/rnn_speed.py --device cuda        # cuDNN on a GPU

One training step = forward, cross-entropy on every position, backward, Adam. The anchor is the same
network put together by hand from nn.Embedding, nn.LSTM and nn.Linear. The paths run in turns,
round after round, and each one's median is reported, so that a machine shared with other work
slows all of them alike. Target: zoo's fused path within 10 % of raw nn.LSTM.
"""
from __future__ import annotations

import argparse
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
    args = parser.parse_args()
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
