"""Training pieces every zoo loop shares: gradient clipping, the warm-up + cosine schedule, early stopping."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Iterable

import torch


def clip_grad_norm(parameters: Iterable[torch.nn.Parameter], max_norm: float) -> float:
    """Scale the gradients so that their global L2 norm is at most `max_norm`.

    Args:
        parameters: the parameters whose `.grad` to clip (those without a gradient are skipped).
        max_norm: the largest norm allowed.

    Returns:
        The norm before clipping (useful to log: a large one means the step would have exploded).
    """
    grads = [p for p in parameters if p.grad is not None]
    if not grads:
        return 0.0
    return float(torch.nn.utils.clip_grad_norm_(grads, max_norm))


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up from 0 over `warmup_steps`, then a cosine decay to 0 at `total_steps`.

    Args:
        optimizer: its groups' `lr` are the peak rates.
        warmup_steps: steps of linear warm-up.
        total_steps: the steps of the whole run.

    Returns:
        A scheduler to step once per optimizer step; its state dict holds no code.
    """
    return torch.optim.lr_scheduler.LambdaLR(optimizer, _WarmupCosine(warmup_steps, total_steps))


@dataclass
class _WarmupCosine:
    warmup_steps: int
    total_steps: int

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)
        span = max(1, self.total_steps - self.warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - self.warmup_steps) / span)))


@dataclass
class EarlyStopping:
    """Stop when the validation loss has not improved for `patience` epochs; remember the best epoch."""

    patience: int
    best_loss: float = math.inf
    best_epoch: int = -1
    bad_epochs: int = 0

    def update(self, epoch: int, loss: float) -> bool:
        """Record an epoch's validation loss; True when it is the best so far."""
        if loss < self.best_loss:
            self.best_loss, self.best_epoch, self.bad_epochs = loss, epoch, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.patience > 0 and self.bad_epochs >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)
