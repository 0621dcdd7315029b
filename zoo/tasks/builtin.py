"""The built-in tasks, registered through the same `register_tasks` hook as any plugin's."""
from __future__ import annotations

from typing import Callable

from zoo.hookspecs import hookimpl
from zoo.specs import TaskSpec

_CODE = "zoo.tasks.classification"
_CLASSIFICATION = dict(
    output=("batch", "classes"), decode=f"{_CODE}:decode", columns=("RANK", "LABEL", "PROBABILITY"),
    rows=f"{_CODE}:rows", metrics=f"{_CODE}:Accuracy",
)


@hookimpl
def register_tasks(register: Callable[[TaskSpec], None]) -> None:
    register(TaskSpec(
        name="image-classification", inputs=f"{_CODE}:image_inputs", description="one class per image", **_CLASSIFICATION,
    ))
    register(TaskSpec(
        name="text-classification", aliases=("sequence-classification",), inputs=f"{_CODE}:text_inputs",
        prepare=f"{_CODE}:prepare_texts", description="one class per text", **_CLASSIFICATION,
    ))
    register(TaskSpec(name="tabular-classification", description="one class per feature vector", **_CLASSIFICATION))
    register(TaskSpec(
        name="language-modeling", output=("batch", "time", "vocab"), decode=f"{_CODE}:decode_next_token",
        columns=("RANK", "LABEL", "PROBABILITY"), rows=f"{_CODE}:rows", metrics=f"{_CODE}:Accuracy",
        inputs=f"{_CODE}:text_inputs", prepare=f"{_CODE}:prepare_texts",
        description="the next token at every position of a text",
    ))
    register(TaskSpec(
        name="sequence-tagging", output=("batch", "time", "classes"), decode=f"{_CODE}:decode_steps", columns=("TAGS",),
        rows=f"{_CODE}:step_rows", metrics=f"{_CODE}:Accuracy", prepare=f"{_CODE}:prepare_texts",
        description="a class for every token of a text (a recurrent model built with task='sequence-tagging')",
    ))
