"""One fine-tuning run, start to end: read the data, prepare the model, pick the path, fit, write."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import Subset

from zoo.data.formats import ReadOptions, TrainingData, read_data
from zoo.errors import ArgumentError, PluginError
from zoo.finetuning.options import FinetuneOptions, FinetuneResult
from zoo.finetuning.distributed import (
    Ranks, broadcast_tensor, gather_rows, merge_over_ranks, process_group, rank_device, shard, sum_over_ranks,
)
from zoo.finetuning.features import cache_key, compute_features, load_cached, store_cached, tensor_digest
from zoo.finetuning.feature_runtime import check_runtime, choose_runtime, feature_batches, model_id
from zoo.finetuning.inputs import Inputs
from zoo.finetuning.text_inputs import language_model_threads
from zoo.finetuning.jobs import HeadOnFeatures, ModelOnLoader, drawn_rows
from zoo.finetuning.loop import LoopOptions, evaluate, fit, stop_on_signals
from zoo.finetuning.report import write_output
from zoo.finetuning.strategy import Strategy, apply_strategy, choose_strategy, trains_batchnorm
from zoo.fsio import lock_path, locked
from zoo.heads import ModelInfo
from zoo.specs import TaskSpec
from zoo.tasks import function, get_task, task_of

Progress = Callable[[str, int, int, dict], None]


def run(model_or_name: Any, data_path: Path, options: FinetuneOptions, progress: Progress | None) -> FinetuneResult:
    """See `zoo.finetune`. Started by torchrun, this process is one rank of a data-parallel run
    (`zoo.finetuning.distributed`); rank 0 alone reports progress and writes."""
    with process_group(options.device) as ranks:
        return _run(model_or_name, data_path, options, progress if ranks.main else None, ranks)


def _run(model_or_name: Any, data_path: Path, options: FinetuneOptions, progress: Progress | None, ranks: Ranks) -> FinetuneResult:
    started = time.perf_counter()
    from zoo.loading import require_registered_task

    require_registered_task(model_or_name)  # a mistyped name, or a task no plugin registers: before any data is read
    read_options = ReadOptions(
        val_split=options.val_split, seed=options.seed, strict=options.strict_data,
        text_column=options.text_column, label_column=options.label_column, workers=options.workers,
        # A bounded run is validated on one epoch's worth of samples, not on a split of any size.
        max_val=options.steps_per_epoch * options.batch_size if options.steps_per_epoch else None,
    )
    data = read_data(data_path, options.data_format, read_options)
    task = get_task(data.task, f"data format {data.format!r}")
    if options.augment and not classifies_images(task):
        raise ArgumentError(
            f"--augment applies to images of image classification, and {str(data_path)!r} holds {task.name} data", "drop --augment"
        )
    if options.strategy is not None:
        Strategy.parse(options.strategy)  # a mistyped strategy is refused before the model is loaded
    model, weights_sha256 = load_model(model_or_name, data, options)
    check_model_task(model, data, task)
    if ranks.active:
        check_mergeable(task, model)
    # A model zoo built from no weights at all has a random backbone (a directory or a module passed in does not).
    random_backbone = not isinstance(model_or_name, nn.Module) and model.zoo.source is None
    strategy = choose_strategy(options.strategy, data.task, model.zoo.name, pretrained=not random_backbone)
    output = output_path(options.output, model.zoo.name)
    check_output_apart(output, data_path)
    # One run per output (rank 0 holds the lock for every rank), and every check on it before any training.
    with locked(lock_path(output), f"the output {str(output)!r}") if ranks.main else contextlib.nullcontext():
        check_output_writable(output, options.overwrite)
        check_no_checkpoint(partial_dir(output), options)
        return _train_and_write(model, weights_sha256, data, task, strategy, output, options, progress, started, ranks)


_ONE_CLASS = ("batch", "classes")


def _architecture_tasks(model: nn.Module) -> list[TaskSpec]:
    """The registered tasks of the model's architecture, unless the model was built for one (its `task`)."""
    from zoo.registry import default_registry
    from zoo.tasks import UnknownTaskError

    arch = default_registry().archs.get(model.zoo.arch)
    if arch is None or getattr(model, "task", None):
        return []
    found = []
    for name in arch.tasks:
        with contextlib.suppress(UnknownTaskError):
            found.append(get_task(name))
    return found


def classifies_images(task: TaskSpec) -> bool:
    """Whether `task` gives one class per image: the task --augment and channels_last apply to."""
    return task.reads == "images" and task.output == _ONE_CLASS


def check_model_task(model: nn.Module, data: TrainingData, task: TaskSpec) -> None:
    """The model must do the data's task `task`: its own task or another of its architecture's. Data of a
    task that gives one class per input re-heads any model that classifies (whose architecture names a
    task of that output): that task's `inputs` then say whether the model reads the data (a text model
    given images, say).

    Raises:
        UnknownTaskError: the model's task is not registered.
        ArgumentError: the model does another task, and cannot be re-headed for this one.
    """
    own = task_of(model)
    mine = [own, *_architecture_tasks(model)]
    if any(t.name == task.name for t in mine):
        return
    if task.output == _ONE_CLASS and any(t.output == _ONE_CLASS for t in mine):
        return
    raise ArgumentError(
        f"{model.zoo.name} does {own.name}, and {str(data.root)!r} holds {task.name} data",
        f"fine-tune a model of task {task.name} on it (`zoo list --task {task.name}`), or give {model.zoo.name} {own.name} data",
    )


def check_mergeable(task: TaskSpec, model: nn.Module) -> None:
    """With several ranks each scores its share of the validation set: the task's metrics accumulator, which
    the run reports from when the task names no `report`, must `merge(other)` the other ranks'
    (`zoo.finetuning.distributed.merge_over_ranks`).

    Raises:
        ArgumentError: it has no `merge`, or it cannot be sent to the other ranks and merged, before any training.
    """
    if task.report is not None:
        return
    accumulator = function(task, "metrics")(model.zoo.labels)
    if not callable(getattr(accumulator, "merge", None)):
        raise ArgumentError(
            f"task {task.name!r} ({task.plugin}) cannot train on several ranks: its metrics ({task.metrics}) have no "
            "merge(other) to add up what each rank scored",
            "drop --nproc to train it in one process, or give the accumulator a merge method (docs/writing_plugins.md)",
        )
    try:  # what validation will do, now, with a fresh accumulator: every rank's travels to the others pickled
        merge_over_ranks(accumulator)
    except Exception as exc:  # a lambda, a lock, an open file: pickle's errors are of several types
        raise ArgumentError(
            f"task {task.name!r} ({task.plugin}) cannot train on several ranks: its metrics ({task.metrics}) cannot travel "
            f"between the ranks ({type(exc).__name__}: {exc})",
            "drop --nproc to train it in one process, or keep only plain values (numbers, lists, tensors) in the "
            "accumulator (docs/writing_plugins.md)",
        ) from None


def check_output_writable(output: Path, overwrite: bool) -> None:
    """A missing output, or with --overwrite a zoo model directory or an empty folder."""
    from zoo.errors import ModelDirError
    from zoo.modeldir import check_writable

    try:
        check_writable(output, overwrite)
    except ModelDirError as exc:
        if not overwrite:
            raise ArgumentError(f"the output {str(output)!r} already exists", "pass --overwrite, or another --output") from None
        raise ArgumentError(exc.message.replace("overwriting", "--overwrite"), exc.remedy) from None


def partial_dir(output: Path) -> Path:
    """Where a run on `output` keeps its checkpoint and stages the model directory."""
    return output.with_name(f".{output.name}.partial")


# What a run keeps in its partial folder: the checkpoint, the staged model directory, their temporary files.
_PARTIAL_NAMES = re.compile(r"checkpoint\.pt|model|\..+\.tmp")


def check_no_checkpoint(work: Path, options: FinetuneOptions) -> None:
    """An interrupted run's checkpoint is resumed (--resume) or discarded (--overwrite), never silently;
    a partial folder holding anything zoo does not write there is the user's, and is never deleted."""
    foreign = sorted(p.name for p in work.iterdir() if not _PARTIAL_NAMES.fullmatch(p.name)) if work.is_dir() else []
    if foreign or (work.is_symlink() or (work.exists() and not work.is_dir())):
        raise ArgumentError(
            f"{str(work)!r}, where a run keeps its checkpoint, holds what zoo did not write there ({', '.join(foreign) or work.name})",
            "move it away (nothing was changed), or choose another --output",
        )
    checkpoint = work / "checkpoint.pt"
    if checkpoint.is_file() and not options.resume and not options.overwrite:
        raise ArgumentError(
            f"an interrupted run left a checkpoint in {str(work)!r}", "pass --resume to continue it, or --overwrite to start over"
        )


def _train_and_write(
    model: nn.Module, weights_sha256: str | None, data: TrainingData, task: TaskSpec, strategy: Strategy, output: Path,
    options: FinetuneOptions, progress: Progress | None, started: float, ranks: Ranks,
) -> FinetuneResult:
    work = partial_dir(output)
    if ranks.active:
        torch.distributed.barrier()  # every rank has checked the output before rank 0 clears the partial folder
    if ranks.main and work.exists() and not options.resume:
        shutil.rmtree(work)
    device = rank_device(pick_device(options.device), ranks)
    inputs = prepare_inputs(model, data, options, device, task)
    model.to(device)
    if classifies_images(task):
        # Convolutions run faster on channels_last: 1.4-1.7x for tf_efficientnet_lite0 on this CPU, more on a GPU.
        model.to(memory_format=torch.channels_last)
    param_groups = apply_strategy(model, strategy, options.lr, options.lr_decay)
    cached = strategy.frozen_backbone and options.cache and not options.augment and task.cache_features
    check_runtime(options.runtime, task=data.task, feature_pass=cached, device=device)
    feature_pass = None
    if cached:
        job, features, feature_pass = feature_job(model, inputs, data, options, device, weights_sha256, param_groups, progress, ranks)
    else:
        job, features = loader_job(model, inputs, strategy, options, param_groups, device, ranks), "none"
    loop_options = LoopOptions(
        epochs=options.epochs, seed=options.seed, label_smoothing=options.label_smoothing,
        weight_decay=options.weight_decay, warmup=options.warmup, patience=options.patience,
        max_grad_norm=options.max_grad_norm, loss=function(task, "loss"),
    )
    key = run_key(options, data, model.zoo, weights_sha256)
    report = function(task, "report")  # None: the task's loss and metrics are what the run records
    with stop_on_signals() as stop, language_model_threads(data.task, device):
        before = evaluate(job, device, progress=progress) if getattr(report, "before", False) else None
        outcome = fit(job, loop_options, device, work / "checkpoint.pt", key, options.resume, progress, stop, ranks)
        final = evaluate(
            job, device, collect=getattr(report, "predictions", False), progress=progress, loss=loop_options.loss,
            metrics=function(task, "metrics")(model.zoo.labels) if report is None else None,
        )
    if isinstance(job, ModelOnLoader):
        job.unwrap()
    metrics = report(final, before, data, inputs) if report is not None else {"val_loss": final.loss, **final.metrics}
    if not isinstance(metrics, dict):
        raise PluginError(f"task {task.name!r} ({task.plugin}): its report {task.report} returned a {type(metrics).__name__}, "
                          "not a dict of metrics", "report it to the plugin's authors (`zoo plugins` shows its version)")
    metrics.update(best_epoch=outcome.best_epoch, stopped_early=outcome.stopped_early)
    model.to("cpu").to(memory_format=torch.contiguous_format).eval()
    training = {
        "base_model": model.zoo.weights or model.zoo.name,
        "base_weights_sha256": weights_sha256,
        "base_source": model.zoo.source,
        "strategy": str(strategy),
        "args": {**options.training_args(), "strategy": str(strategy)},
        "data": data.summary(),
        "features": features,
        "feature_pass": feature_pass,
        "ranks": ranks.world,
        "epochs_run": len(outcome.history),
        "resumed_from_epoch": outcome.resumed_from,
    }
    model.zoo.name = output.name
    if ranks.main:
        write_output(model, output, work, metrics=metrics, training=training, classes=data.classes, overwrite=options.overwrite)
    return FinetuneResult(
        output=output, metrics=metrics, history=outcome.history, data=data.summary(), features=features,
        seconds=time.perf_counter() - started, feature_pass=feature_pass, task_metrics=tuple(final.metrics),
    )


def load_model(model_or_name: Any, data: TrainingData, options: FinetuneOptions) -> tuple[nn.Module, str | None]:
    """The model with a fresh classifier for the data's classes, and its base weights' sha256."""
    torch.manual_seed(options.seed)  # a random initialisation (and the new head) depends on the seed only
    if isinstance(model_or_name, (str, os.PathLike)):
        from zoo.loading import load

        model = load(os.fspath(model_or_name), pretrained=options.pretrained)
    elif isinstance(model_or_name, nn.Module):
        model = model_or_name
    else:
        raise ArgumentError(f"cannot fine-tune a {type(model_or_name).__name__}", "pass a model name, a model directory or an nn.Module")
    info = getattr(model, "zoo", None)
    label = info.name if isinstance(info, ModelInfo) else type(model).__name__.lower()
    for method in ("forward_features", "forward_head", "get_classifier", "reset_classifier"):
        if not callable(getattr(model, method, None)):
            raise ArgumentError(f"{label} has no {method}()", "fine-tuning needs a model that follows the head protocol")
    require_architecture(model, label)
    weights_sha256 = model.zoo.weights_sha256
    if data.classes:  # a corpus, or a plugin task's data without classes, keeps the model's head
        model.reset_classifier(len(data.classes))
        model.zoo.labels = list(data.classes)
        # The directory must rebuild the model with this head.
        model.zoo.arch_args = {**model.zoo.arch_args, "num_classes": len(data.classes)}
    return model, weights_sha256


def require_architecture(model: nn.Module, label: str) -> None:
    """The model directory rebuilds the model from its architecture's name: zoo must know that name,
    or the directory written at the end of training could not be loaded back."""
    from zoo.errors import UnknownModelError
    from zoo.resolvers import architecture

    info = getattr(model, "zoo", None)
    if isinstance(info, ModelInfo):
        try:
            architecture(info.arch)  # registered, or known to a resolver (timm/<name>)
            return
        except UnknownModelError:
            pass
    what = f"architecture {info.arch!r} is not registered" if isinstance(info, ModelInfo) else "it carries no zoo metadata (model.zoo)"
    raise ArgumentError(
        f"{label}: {what}, so its model directory could not be loaded back",
        "build the model with zoo.load(...) or zoo.build(...), or set model.zoo = zoo.heads.ModelInfo(name=..., "
        "arch=<a registered architecture>, arch_args=...)",
    )


def prepare_inputs(model: nn.Module, data: TrainingData, options: Any, device: torch.device, task: TaskSpec) -> Inputs:
    """The datasets for `data`'s task (its `inputs`); records the preprocessing they use in `model.zoo.preprocess`."""
    make = function(task, "inputs")
    if make is None:
        raise ArgumentError(f"task {data.task!r} cannot be fine-tuned: it says nothing of its inputs", "fine-tune a model of another task")
    inputs = make(model, data, options)
    inputs.pin_memory = device.type == "cuda"
    if classifies_images(task):
        # Exactly what the images went through: nothing of the base model's (its own transform, say)
        # may survive into the output to be applied at prediction time instead.
        model.zoo.preprocess = dict(inputs.preprocess)
    else:
        model.zoo.preprocess = {**(model.zoo.preprocess or {}), **inputs.preprocess}
    return inputs


def output_path(output: str | None, name: str) -> Path:
    """--output, or `<name>-finetuned` in the current folder."""
    if output:
        return Path(output).expanduser().absolute()
    return Path.cwd() / f"{re.sub(r'[^A-Za-z0-9._-]+', '_', name)}-finetuned"


def check_output_apart(output: Path, data_path: Path) -> None:
    """The output may neither hold the data (--overwrite would delete it) nor lie inside a data folder
    (the next run would read the model directory as one more class)."""
    out, data = output.resolve(), data_path.resolve()
    if out == data or out in data.parents:
        raise ArgumentError(
            f"the output {str(output)!r} holds the data {str(data_path)!r}", "write the model directory elsewhere (--output)"
        )
    if data.is_dir() and data in out.parents:
        raise ArgumentError(
            f"the output {str(output)!r} is inside the data folder {str(data_path)!r}, where the next run would read it as data",
            "write the model directory outside the data folder (--output)",
        )


def pick_device(device: str) -> torch.device:
    """auto: the GPU when there is one; cuda without one is an error."""
    if device == "cuda" and not torch.cuda.is_available():
        raise ArgumentError("--device cuda, but no CUDA GPU is available", "use --device cpu or auto")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def feature_job(
    model: nn.Module,
    inputs: Inputs,
    data: TrainingData,
    options: FinetuneOptions,
    device: torch.device,
    weights_sha256: str | None,
    param_groups: list[dict[str, Any]],
    progress: Progress | None,
    ranks: Ranks,
) -> tuple[HeadOnFeatures, str, dict[str, Any] | None]:
    """The head on cached features: read them from the cache, or run the backbone once and store them.

    With several ranks, rank 0 reads the cache and sends what it found; else each rank runs its shard of
    the samples, every rank gets all the features (the head trains on each, identically), and rank 0
    stores them. Returns the job, "cached" or "computed", and who computed how many (None when cached).
    """
    classifier = model.get_classifier()
    # --steps-per-epoch: only the rows the epochs draw are run through the backbone.
    rows = drawn_rows(len(data.train), options.batch_size, options.seed, options.steps_per_epoch, options.epochs)
    identity = weights_sha256 or tensor_digest(_without(model.state_dict(keep_vars=True), classifier))
    key = cache_key(
        backbone=identity,
        model_id=model_id(model),
        preprocess=inputs.preprocess,
        data=data.fingerprint if rows is None else f"{data.fingerprint}\t{options.seed}\t{options.batch_size}\t"
        f"{options.steps_per_epoch}\t{options.epochs}",
        device=device,
    )
    tensors = load_cached(key) if ranks.main else None
    if ranks.active and sum_over_ranks([float(tensors is not None)])[0] > 0:
        tensors = {name: broadcast_tensor(tensors[name] if ranks.main else None) for name in ("train_x", "train_y", "val_x", "val_y")}
    status, feature_pass = "cached", None
    if tensors is None:
        train = inputs.train_eval if rows is None else Subset(inputs.train_eval, rows.tolist())
        status, tensors, total, done = "computed", {}, len(train) + len(data.val), 0
        backbone = choose_runtime(
            model, options.runtime, task=data.task, device=device, identity=identity, model_id=model_id(model),
            preprocess=inputs.preprocess, images=-(-total // ranks.world),  # this rank's share
        )
        for split, dataset, offset in (("train", train, 0), ("val", inputs.val, len(train))):

            def report(n: int, _total: int, _offset: int = offset, _size: int = len(dataset)) -> None:
                if progress is not None:  # rank 0's count times the ranks: the global count, near enough
                    progress("features", _offset + min(_size, n * ranks.world), total, {})

            part = shard(len(dataset), ranks)
            loader = feature_batches(inputs, Subset(dataset, list(part)) if ranks.active else dataset, device)
            x, y = compute_features(model, loader, device, total, report, backbone) if part or not ranks.active else (None, None)
            tensors[f"{split}_x"], tensors[f"{split}_y"] = (gather_rows(x), gather_rows(y)) if ranks.active else (x, y)
            done += len(part)
        per_rank = gather_rows(torch.tensor([done])).tolist() if ranks.active else [done]
        feature_pass = {"ranks": ranks.world, "per_rank": per_rank, **backbone.summary()}
        if ranks.main:
            store_cached(key, tensors, {"data": str(data.root), "model": model.zoo.name})
    job = HeadOnFeatures(
        classifier, param_groups, (tensors["train_x"].to(device), tensors["train_y"].to(device)),
        (tensors["val_x"].to(device), tensors["val_y"].to(device)), options.batch_size, options.seed,
        options.steps_per_epoch, rows=rows, size=len(data.train),
    )
    return job, status, feature_pass


def _without(state: dict[str, torch.Tensor], module: nn.Module) -> dict[str, torch.Tensor]:
    """The entries of `state` that are not `module`'s tensors."""
    ids = {id(t) for t in module.state_dict(keep_vars=True).values()}
    return {k: v for k, v in state.items() if id(v) not in ids}


def loader_job(
    model: nn.Module, inputs: Inputs, strategy: Strategy, options: FinetuneOptions,
    param_groups: list[dict[str, Any]], device: torch.device, ranks: Ranks,
) -> ModelOnLoader:
    """The model run on every batch (a backbone forward each epoch); under DistributedDataParallel with several ranks."""
    if options.batch_size == 1 and trains_batchnorm(model):
        raise ArgumentError(
            "--batch-size 1 cannot train this model's BatchNorm layers (a batch of one has no variance)",
            "use --batch-size 2 or more, or --strategy head to keep the backbone frozen",
        )
    job = ModelOnLoader(
        model, strategy, param_groups, inputs.train, inputs.val, batch_size=options.batch_size, seed=options.seed,
        workers=options.workers, steps_per_epoch=options.steps_per_epoch, pin_memory=device.type == "cuda",
        collate=inputs.collate, forward=inputs.forward, ranks=ranks,
    )
    if ranks.active:
        job.wrap(device, batchnorm=trains_batchnorm(model))
    return job


def run_key(options: FinetuneOptions, data: TrainingData, info: ModelInfo, weights_sha256: str | None) -> str:
    """What a checkpoint must match to be resumed: the options, the data and the base model."""
    parts = [options.training_args(), data.fingerprint, info.name, info.arch, info.arch_args, weights_sha256]
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
