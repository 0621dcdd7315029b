"""What is evaluated: the model's task and labels, its training summary, the data read as fine-tuning read it."""
from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path
from typing import Any

from zoo.errors import ArgumentError, DataError

LANGUAGE_MODELING = "language-modeling"


def model_task(model: Any) -> str:
    """language-modeling, text-classification or image-classification: what the model does."""
    from zoo.heads import is_language_model, text_tokenizer

    if is_language_model(model):
        return LANGUAGE_MODELING
    return "text-classification" if text_tokenizer(model) is not None else "image-classification"


def match_labels(classes: list[str], labels: list[str], name: str) -> list[int]:
    """The model's output index of each data class, matched by name (the data may hold fewer classes).

    Raises:
        DataError: classes the model does not know, all named, with the model's labels.
    """
    index = {label: i for i, label in enumerate(labels)}
    unknown = [c for c in classes if c not in index]
    if unknown:
        shown = ", ".join(map(repr, labels[:12])) + (f" and {len(labels) - 12} more" if len(labels) > 12 else "")
        raise DataError(
            f"the data's class{'es' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
            f"{'are' if len(unknown) > 1 else 'is'} not among {name}'s labels ({shown})",
            "evaluate on classes the model was trained on (folders named after its labels), or fine-tune it on these",
        )
    return [index[c] for c in classes]


def model_labels(model: Any, name: str) -> list[str]:
    """The class names of a classifier's outputs, in order; an ArgumentError when it carries none."""
    labels = getattr(model.zoo, "labels", None)
    if not labels:
        raise ArgumentError(
            f"{name} carries no labels, so the data's classes cannot be matched to its outputs by name",
            "evaluate a model with class names: a directory zoo finetune wrote, or weights that name their classes",
        )
    return list(labels)


def training_summary(model_or_name: Any, model: Any, name: str, required: bool) -> dict[str, Any]:
    """The `training` record of the model's directory (the named one, `hf://` included, or the folder a
    loaded model came from); {} when it has none and none is `required`."""
    from zoo.modeldir import is_model_dir, read_config
    from zoo.registry import ModelDirectory
    from zoo.resolvers import resolve

    if isinstance(model_or_name, (str, os.PathLike)):
        found = resolve(model_or_name)  # an hf:// directory: its files link into the Hub cache, its root
        place = (found.path, found.root) if isinstance(found, ModelDirectory) and is_model_dir(found.path) else None  # not an .onnx file
    else:
        source = model.zoo.source
        place = (Path(source), None) if source and is_model_dir(source) else None
    training = read_config(*place).get("training") if place else None
    if not isinstance(training, dict) or not isinstance(training.get("args"), dict):
        if not required:
            return {}
        raise ArgumentError(
            f"{name} has no training summary: --split val needs a model directory written by zoo finetune",
            "evaluate on all of the data (--split all), or give the directory zoo finetune wrote",
        )
    return training


def read_samples(
    path: Path, split: str, training: dict[str, Any], data_format: str | None,
    text_column: str | None, label_column: str | None, workers: int,
) -> Any:
    """The data as fine-tuning read it, in a TrainingData whose `val` is what is evaluated.

    Args:
        path: the data; also a single .txt/.md file, a corpus (a language model's) when no other
            format is asked for and all of it is evaluated.
        split: "val": the samples the fine-tune held out (its val_split, seed and bound); "all": every sample.
        training: the model's training summary ({} when it has none): the defaults of the options below.
        data_format, text_column, label_column, workers: as `zoo.evaluate` takes them.

    Returns:
        The samples, `train` empty.
    """
    from zoo.data.formats import ReadOptions, TrainingData, read_data
    from zoo.data.text import CORPUS_SUFFIXES, check_text

    if path.is_file() and path.suffix.lower() in CORPUS_SUFFIXES and split == "all" and data_format in (None, "corpus"):
        return TrainingData("text-file", LANGUAGE_MODELING, path, [], [], [(check_text(path), -1)])
    args = training.get("args", {})
    steps = args.get("steps_per_epoch")
    options = ReadOptions(
        val_split=args.get("val_split", 0.2), seed=args.get("seed", 0), strict=bool(args.get("strict_data", False)),
        text_column=text_column or args.get("text_column", "text"), label_column=label_column or args.get("label_column", "label"),
        workers=workers, max_val=steps * args["batch_size"] if split == "val" and steps else None, min_classes=1,
    )
    data = read_data(path, data_format or args.get("data_format"), options)
    if split == "val":
        recorded = training.get("data", {}).get("fingerprint")
        if recorded and recorded != data.fingerprint:
            warnings.warn(
                f"{str(path)!r} is not the data the model was fine-tuned on as it was then (files, sizes or times differ): "
                "the validation split may hold other samples than the ones it held out",
                stacklevel=3,  # the caller of zoo.evaluate
            )
        return dataclasses.replace(data, train=[])
    from torch.utils.data import ConcatDataset

    return dataclasses.replace(data, train=[], val=ConcatDataset([data.train, data.val]))


def refuse_windows(name: str, max_windows: int | None, what: str) -> None:
    """A sample of windows is a language model's: any other model (`what` it is) is refused one.

    Raises:
        ArgumentError: `max_windows` was given.
    """
    if max_windows is not None:
        raise ArgumentError("max_windows applies to language models", f"drop it: {name} is {what}")


def check_task(name: str, task: str, data: Any) -> None:
    """The data must be of the kind the model reads: images, labelled text, or a corpus."""
    from zoo.data.formats import unsuited_data

    if data.task == task:
        return
    if task == LANGUAGE_MODELING:
        raise DataError(
            f"{name} is a language model, and {str(data.root)!r} holds labelled {data.task.split('-')[0]}s",
            "evaluate it on a corpus: a .txt/.md file, or a folder of them (--data-format corpus)",
        )
    if data.task == LANGUAGE_MODELING:
        raise DataError(
            f"{name} is a text classifier, and {str(data.root)!r} was read as a corpus (no labels)",
            "give it labelled text: one sub-folder of .txt files per class, or a CSV with a label column",
        )
    raise unsuited_data(name, "image" if task == "image-classification" else "tokens", data)
