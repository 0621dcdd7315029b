"""The built-in tasks, registered through the same `register_tasks` hook as any plugin's.

Every command runs a task through its TaskSpec alone; the built-in ones name zoo's own code for the
steps where they do more than the generic pipeline (a classifier's confusion matrix, a language
model's continuations, cached backbone features).
"""
from __future__ import annotations

from typing import Callable

from zoo.hookspecs import hookimpl
from zoo.specs import TaskSpec

_CODE = "zoo.tasks.classification"
_CLASSIFICATION = dict(
    output=("batch", "classes"), decode=f"{_CODE}:decode", columns=("RANK", "LABEL", "PROBABILITY"),
    rows=f"{_CODE}:rows", metrics=f"{_CODE}:Accuracy", cache_features=True,
    evaluate="zoo.evaluating.scoring:evaluate_classifier", report="zoo.finetuning.report:classification_report",
)


@hookimpl
def register_tasks(register: Callable[[TaskSpec], None]) -> None:
    register(TaskSpec(
        name="image-classification", inputs=f"{_CODE}:image_inputs", prepare=f"{_CODE}:prepare_images",
        description="one class per image", **_CLASSIFICATION,
    ))
    register(TaskSpec(
        name="text-classification", aliases=("sequence-classification",), inputs=f"{_CODE}:text_inputs",
        prepare=f"{_CODE}:prepare_texts", reads="texts", description="one class per text", **_CLASSIFICATION,
    ))
    register(TaskSpec(
        name="tabular-classification", inputs=f"{_CODE}:image_inputs", prepare=f"{_CODE}:prepare_images",
        description="one class per feature vector", **_CLASSIFICATION,
    ))
    register(TaskSpec(
        name="language-modeling", output=("batch", "time", "vocab"), decode=f"{_CODE}:decode_next_token",
        columns=("RANK", "CONTINUATION", "PROBABILITY"), rows="zoo.tasks.language:rows", metrics=f"{_CODE}:Accuracy",
        inputs=f"{_CODE}:text_inputs", prepare=f"{_CODE}:prepare_texts", reads="texts",
        predict="zoo.tasks.language:predict", evaluate="zoo.evaluating.scoring:evaluate_language_model",
        report="zoo.finetuning.report:language_report",
        description="the next token at every position of a text",
    ))
    register(TaskSpec(
        name="sequence-tagging", output=("batch", "time", "classes"), decode=f"{_CODE}:decode_steps", columns=("TAGS",),
        rows=f"{_CODE}:step_rows", metrics=f"{_CODE}:Accuracy", prepare=f"{_CODE}:prepare_texts", reads="texts",
        description="a class for every token of a text (a recurrent model built with task='sequence-tagging')",
    ))
