"""Built-in plugin: the data formats zoo reads out of the box. Light: names and strings only."""
from __future__ import annotations

from zoo.data import DataFormat
from zoo.hookspecs import hookimpl


@hookimpl
def register_data_formats(register):
    register(
        DataFormat(
            name="image-folder",
            task="image-classification",
            detect="zoo.data.images:detect_image_folder",
            load="zoo.data.images:read_image_folder",
            description="one sub-folder of images per class; train/ and val/ used when present",
        )
    )
    register(
        DataFormat(
            name="text-folder",
            task="text-classification",
            detect="zoo.data.text:detect_text_folder",
            load="zoo.data.text:read_text_folder",
            description="one sub-folder of .txt files per class, one example per file",
        )
    )
    register(
        DataFormat(
            name="csv",
            task="text-classification",
            detect="zoo.data.text:detect_csv",
            load="zoo.data.text:read_csv",
            description="a .csv (or .tsv) file with a text column and a label column",
        )
    )
    register(
        DataFormat(
            name="corpus",
            task="language-modeling",
            detect="zoo.data.text:detect_corpus",
            load="zoo.data.text:read_corpus",
            description="a folder of .txt or .md files, for adapting a language model to new text",
        )
    )
