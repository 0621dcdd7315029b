"""A zoo plugin with a task of its own: per-step tagging, a GRU tagger and a tagged-lines data format.

Only specs here (no torch at import): the code they name is imported when it is used.
"""
from __future__ import annotations

import zoo
from zoo.data import DataFormat

VOCAB_SIZE = 97  # words are hashed into ids 1..96; 0 pads


@zoo.hookimpl
def register_tasks(register):
    register(zoo.TaskSpec(
        name="step-tagging", output=("batch", "time", "classes"),
        decode="zoo_tagger_example.task:decode", columns=("TAGS",), rows="zoo_tagger_example.task:rows",
        metrics="zoo_tagger_example.task:TagAccuracy", inputs="zoo_tagger_example.task:inputs",
        prepare="zoo_tagger_example.task:prepare", reads="texts", description="a tag for every token of a sentence",
    ))


@zoo.hookimpl
def register_architectures(register):
    register(zoo.ArchSpec(
        name="gru-tagger", family="rnn", build="zoo_tagger_example.model:gru_tagger", tasks=("step-tagging",),
        input=zoo.InputSpec("tokens", vocab_size=VOCAB_SIZE), defaults={"num_classes": 3, "embed_dim": 16, "hidden_size": 32},
        num_params=6451, description="embedding -> GRU -> a tag per token",
    ))


@zoo.hookimpl
def register_data_formats(register):
    register(DataFormat(
        name="tagged-lines", task="step-tagging", detect="zoo_tagger_example.data:detect", load="zoo_tagger_example.data:load",
        description="a .tags file: tokens<TAB>tags, one sentence a line",
    ))
