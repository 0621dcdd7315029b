"""The recipes of zoo's own pretrained digit classifiers, `mlp-digits` and `lenet5-digits`.

    python scripts/train_digits.py            # both; writes the bundled files, prints their metrics
    python scripts/train_digits.py lenet5-digits --out /tmp/check

Deterministic: scikit-learn's 1,797 digits, a fixed stratified split (450 held out for the test,
random_state=0), seeded initialisation and shuffling, one CPU thread. Each run reproduces the
shipped files' test accuracy, which registry.yaml records. Training logs (to stderr) report the
loss, the largest gradient norm of the epoch (clipped at MAX_GRAD_NORM) and the test accuracy.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
SEED = 0
TEST_SIZE = 450
MAX_GRAD_NORM = 5.0


@dataclass(frozen=True)
class Recipe:
    arch: str
    arch_args: dict[str, Any]
    input_side: int  # 8: the digits as they are; 32: upsampled for LeNet-5
    epochs: int
    lr: float
    out: Path  # where the bundled file lives


RECIPES = {
    "mlp-digits": Recipe("mlp", {"in_features": 64, "hidden": (128, 64)}, 8, 40, 1e-3, ROOT / "plugins/zoo_mlp/weights/mlp-digits.safetensors"),
    "lenet5-digits": Recipe("lenet5", {"activation": "tanh"}, 32, 30, 2e-3, ROOT / "plugins/zoo_cnn/weights/lenet5-digits.safetensors"),
}


def digits_split() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_train, y_train, x_test, y_test): 8×8 images in 0..1 as [N, 1, 8, 8], and their labels."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = torch.tensor(digits.images / 16.0, dtype=torch.float32)[:, None]
    y = torch.tensor(digits.target)
    train, test = train_test_split(range(len(y)), test_size=TEST_SIZE, random_state=SEED, stratify=digits.target)
    return x[train], y[train], x[test], y[test]


@torch.no_grad()
def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((model.eval()(x).argmax(1) == y).float().mean())


def train(name: str, log: Any = sys.stderr) -> tuple[torch.nn.Module, float]:
    """Run one recipe from scratch (on one CPU thread); returns the trained model and its test accuracy."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)  # one thread: the same sums in the same order, every run
    torch.use_deterministic_algorithms(True)
    try:
        return _train(RECIPES[name], name, log)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def _train(recipe: Recipe, name: str, log: Any) -> tuple[torch.nn.Module, float]:
    import zoo
    from zoo.training import clip_grad_norm
    from zoo_cnn.digits import to_model_input

    torch.manual_seed(SEED)
    x_train, y_train, x_test, y_test = digits_split()
    x_train, x_test = to_model_input(x_train, recipe.input_side), to_model_input(x_test, recipe.input_side)
    model = zoo.load(recipe.arch, pretrained=False, **recipe.arch_args)
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    generator = torch.Generator().manual_seed(SEED)
    for epoch in range(1, recipe.epochs + 1):
        model.train()
        total, largest = 0.0, 0.0
        for batch in torch.randperm(len(y_train), generator=generator).split(64):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x_train[batch]), y_train[batch])
            loss.backward()
            largest = max(largest, clip_grad_norm(model.parameters(), MAX_GRAD_NORM))
            optimizer.step()
            total += loss.item() * len(batch)
        if log is not None:
            acc = accuracy(model, x_test, y_test)
            print(f"{name} epoch {epoch:3d}  loss {total / len(y_train):.4f}  grad_norm {largest:.3f}  test_acc {acc:.4f}", file=log)
    return model, accuracy(model, x_test, y_test)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"recipes to run: {', '.join(RECIPES)} (default: all)")
    parser.add_argument("--out", type=Path, help="write the files here instead of the bundled locations")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch log")
    args = parser.parse_args(argv)
    from zoo.statedict import save_safetensors

    print("model          test_acc  params  bytes   sha256")
    for name in args.names or RECIPES:
        model, acc = train(name, log=None if args.quiet else sys.stderr)
        out = (args.out / RECIPES[name].out.name) if args.out else RECIPES[name].out
        save_safetensors(model.state_dict(), out, metadata={"format": "pt"})
        out.chmod(0o644)  # the atomic writer's temporary file is private
        params = sum(p.numel() for p in model.parameters())
        digest = hashlib.sha256(out.read_bytes()).hexdigest()
        print(f"{name:<14} {acc:.4f}    {params:<7} {out.stat().st_size:<7} {digest}")


if __name__ == "__main__":
    main()
