"""Data formats for fine-tuning: detection, splits, and every bad input the issue lists."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from PIL import Image

from finetune_data import write_folder, write_image
from zoo.data import DataFormat, ReadOptions, data_formats, find_format, read_data
from zoo.errors import ArgumentError, DataError


def val_counts(data):
    return Counter(data.classes[t] for _, t in data.val)


# -- registration and detection -------------------------------------------------------------------
def test_builtin_formats_come_from_the_data_plugin():
    formats = data_formats()
    core = [name for name, f in formats.items() if f.plugin == "zoo.data.plugin"]
    assert core == ["image-folder", "text-folder", "csv", "corpus"]
    assert formats["text-lines"].plugin == "zoo_ocr"  # a built-in plugin's own format, registered the same way
    assert formats["corpus"].task == "language-modeling"


def test_each_layout_finds_its_format(tmp_path):
    write_folder(tmp_path / "images", {"a": 2, "b": 2})
    for label in ("x", "y"):
        (tmp_path / "texts" / label).mkdir(parents=True)
        (tmp_path / "texts" / label / "1.txt").write_text("hello")
    (tmp_path / "table.csv").write_text("text,label\nhi,a\n")
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "one.md").write_text("# A play")
    assert find_format(tmp_path / "images").name == "image-folder"
    assert find_format(tmp_path / "texts").name == "text-folder"
    assert find_format(tmp_path / "table.csv").name == "csv"
    assert find_format(tmp_path / "corpus").name == "corpus"


def test_a_bad_format_spec_and_an_unknown_format_name_are_refused(tmp_path):
    with pytest.raises(ArgumentError, match="task 'audio clips' must name a registered task"):
        DataFormat(name="wav", task="audio clips", detect="m:f", load="m:g")  # any registered task: tests/test_tasks.py
    write_folder(tmp_path, {"a": 2, "b": 2})
    with pytest.raises(ArgumentError, match="unknown data format 'jsonl'.*image-folder, text-folder, csv, corpus"):
        find_format(tmp_path, "jsonl")


# -- image folders -------------------------------------------------------------------------------
def test_a_stratified_split_holds_out_each_class_and_depends_only_on_the_seed(tmp_path):
    write_folder(tmp_path, {"cat": 10, "dog": 20})
    data = read_data(tmp_path, options=ReadOptions(val_split=0.2, seed=1))
    assert data.format == "image-folder" and data.classes == ["cat", "dog"]
    assert val_counts(data) == {"cat": 2, "dog": 4}
    assert len(data.train) == 24
    again = read_data(tmp_path, options=ReadOptions(val_split=0.2, seed=1))
    other = read_data(tmp_path, options=ReadOptions(val_split=0.2, seed=2))
    assert again.val == data.val and again.fingerprint == data.fingerprint
    assert other.val != data.val and other.fingerprint != data.fingerprint


def test_train_and_val_folders_are_used_as_given(tmp_path):
    write_folder(tmp_path / "train", {"a": 3, "b": 4})
    write_folder(tmp_path / "val", {"a": 1, "b": 2})
    data = read_data(tmp_path)
    assert len(data.train) == 7 and val_counts(data) == {"a": 1, "b": 2}
    assert all("/val/" in str(path) for path, _ in data.val)


def test_a_missing_folder_is_one_clear_error(tmp_path):
    with pytest.raises(DataError, match="does not exist.*check the path given to --data"):
        read_data(tmp_path / "nowhere")


def test_an_empty_folder_is_one_clear_error(tmp_path):
    with pytest.raises(DataError, match="is empty.*one sub-folder per class"):
        read_data(tmp_path)


def test_a_single_class_is_refused(tmp_path):
    write_folder(tmp_path, {"only": 5})
    with pytest.raises(DataError, match=r"only one class \('only'\).*at least two classes"):
        read_data(tmp_path)


def test_a_class_folder_without_images_is_named(tmp_path):
    write_folder(tmp_path, {"a": 3, "b": 3})
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no pictures here")
    with pytest.raises(DataError, match=r"class folder '.*empty' holds no images"):
        read_data(tmp_path)


def test_corrupt_and_truncated_images_are_skipped_and_counted(tmp_path):
    write_folder(tmp_path, {"a": 4, "b": 4})
    (tmp_path / "a" / "garbage.jpg").write_bytes(b"\xff\xd8 not a jpeg at all" * 10)
    whole = write_image(tmp_path / "b" / "cut.png", size=(64, 64)).read_bytes()
    (tmp_path / "b" / "cut.png").write_bytes(whole[: len(whole) // 2])
    data = read_data(tmp_path)
    assert data.skipped_counts() == {"corrupt or truncated image": 2}
    assert len(data.train) + len(data.val) == 8
    assert not any("garbage" in str(p) or "cut" in str(p) for p, _ in data.train + data.val)


def test_strict_data_makes_a_corrupt_image_fatal_and_names_it(tmp_path):
    write_folder(tmp_path, {"a": 4, "b": 4})
    (tmp_path / "a" / "garbage.jpg").write_bytes(b"nope")
    with pytest.raises(DataError, match=r"garbage.jpg': corrupt or truncated image.*--strict-data"):
        read_data(tmp_path, options=ReadOptions(strict=True))


def test_non_image_and_hidden_files_are_ignored_and_counted(tmp_path):
    write_folder(tmp_path, {"a": 3, "b": 3})
    (tmp_path / "a" / "readme.md").write_text("about cats")
    (tmp_path / "b" / ".DS_Store").write_bytes(b"\0\0")
    (tmp_path / "LICENSE").write_text("CC0")
    data = read_data(tmp_path)
    assert len(data.train) + len(data.val) == 6
    assert data.ignored == 3 and data.skipped == {}


@pytest.mark.parametrize(
    "mode, suffix",
    [("L", ".png"), ("LA", ".png"), ("RGBA", ".png"), ("P", ".png"), ("CMYK", ".jpg"), ("I;16", ".png"), ("1", ".bmp")],
)
def test_every_image_mode_is_converted_to_the_model_input(tmp_path, mode, suffix):
    from zoo.data.images import ImageSamples, ImageTransform

    if mode == "I;16":
        path = tmp_path / "a" / "deep.png"
        path.parent.mkdir()
        Image.fromarray(np.arange(144, dtype=np.uint16).reshape(12, 12) * 400).save(path)
    else:
        path = write_image(tmp_path / "a" / f"x{suffix}", mode=mode)
    preprocess = {"input_size": [3, 16, 16], "mean": [0.5] * 3, "std": [0.5] * 3}
    tensor, target = ImageSamples([(path, 1)], ImageTransform(preprocess))[0]
    assert tuple(tensor.shape) == (3, 16, 16) and target == 1
    assert tensor.min() >= -1.0 and tensor.max() <= 1.0


def test_transparent_pixels_become_white(tmp_path):
    from zoo.data.images import ImageSamples, ImageTransform

    path = tmp_path / "clear.png"
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(path)
    tensor, _ = ImageSamples([(path, 0)], ImageTransform({"input_size": [3, 8, 8], "mean": [0] * 3, "std": [1] * 3}))[0]
    assert float(tensor.min()) == 1.0


def test_images_smaller_than_the_input_are_resized_up(tmp_path):
    from zoo.data.images import ImageSamples, ImageTransform

    path = write_image(tmp_path / "tiny.png", size=(5, 3))
    preprocess = {"input_size": [1, 32, 32], "crop_pct": 0.875, "interpolation": "bicubic"}
    for augment in (False, True):
        samples = ImageSamples([(path, 0)], ImageTransform(preprocess, augment=augment), seed=3)
        assert tuple(samples[0][0].shape) == (1, 32, 32)


def test_augmentation_is_seeded_by_epoch(tmp_path):
    from zoo.data.images import ImageSamples, ImageTransform

    path = write_image(tmp_path / "x.png", size=(40, 30))
    samples = ImageSamples([(path, 0)], ImageTransform({"input_size": [3, 24, 24]}, augment=True), seed=7)
    samples.set_epoch(0)
    first, again = samples[0][0], samples[0][0]
    samples.set_epoch(1)
    assert (first == again).all() and not (first == samples[0][0]).all()


def test_a_validation_class_unknown_to_training_is_refused(tmp_path):
    write_folder(tmp_path / "train", {"a": 3, "b": 3})
    write_folder(tmp_path / "val", {"a": 1, "zebra": 1})
    with pytest.raises(DataError, match=r"validation class 'zebra' .* is not a training class \(training classes: a, b\)"):
        read_data(tmp_path)


# -- text ----------------------------------------------------------------------------------------
def test_a_text_folder_skips_and_counts_empty_files(tmp_path):
    for label in ("pos", "neg"):
        for i in range(5):
            (tmp_path / label).mkdir(exist_ok=True)
            (tmp_path / label / f"{i}.txt").write_text(f"{label} review number {i}")
    (tmp_path / "neg" / "blank.txt").write_text("  \n")
    data = read_data(tmp_path)
    assert data.format == "text-folder" and data.task == "text-classification"
    assert data.skipped_counts() == {"empty text file": 1}
    assert {text for text, _ in data.train + data.val} >= {"pos review number 0", "neg review number 4"}
    with pytest.raises(DataError, match="blank.txt': empty text file"):
        read_data(tmp_path, options=ReadOptions(strict=True))


def test_a_csv_reads_the_named_columns_and_skips_empty_rows(tmp_path):
    rows = "".join(f'"line {i}, with a comma",{"a" if i % 2 else "b"}\n' for i in range(20))
    path = tmp_path / "lines.csv"
    path.write_text("words,who\n" + rows + ",a\n")
    data = read_data(path, options=ReadOptions(text_column="words", label_column="who"))
    assert data.classes == ["a", "b"] and len(data.train) + len(data.val) == 20
    assert data.skipped_counts() == {"empty text or label": 1}
    assert ("line 3, with a comma", 0) in data.train + data.val


def test_a_csv_without_the_column_names_the_columns_it_has(tmp_path):
    path = tmp_path / "lines.csv"
    path.write_text("words,who\nhello,a\n")
    with pytest.raises(DataError, match=r"has no column 'text' \(columns: words, who\).*--text-column"):
        read_data(path)
    with pytest.raises(DataError, match=r"has no column 'label' .*--label-column"):
        read_data(path, options=ReadOptions(text_column="words"))


def test_a_csv_that_is_not_utf8_is_read_as_latin1(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("text,label\ncaf\xe9,a\nna\xefve,b\nok,a\nfine,b\n".encode("latin-1"))
    data = read_data(path)
    assert "café" in {text for text, _ in data.train + data.val}


def test_a_corpus_holds_out_whole_files(tmp_path):
    for name in ("one", "two", "three", "four", "five"):
        (tmp_path / f"{name}.md").write_text(f"The text of {name}.\n")
    data = read_data(tmp_path, options=ReadOptions(val_split=0.2))
    assert data.format == "corpus" and data.task == "language-modeling"
    assert len(data.train) == 4 and len(data.val) == 1


def test_a_corpus_of_one_file_asks_for_more(tmp_path):
    (tmp_path / "only.txt").write_text("Just one text.")
    with pytest.raises(DataError, match="holds 1 .txt/.md file.*add files, or give a train/ and a val/ folder"):
        read_data(tmp_path)


def test_options_are_checked():
    with pytest.raises(ArgumentError, match="val_split must be between 0 and 1"):
        ReadOptions(val_split=1.5)


def test_a_csv_record_is_not_cut_at_a_latin1_ellipsis_or_a_line_separator(tmp_path):
    path = tmp_path / "tweets.csv"
    # 0x85 is "…" in Windows-1252 and U+0085 (NEL) in latin-1: str.splitlines() breaks lines there.
    body = "text,label\nwait\x85 what,a\nok,b\nfine,a\nnice,b\n".encode("latin-1")
    path.write_bytes(body)
    data = read_data(path)
    assert data.skipped_counts() == {}
    assert "wait\x85 what" in {text for text, _ in data.train + data.val}
    path.write_text('text,label\n"two\nlines",a\nx\u2028y,b\nok,a\nfine,b\n', encoding="utf-8")
    assert {"two\nlines", "x\u2028y"} <= {text for text, _ in read_data(path).train + read_data(path).val}


def test_strict_data_names_the_physical_line_after_a_quoted_newline(tmp_path):
    path = tmp_path / "lines.csv"
    path.write_text('text,label\n"one\ntwo",a\nok,b\n,a\nfine,b\n')
    with pytest.raises(DataError, match="line 5: empty text or label"):
        read_data(path, options=ReadOptions(strict=True))


@pytest.mark.parametrize("name", ["image-folder", "text-folder", "corpus"])
def test_a_folder_format_named_for_a_file_says_so(tmp_path, name):
    path = tmp_path / "table.csv"
    path.write_text("text,label\nhi,a\nyo,b\n")
    with pytest.raises(DataError, match=f"'{path}' is a file, and the {name} format reads a folder.*--data-format csv"):
        read_data(path, name)


def test_the_csv_format_named_for_a_folder_says_so(tmp_path):
    write_folder(tmp_path, {"a": 2, "b": 2})
    with pytest.raises(DataError, match="is a folder, and the csv format reads a .csv or .tsv file"):
        read_data(tmp_path, "csv")


def test_one_example_per_class_says_why_nothing_is_held_out(tmp_path):
    write_folder(tmp_path, {"a": 1, "b": 1})
    with pytest.raises(DataError, match="every class has a single example.*add a second example"):
        read_data(tmp_path)


def test_a_class_of_only_skipped_files_says_why_it_is_empty(tmp_path):
    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        for i in range(2):
            (tmp_path / label / f"{i}.txt").write_text("" if label == "a" else f"text {i}")
    with pytest.raises(DataError, match=r"class 'a' in .* has no usable examples \(2 skipped: empty text file\)"):
        read_data(tmp_path)
