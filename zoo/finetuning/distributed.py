"""Data-parallel fine-tuning on torch.distributed: the ranks of a run, its shards, and the `--nproc` launcher.

torchrun (`python -m torch.distributed.run`) starts one process per rank and tells each its rank, the
world size and where to meet (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT); `zoo finetune
--nproc N` starts the same workers through torchrun's own `main` with a standalone rendezvous. A rank
joins the process group once (`process_group`: nccl on CUDA, gloo on the CPU) and leaves it at the end.
The feature pass is sharded (`shard`: contiguous, each sample on exactly one rank) and gathered back in
sample order (`gather_rows`); the model trains under DistributedDataParallel (`Wrapped`); rank 0 alone
writes.
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.distributed as dist
from torch import nn

from zoo.errors import ArgumentError, ZooError

# Set by `launch` for its workers: the launcher prints the one line that names a failed rank.
LAUNCHED_ENV = "ZOO_NPROC_LAUNCHER"


class RankFailed(ZooError):
    """A rank of a distributed run failed (an error, or killed); the run stopped on every rank."""


class RanksInterrupted(ZooError):
    """SIGINT or SIGTERM reached the launcher of `--nproc`, which stopped every rank."""

    def __init__(self, signum: int, nproc: int):
        self.signum = signum
        super().__init__(f"{signal.Signals(signum).name} stopped the {nproc} ranks")


@dataclass(frozen=True)
class Ranks:
    """Where this process stands in the run: its rank, the world size, its rank on this machine."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the one that writes checkpoints, the model directory, the summary and progress."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        """More than one rank: collectives are needed."""
        return self.world > 1


def launched() -> bool:
    """Whether torchrun (or `--nproc`) started this process as a rank (its environment says so)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def is_main_process() -> bool:
    """Rank 0 of a distributed run, or a plain process (read from the environment)."""
    return os.environ.get("RANK", "0") == "0" or not launched()


def reported_by_launcher() -> bool:
    """A worker of `zoo finetune --nproc`: its launcher prints the failure line, the worker stays quiet."""
    return launched() and os.environ.get(LAUNCHED_ENV) == "1"


@contextlib.contextmanager
def process_group(device: str) -> Iterator[Ranks]:
    """This process's place in the run for the block; joins torchrun's process group when started by it.

    The backend is nccl when the run trains on CUDA (`device` auto or cuda, a GPU present), else gloo.
    A group the caller initialised already is used as it is and left open. An exception leaving the
    block is written to torchrun's error file (TORCHELASTIC_ERROR_FILE), which names it in the report.

    Args:
        device: the run's --device (auto, cpu or cuda).

    Returns:
        The ranks (rank 0 of 1 when not started by torchrun).
    """
    if not launched():
        yield Ranks()
        return
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    created = not dist.is_initialized()
    if created:
        # DistributedDataParallel imports torch._dynamo; imported after the group starts, it keeps the group
        # (and gloo's threads) alive past destroy_process_group, and the process may then abort at exit
        # ("terminate called without an active exception"). Imported before, the group ends when destroyed.
        import torch._dynamo  # noqa: F401

        cuda = device != "cpu" and torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl" if cuda else "gloo")
    try:
        yield Ranks(dist.get_rank(), dist.get_world_size(), local_rank)
    except BaseException as exc:
        _record(exc)
        raise  # the group is not destroyed: a collective with a dead peer could hang, and the process ends
    if created:
        # Every rank leaves together: rank 0 is still writing the model directory when the others are
        # done, and the agent that hosts the rendezvous store may belong to a node that would otherwise
        # exit first, taking the store from ranks still using it (a worker then aborts in TCPStore).
        dist.barrier()
        dist.destroy_process_group()


def _record(exc: BaseException) -> None:
    """torchrun's error file for this rank, read by the agent that reports the failure."""
    if os.environ.get("TORCHELASTIC_ERROR_FILE"):
        from torch.distributed.elastic.multiprocessing.errors import ErrorHandler

        ErrorHandler().record_exception(exc)


def rank_device(device: torch.device, ranks: Ranks) -> torch.device:
    """The device of this rank: its own GPU (LOCAL_RANK) when the run trains on CUDA."""
    if device.type == "cuda" and ranks.active:
        return torch.device("cuda", ranks.local_rank)
    return device


def shard(size: int, ranks: Ranks) -> range:
    """This rank's contiguous share of `size` samples: every sample on exactly one rank, no padding.

    Shares differ by one sample at most; a rank gets none when there are fewer samples than ranks.
    """
    return range(size * ranks.rank // ranks.world, size * (ranks.rank + 1) // ranks.world)


def _comm_device() -> torch.device:
    """Where tensors meet: the rank's GPU for nccl, the CPU for gloo."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


_DTYPES = ("float32", "int64", "float16", "bfloat16", "float64", "int32")
_MAX_DIMS = 6


def _header(tensor: torch.Tensor | None) -> torch.Tensor:
    """[rows, dtype code, ndim, shape...] of a tensor (rows -1 for none), padded to a fixed length."""
    if tensor is None:
        return torch.full((3 + _MAX_DIMS,), -1, dtype=torch.int64)
    if tensor.dim() > _MAX_DIMS or str(tensor.dtype).removeprefix("torch.") not in _DTYPES:
        raise ZooError(f"cannot exchange a {tensor.dtype} tensor of {tensor.dim()} dimensions between ranks")
    shape = list(tensor.shape) + [0] * (_MAX_DIMS - tensor.dim())
    code = _DTYPES.index(str(tensor.dtype).removeprefix("torch."))
    return torch.tensor([len(tensor), code, tensor.dim(), *shape], dtype=torch.int64)


def gather_rows(local: torch.Tensor | None) -> torch.Tensor:
    """Every rank's rows, concatenated in rank order (with contiguous `shard`s: in sample order).

    Args:
        local: this rank's rows (None when its share is empty); the same dtype and row shape on every rank.

    Returns:
        The concatenation, on the CPU, on every rank.
    """
    where = _comm_device()
    world = dist.get_world_size()
    headers = [torch.empty(3 + _MAX_DIMS, dtype=torch.int64, device=where) for _ in range(world)]
    dist.all_gather(headers, _header(local).to(where))
    headers = [h.cpu() for h in headers]
    model = next((h for h in headers if h[0] >= 0), None)
    if model is None:
        raise ZooError("no rank holds any rows to gather")
    dtype = getattr(torch, _DTYPES[int(model[1])])
    row_shape = [int(n) for n in model[4 : 3 + int(model[2])]]
    most = max(int(h[0]) for h in headers)
    padded = torch.zeros([most, *row_shape], dtype=dtype, device=where)
    if local is not None:
        padded[: len(local)] = local.to(where)
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return torch.cat([part[: max(0, int(h[0]))].cpu() for part, h in zip(parts, headers)])


def broadcast_tensor(tensor: torch.Tensor | None) -> torch.Tensor:
    """Rank 0's tensor on every rank (the others pass None), on the CPU."""
    where = _comm_device()
    header = _header(tensor).to(where)
    dist.broadcast(header, 0)
    header = header.cpu()
    shape = [int(n) for n in header[3 : 3 + int(header[2])]]
    buffer = tensor.to(where) if tensor is not None else torch.empty(shape, dtype=getattr(torch, _DTYPES[int(header[1])]), device=where)
    dist.broadcast(buffer, 0)
    return buffer.cpu()


def sum_over_ranks(values: list[float]) -> list[float]:
    """Each value summed over the ranks (float64)."""
    total = torch.tensor(values, dtype=torch.float64, device=_comm_device())
    dist.all_reduce(total)
    return total.tolist()


def merge_over_ranks(accumulator: Any) -> Any:
    """Every rank's metrics accumulator merged into one, on every rank: rank 0's, then each other rank's
    added by its ``merge(other)``, in rank order (every rank gets the same result).

    The accumulators travel pickled (`all_gather_object`) between this run's own processes only: what is
    unpickled is what a rank of the same run just pickled, never data read from anywhere.

    Args:
        accumulator: this rank's (a task's `metrics`, with `merge`), having seen this rank's share.

    Returns:
        The merged accumulator (a copy, on every rank).
    """
    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, accumulator)
    merged = parts[0]
    for other in parts[1:]:
        merged.merge(other)
    return merged


def agree(value: int, what: str) -> None:
    """Every rank holds the same `value`, or an `ArgumentError` says what differs (`what`, with the remedy)."""
    low = torch.tensor([value, -value], dtype=torch.int64, device=_comm_device())
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    if int(low[0]) != -int(low[1]):
        raise ArgumentError(
            f"the ranks disagree on {what} ({int(low[0])} to {-int(low[1])})",
            "put --output on a file system every machine of the run shares",
        )


class _Call(nn.Module):
    """`call(module, inputs)` as a module's forward, so that DDP sees every training step whatever runs it
    (the classifier on pre-logits, a language model's next-token logits)."""

    def __init__(self, module: nn.Module, call: Callable[[nn.Module, Any], torch.Tensor]):
        super().__init__()
        self.inner, self.call = module, call

    def forward(self, inputs: Any) -> torch.Tensor:
        return self.call(self.inner, inputs)


class Wrapped:
    """`call(module, inputs)` under DistributedDataParallel, which averages the gradients of the parameters
    that train (SyncBatchNorm on CUDA when BatchNorm layers train); `unwrap` puts the original BatchNorm
    layers back, which share the parameters and statistics the run trained."""

    def __init__(self, module: nn.Module, call: Callable[[nn.Module, Any], torch.Tensor], device: torch.device,
                 batchnorm: bool):
        from torch.nn.parallel import DistributedDataParallel

        # BatchNorm layers that train normalise over the global batch; torch's SyncBatchNorm runs on GPUs only
        self.replaced = sync_batchnorm(module) if batchnorm and device.type == "cuda" else []
        ids = [device.index] if device.type == "cuda" else None
        self.ddp = DistributedDataParallel(_Call(module, call), device_ids=ids, output_device=device.index if ids else None)

    def unwrap(self) -> None:
        """The original BatchNorm layers back in place (DDP holds no state of its own worth keeping)."""
        restore(self.replaced)
        self.replaced = []


Replaced = list[tuple[nn.Module, str, nn.Module]]  # (parent, attribute, the original layer)


def sync_batchnorm(root: nn.Module) -> Replaced:
    """Replace each BatchNorm layer under `root` by a SyncBatchNorm sharing its parameters and statistics.

    Returns:
        What was replaced, for `restore`.
    """
    replaced: Replaced = []
    for parent in list(root.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(child, nn.SyncBatchNorm):
                setattr(parent, name, nn.SyncBatchNorm.convert_sync_batchnorm(child))
                replaced.append((parent, name, child))
    return replaced


def restore(replaced: Replaced) -> None:
    """Put back the layers `sync_batchnorm` replaced (they hold what the SyncBatchNorm layers learned)."""
    for parent, name, original in reversed(replaced):
        setattr(parent, name, original)


def check_nproc(nproc: int, device: str) -> None:
    """One rank per GPU when the run trains on CUDA (nccl cannot share one), one core at least on the CPU."""
    gpus = torch.cuda.device_count() if device != "cpu" else 0
    if gpus and nproc > gpus:
        raise ArgumentError(f"--nproc {nproc} on a machine with {gpus} GPU{'s' if gpus > 1 else ''}: each rank needs its own",
                            f"use --nproc {gpus} or fewer, or torchrun on several machines: see docs/scaling.md")
    cores = os.cpu_count() or 1
    if not gpus and nproc > cores:
        raise ArgumentError(f"--nproc {nproc} on a machine with {cores} CPU cores: each rank needs one at least",
                            f"use --nproc {cores} or fewer, or torchrun on several machines: see docs/scaling.md")


def launch(argv: list[str], nproc: int, checkpoint: Path | None = None, device: str = "auto") -> None:
    """Run `python -m zoo <argv>` as `nproc` ranks on this machine through torch.distributed.run.

    Args:
        argv: the worker's command line after `zoo` (without --nproc).
        nproc: the number of ranks.
        checkpoint: where the run keeps its checkpoint, named when a failed run leaves one.
        device: the run's --device, which decides how many ranks this machine can hold (`check_nproc`).

    Raises:
        RankFailed: a rank failed; its rank and error in one line.
        RanksInterrupted: SIGINT or SIGTERM stopped the launcher, which stopped the ranks.
    """
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main

    if launched():
        raise ArgumentError("--nproc in a process torchrun started", "drop --nproc: torchrun's --nproc-per-node says how many ranks")
    check_nproc(nproc, device)

    # torchrun's agent logs each step (and a failure as a banner): the one line below says what matters.
    for name in [n for n in logging.root.manager.loggerDict if n.startswith("torch.distributed")]:
        logging.getLogger(name).setLevel(logging.CRITICAL)  # each sets its own level (torchrun's LOGLEVEL)
    # The cores shared between the ranks (torchrun would give each one thread, and warn that it did).
    threads = os.environ.get("OMP_NUM_THREADS") or str(max(1, (os.cpu_count() or 1) // nproc))
    previous = {name: os.environ.get(name) for name in (LAUNCHED_ENV, "OMP_NUM_THREADS")}
    os.environ.update({LAUNCHED_ENV: "1", "OMP_NUM_THREADS": threads})
    try:
        main(["--standalone", f"--nproc-per-node={nproc}", "--module", "zoo", *argv])
    except ChildFailedError as exc:
        rank, message = root_failure(exc.failures)
        raise RankFailed(f"rank {rank} of {nproc} failed: {message}", _remedy(checkpoint)) from None
    except SignalException as exc:  # Ctrl-C or SIGTERM to the launcher: torchrun stopped the ranks
        raise RanksInterrupted(int(exc.sigval), nproc) from None
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _remedy(checkpoint: Path | None) -> str | None:
    if checkpoint is not None and checkpoint.is_file():
        return f"the checkpoint {checkpoint} of the last finished epoch is kept: run the same command with --resume to continue"
    return None


def _zoo_errors(cls: type = ZooError) -> set[str]:
    """The names of ZooError and its subclasses: their messages say what happened without their type."""
    return {cls.__name__}.union(*(_zoo_errors(sub) for sub in cls.__subclasses__()))


# What a rank reports when a peer went away first: the consequence, not the cause.
_AFTERMATH = ("Connection closed by peer", "Connection reset by peer", "DistBackendError", "Broken pipe", "SIGTERM")


def root_failure(failures: dict[int, Any]) -> tuple[int, str]:
    """The rank that failed first and why, from torchrun's `ProcessFailure`s: a rank torchrun stopped
    (SIGTERM) or that lost its peer counts after one that failed on its own; then the earliest, the lowest rank."""

    def message(failure: Any) -> str:
        text = failure.message.get("message", "") if isinstance(failure.message, dict) else str(failure.message or "")
        if failure.exitcode < 0:
            return f"killed by {failure.signal_name()}"
        if not text or text.startswith("To enable traceback"):
            return f"exit code {failure.exitcode}"
        kind, _, said = text.partition(": ")  # torchrun records "<type>: <message>"
        return " ".join((said if kind in _zoo_errors() else text).split())

    def order(item: tuple[int, Any]) -> tuple[bool, int, int]:
        rank, failure = item
        aftermath = failure.exitcode == -signal.SIGTERM or any(s in message(failure) for s in _AFTERMATH)
        return aftermath, failure.timestamp, rank

    rank, failure = min(failures.items(), key=order)
    return rank, message(failure)
