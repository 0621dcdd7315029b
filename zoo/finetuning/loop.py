"""The training loop: AdamW, warm-up + cosine, label smoothing, clipping, early stopping, checkpoints.

Every epoch's randomness (shuffle order, dropout, augmentation) is seeded by (seed, epoch), and
each epoch ends with an atomic checkpoint, so a run resumed after a kill replays exactly what the
uninterrupted run would have done.
"""
from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol

import torch
from torch import nn

from zoo.errors import ArgumentError, ZooError
from zoo.finetuning.distributed import Ranks, agree, gather_rows, merge_over_ranks, sum_over_ranks
from zoo.finetuning.features import autocast, to_device
from zoo.training import EarlyStopping, clip_grad_norm, warmup_cosine

Progress = Callable[[str, int, int, dict], None]


class Job(Protocol):
    """What the loop trains: a module, how to run it on a batch, and the batches."""

    module: nn.Module  # whose state is checkpointed and restored to its best epoch
    param_groups: list[dict[str, Any]]
    steps_per_epoch: int
    sharded: bool  # each rank runs its part of every batch: losses and counts are summed over the ranks

    def train_mode(self) -> None: ...

    def logits(self, inputs: Any) -> torch.Tensor: ...

    def train_batches(self, epoch: int) -> Iterable[tuple[Any, torch.Tensor]]: ...

    def val_batches(self) -> Iterable[tuple[Any, torch.Tensor]]: ...


@dataclass(frozen=True)
class LoopOptions:
    epochs: int
    seed: int
    label_smoothing: float
    weight_decay: float
    warmup: float
    patience: int
    max_grad_norm: float
    # A plugin task's loss, `(outputs, targets, label_smoothing) -> (summed, count)` (zoo.tasks);
    # None: cross-entropy over the last dimension, targets of -100 ignored.
    loss: Callable[..., tuple[torch.Tensor, int]] | None = None


@dataclass
class Evaluation:
    loss: float
    accuracy: float
    predictions: list[int] = field(default_factory=list)
    targets: list[int] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)  # a plugin task's metrics (its accumulator's result)


@dataclass
class FitOutcome:
    history: list[dict[str, float]]
    best_epoch: int
    stopped_early: bool
    resumed_from: int


class TrainingInterrupted(ZooError):
    """SIGINT or SIGTERM stopped a run after its current step; the checkpoint of its last finished epoch is kept."""

    def __init__(self, signum: int, checkpoint: Path, epochs_done: int, epochs: int):
        self.signum, self.epochs_done, self.epochs = signum, epochs_done, epochs
        self.checkpoint = checkpoint if checkpoint.is_file() else None
        name = signal.Signals(signum).name
        if self.checkpoint is None:
            super().__init__(f"{name} during epoch 1 of {epochs}, before its first checkpoint", "run it again to start over")
        else:
            super().__init__(
                f"{name} after epoch {epochs_done} of {epochs}: the checkpoint {self.checkpoint} is kept",
                "run it again with --resume (resume=True) to continue",
            )


class StopRequest:
    """Set by the first SIGINT or SIGTERM while `stop_on_signals` is active: the loop stops after its step."""

    signum: int | None = None


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """While active, SIGINT and SIGTERM ask the loop to stop after its current step (a second one stops at once).

    Outside the main thread, where Python delivers no signals, the request is never set.
    """
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def ask(signum: int, frame: Any) -> None:
        if request.signum is not None:
            raise KeyboardInterrupt
        request.signum = signum

    previous = {signum: signal.signal(signum, ask) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield request
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch's shuffle, dropout and augmentation."""
    return seed * 1_000_003 + epoch


def fit(
    job: Job,
    options: LoopOptions,
    device: torch.device,
    checkpoint: Path,
    run_key: str,
    resume: bool,
    progress: Progress | None = None,
    stop: StopRequest | None = None,
    ranks: Ranks | None = None,
) -> FitOutcome:
    """Train `job.module` for up to `options.epochs`, keeping the epoch with the lowest validation loss.

    Args:
        job: the module, its parameter groups and its batches.
        options: epochs, seed, regularisation, schedule, patience, clipping.
        device: where the module runs.
        checkpoint: the file written after each epoch (and read with `resume`).
        run_key: identifies the run's options and data; a checkpoint with another key is refused.
        resume: continue from `checkpoint` when it exists.
        progress: called with ("train", step, steps, info) per batch, ("evaluate", batch, batches, {}) and ("epoch", n, epochs, info).
        stop: when set (`stop_on_signals`), training stops after the current step.
        ranks: this process's rank; rank 0 alone writes the checkpoint, which every rank resumes from.

    Returns:
        The per-epoch history and the best epoch; `job.module` holds the best epoch's weights.

    Raises:
        TrainingInterrupted: `stop` was set; the checkpoint of the last finished epoch is kept.
    """
    stop = stop or StopRequest()
    ranks = ranks or Ranks()
    optimizer = torch.optim.AdamW(job.param_groups, weight_decay=options.weight_decay)
    total = options.epochs * job.steps_per_epoch
    scheduler = warmup_cosine(optimizer, round(options.warmup * total), total)
    stopper = EarlyStopping(options.patience)
    history: list[dict[str, float]] = []
    best_state = _copy_state(job.module)
    start = 0
    if resume and checkpoint.is_file():
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        if state.get("key") != run_key:
            raise ArgumentError(
                f"the checkpoint in {str(checkpoint.parent)!r} was made with other options or data",
                "run without --resume but with --overwrite to start over, or with the same options",
            )
        job.module.load_state_dict(state["module"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        stopper.load_state_dict(state["stopper"])
        best_state, history, start = state["best"], state["history"], state["epoch"]
    if ranks.active:
        agree(start, f"the epoch to resume from (the checkpoint {checkpoint})")
    params = [p for group in job.param_groups for p in group["params"]]
    loss_fn = nn.CrossEntropyLoss(label_smoothing=options.label_smoothing, ignore_index=-100)
    started = time.perf_counter()
    for epoch in range(start, options.epochs):
        if stopper.should_stop:
            break
        torch.manual_seed(epoch_seed(options.seed, epoch))
        job.train_mode()
        tick = time.perf_counter()
        train_loss = _train_epoch(job, optimizer, scheduler, loss_fn, params, options, device, epoch, progress, stop)
        if stop.signum is not None:  # the unfinished epoch is dropped: a resume replays it whole
            raise TrainingInterrupted(stop.signum, checkpoint, epoch, options.epochs)
        result = evaluate(job, device, progress=progress, loss=options.loss)
        if stopper.update(epoch, result.loss):
            best_state = _copy_state(job.module)
        seconds = time.perf_counter() - tick
        history.append(
            {"epoch": epoch + 1, "train_loss": train_loss, "val_loss": result.loss,
             "val_accuracy": result.accuracy, "seconds": seconds}
        )
        if ranks.main:  # nothing in it is rank-specific: any number of ranks resumes from it
            _save_checkpoint(
                checkpoint,
                {"key": run_key, "epoch": epoch + 1, "module": _copy_state(job.module), "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "stopper": stopper.state_dict(), "best": best_state, "history": history},
            )
        if progress is not None:
            per_epoch = (time.perf_counter() - started) / (epoch + 1 - start)
            eta = 0.0 if stopper.should_stop else per_epoch * (options.epochs - epoch - 1)
            progress("epoch", epoch + 1, options.epochs, {**history[-1], "eta": eta})
        if stop.signum is not None and epoch + 1 < options.epochs and not stopper.should_stop:
            raise TrainingInterrupted(stop.signum, checkpoint, epoch + 1, options.epochs)
    job.module.load_state_dict(best_state)
    return FitOutcome(history, stopper.best_epoch + 1, stopper.should_stop and len(history) < options.epochs, start)


def _train_epoch(job, optimizer, scheduler, loss_fn, params, options, device, epoch, progress, stop) -> float:
    total_loss, count = 0.0, 0
    for step, (inputs, targets) in enumerate(job.train_batches(epoch)):
        inputs, targets = to_device(inputs, device), to_device(targets, device)
        with autocast(device):
            logits = job.logits(inputs)
        if job.sharded:
            loss, n, batch_loss = _global_loss(logits, targets, options, stop)
        elif options.loss is not None:
            summed, n = options.loss(logits.float(), targets, options.label_smoothing)
            loss = summed / max(1, n)
            batch_loss = float(loss.detach())
        else:
            loss = loss_fn(logits.float().flatten(0, -2), targets.flatten())
            n = int((targets != -100).sum())
            batch_loss = float(loss.detach())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if options.max_grad_norm > 0:
            clip_grad_norm(params, options.max_grad_norm)
        optimizer.step()
        scheduler.step()
        total_loss += batch_loss * n
        count += n
        if progress is not None:
            progress("train", step + 1, job.steps_per_epoch, {"epoch": epoch + 1, "loss": total_loss / max(1, count)})
        if stop.signum is not None:
            break
    return total_loss / max(1, count)


def _global_loss(logits: torch.Tensor, targets: torch.Tensor, options: LoopOptions, stop: StopRequest) -> tuple[torch.Tensor, int, float]:
    """This rank's share of the global batch's mean loss, scaled so that DDP's average of the ranks' gradients
    is the gradient of that mean however the batch was split; the global target count and mean loss.
    A stop request on any rank stops every rank after this step."""
    summed, n = summed_loss(logits.float(), targets, options.loss, options.label_smoothing)
    count, total, stops = sum_over_ranks([float(n), float(summed.detach()), float(stop.signum is not None)])
    if stops and stop.signum is None:
        stop.signum = signal.SIGTERM  # another rank was asked to stop
    world = torch.distributed.get_world_size()
    return summed * world / max(1.0, count), int(count), total / max(1.0, count)


def summed_loss(
    outputs: torch.Tensor, targets: Any, loss: Callable[..., tuple[torch.Tensor, int]] | None, label_smoothing: float = 0.0
) -> tuple[torch.Tensor, int]:
    """A batch's summed loss and the number of targets it sums over: a plugin task's `loss`, else
    cross-entropy over the last dimension with targets of -100 ignored."""
    if loss is not None:
        summed, count = loss(outputs, targets, label_smoothing)
        return summed, int(count)
    summed = nn.functional.cross_entropy(
        outputs.flatten(0, -2), targets.flatten(), label_smoothing=label_smoothing, ignore_index=-100, reduction="sum",
    )
    return summed, int((targets != -100).sum())


def evaluate(
    job: Job, device: torch.device, collect: bool = False, progress: Progress | None = None,
    loss: Callable[..., tuple[torch.Tensor, int]] | None = None, metrics: Any = None,
) -> Evaluation:
    """Validation loss (nats per target) and accuracy, in eval mode; predictions when `collect`.
    A sharded job's ranks each run their shard of the validation set and share the sums.
    `loss` is a plugin task's (None: cross-entropy); `metrics`, its accumulator, sees every batch
    (``update(outputs, targets)``) and its ``result()`` lands in `Evaluation.metrics`; a sharded job's
    ranks merge theirs first (``merge(other)``), so every rank reports the whole set's. Accuracy
    (the top class against the target) is counted where there is a target per row of outputs."""
    job.module.eval()
    total, correct, count, seen = 0.0, 0, 0, 0
    predictions: list[int] = []
    targets_seen: list[int] = []
    with torch.inference_mode(), autocast(device):
        batches = job.val_batches()
        steps = len(batches) if hasattr(batches, "__len__") else 0  # progress ("evaluate", batch, batches) when known
        for step, (inputs, targets) in enumerate(batches):
            inputs, targets = to_device(inputs, device), to_device(targets, device)
            outputs = job.logits(inputs).float()
            if metrics is not None:
                metrics.update(outputs, targets)
            summed, n = summed_loss(outputs, targets, loss)
            total += float(summed)
            count += n
            if isinstance(targets, torch.Tensor) and targets.numel() == outputs.shape[:-1].numel():
                targets = targets.flatten()
                mask = targets != -100
                predicted = outputs.flatten(0, -2).argmax(-1)
                correct += int((predicted[mask] == targets[mask]).sum())
                seen += int(mask.sum())
                if collect:
                    predictions += predicted[mask].tolist()
                    targets_seen += targets[mask].tolist()
            if progress is not None and steps:
                progress("evaluate", step + 1, steps, {})
    if job.sharded:
        total, correct, count, seen = sum_over_ranks([total, float(correct), float(count), float(seen)])
        if collect:  # in sample order: the shards are contiguous
            predictions = gather_rows(torch.tensor(predictions, dtype=torch.int64)).tolist()
            targets_seen = gather_rows(torch.tensor(targets_seen, dtype=torch.int64)).tolist()
        if metrics is not None:
            metrics = merge_over_ranks(metrics)
    results = metrics.result() if metrics is not None else {}
    if count == 0:
        return Evaluation(math.nan, math.nan, metrics=results)
    return Evaluation(total / count, correct / seen if seen else math.nan, predictions, targets_seen, results)


def _copy_state(module: nn.Module) -> dict[str, torch.Tensor]:
    # Copies, also because loaded weights may share one (memory-mapped) storage, which torch.save refuses.
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    from zoo.fsio import atomic_path

    with atomic_path(path) as tmp:
        torch.save(state, tmp)
