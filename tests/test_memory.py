"""Memory is bounded by the batch, never by the input: hostile image sizes, many inputs, large CSV files.

Peak memory is measured on a real `zoo` subprocess (its own rusage, from os.wait4), against a baseline
run of the same command on a small input, so the bound holds whatever torch itself costs here.
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from zoo.errors import DataError

LITE0 = "tf_efficientnet_lite0.in1k"
ZOO = str(Path(sys.executable).parent / "zoo")


def measured(*args: str, cwd: Path, timeout: float = 300) -> tuple[int, str, str, float, float]:
    """Run `args` in a subprocess: (exit code, stdout, stderr, peak RSS in MB, seconds)."""
    out, err = cwd / "stdout.txt", cwd / "stderr.txt"
    started = time.perf_counter()
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(args, stdout=stdout, stderr=stderr, cwd=cwd)
        while True:  # os.wait4 reaps the child itself, so its rusage is this child's alone
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - started > timeout:
                process.kill()
            time.sleep(0.05)
        process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    return process.returncode, out.read_text(), err.read_text(), usage.ru_maxrss / 1024, seconds


def unprivileged(*args: str) -> list[str]:
    """`args` without root's power to read any file whatever its mode (tests run as root in CI)."""
    if os.geteuid() != 0:
        return list(args)
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", *args]


def strip(path: Path, width: int, height: int) -> Path:
    Image.new("RGB", (width, height), (200, 30, 30)).save(path)
    return path


def class_folders(root: Path) -> Path:
    """Two classes of three 16×16 images each."""
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        for i in range(3):
            strip(root / name / f"{i}.png", 16, 16)
    return root


# Images: refused by their header's size, before a full-size allocation


@pytest.mark.parametrize("size", [(1, 60000), (60000, 1), (5, 3000)])
def test_a_thin_strip_is_refused_by_its_header_before_decoding(tmp_path, size):
    from zoo.data.image_files import open_image

    path = strip(tmp_path / "strip.png", *size)
    assert path.stat().st_size < 2000  # tiny on disk, and under PIL's decompression-bomb limit
    with pytest.raises(DataError) as caught:
        open_image(path)
    assert str(caught.value) == (
        f"{path} is {size[0]}×{size[1]} pixels, an aspect ratio over 100:1 that no model input needs "
        "(crop it to the part that matters first)"
    )


def test_an_image_over_the_pixel_limit_is_refused_before_decoding(tmp_path):
    from zoo.data.image_files import MAX_PIXELS, open_image

    path = tmp_path / "big.png"
    Image.new("1", (8000, 6000)).save(path)  # 48 megapixels in a few kilobytes, under PIL's own limit
    assert 8000 * 6000 > MAX_PIXELS
    with pytest.raises(DataError, match=r"big.png is 8000×6000 pixels \(48\.0 megapixels\), over the 40 megapixels"):
        open_image(path)


def test_a_large_jpeg_is_decoded_at_a_reduced_scale(tmp_path):
    from zoo.data.image_files import MAX_PIXELS, open_image

    path = tmp_path / "big.jpg"
    Image.new("RGB", (9000, 6000), (10, 120, 200)).save(path, quality=50)
    image = open_image(path)
    assert image.width * image.height <= MAX_PIXELS and image.width / image.height == pytest.approx(1.5, rel=0.01)
    assert image.getpixel((10, 10)) == pytest.approx((10, 120, 200), abs=3)


@pytest.mark.slow
@pytest.mark.parametrize("size", [(1, 3000), (1, 60000)])
def test_predict_on_a_thin_strip_is_a_one_line_error_in_bounded_memory(tmp_path, size):
    strip(tmp_path / "ok.png", 64, 64)
    strip(tmp_path / "strip.png", *size)
    code, _, _, baseline, _ = measured(ZOO, "predict", LITE0, "ok.png", cwd=tmp_path)
    assert code == 0
    code, stdout, stderr, peak, _ = measured(ZOO, "predict", LITE0, "strip.png", cwd=tmp_path)
    assert (code, stdout) == (1, "")
    assert stderr.startswith(f"Error: strip.png is {size[0]}×{size[1]} pixels, an aspect ratio over 100:1")
    assert len(stderr.splitlines()) == 1
    assert peak < baseline + 100, f"{peak:.0f} MB against {baseline:.0f} MB for a 64×64 image"


def test_an_unreadable_image_is_named_as_a_permission_problem(tmp_path):
    path = strip(tmp_path / "locked.png", 16, 16)
    path.chmod(0)
    done = subprocess.run(unprivileged(ZOO, "predict", "mlp-digits", str(path)), capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr == (
        f"Error: {path} cannot be read: permission denied (make it readable, e.g. chmod u+r, or run as its owner)\n"
    )


def test_an_unreadable_training_image_is_skipped_as_a_permission_problem(tmp_path):
    class_folders(tmp_path / "data")
    (tmp_path / "data" / "a" / "0.png").chmod(0)
    code = (
        "import json, sys; from zoo.data.formats import read_data\n"
        "print(json.dumps(read_data(sys.argv[1]).skipped))"
    )
    done = subprocess.run(unprivileged(sys.executable, "-c", code, str(tmp_path / "data")), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"unreadable: permission denied": [str(tmp_path / "data" / "a" / "0.png")]}


def test_a_thin_strip_in_a_training_folder_is_skipped_and_counted(tmp_path):
    from zoo.data.formats import read_data

    class_folders(tmp_path)
    strip(tmp_path / "b" / "strip.png", 1, 60000)
    data = read_data(tmp_path)
    assert data.skipped == {"aspect ratio over 100:1": [str(tmp_path / "b" / "strip.png")]}


# zoo predict: inputs streamed in batches


def small_images(folder: Path, count: int) -> list[Path]:
    """`count` 16×16 PNGs, a dark stroke on a light ground (a digit model's kind of picture), named in order."""
    from PIL import ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        paths.append(folder / f"{i:05d}.png")
        image = Image.new("RGB", (16, 16), (255, 255, 255 - i % 64))
        ImageDraw.Draw(image).line((4 + i % 5, 2, 11 - i % 3, 13), fill=(i % 40, 0, 0), width=2)
        image.save(paths[-1])
    return paths


@pytest.mark.slow
def test_predict_runs_many_images_in_the_memory_of_one_batch(tmp_path):
    paths = small_images(tmp_path / "many", 160)
    code, _, stderr, one_batch, _ = measured(ZOO, "predict", LITE0, *map(str, paths[:32]), "-k", "1", cwd=tmp_path)
    assert code == 0, stderr
    code, stdout, stderr, peak, _ = measured(ZOO, "predict", LITE0, *map(str, paths), "-k", "1", cwd=tmp_path)
    assert code == 0, stderr
    assert len(stdout.splitlines()) == 1 + 160
    # Five batches of 32 cost what one does; as one batch of 160 they took 3.7 GB against 1.4 GB.
    assert peak < one_batch + 150, f"{peak:.0f} MB for 160 images against {one_batch:.0f} MB for 32"


def test_predict_streams_json_batch_by_batch_with_the_results_of_one_batch(tmp_path):
    import zoo
    from zoo.predict.images import classify_images

    paths = small_images(tmp_path / "few", 5)
    whole = classify_images(zoo.load(LITE0), paths, top_k=2, batch_size=5)
    code, stdout, stderr, _, _ = measured(
        ZOO, "predict", LITE0, *map(str, paths), "-k", "2", "--batch-size", "2", "--json", cwd=tmp_path
    )
    assert code == 0, stderr
    streamed = json.loads(stdout)
    assert stdout == json.dumps(streamed, indent=2) + "\n"  # the same text a single batch printed
    assert [r["input"] for r in streamed] == [str(p) for p in paths]
    for got, want in zip(streamed, whole):
        assert [p["index"] for p in got["predictions"]] == [p["index"] for p in want["predictions"]]
        for a, b in zip(got["predictions"], want["predictions"]):
            assert a["probability"] == pytest.approx(b["probability"], abs=1e-4)


def test_predict_prints_one_table_across_batches(tmp_path):
    paths = small_images(tmp_path / "few", 3)
    code, stdout, stderr, _, _ = measured(ZOO, "predict", "mlp-digits", *map(str, paths), "-k", "1", "--batch-size", "1", cwd=tmp_path)
    lines = stdout.splitlines()
    assert code == 0, stderr
    assert lines[0].split() == ["INPUT", "RANK", "LABEL", "PROBABILITY"] and len(lines) == 4
    assert len({line.index(" 1 ") for line in lines[1:]}) == 1  # the columns line up


def test_predict_reads_the_images_of_a_folder_in_name_order(tmp_path):
    folder = tmp_path / "shots"
    small_images(folder, 3)
    (folder / "notes.txt").write_text("not an image")
    (folder / ".hidden.png").write_bytes((folder / "00000.png").read_bytes())
    (folder / "later").mkdir()
    small_images(folder / "later", 1)
    code, stdout, stderr, _, _ = measured(ZOO, "predict", "mlp-digits", str(folder), "-k", "1", "--json", cwd=tmp_path)
    assert code == 0, stderr
    assert [r["input"] for r in json.loads(stdout)] == [str(folder / f"{i:05d}.png") for i in range(3)]


def test_predict_on_a_folder_without_images_says_so(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    code, stdout, stderr, _, _ = measured(ZOO, "predict", "mlp-digits", "empty", cwd=tmp_path)
    assert (code, stdout) == (1, "")
    assert stderr.startswith("Error: the folder empty holds no images (")


def test_text_classes_are_the_same_in_batches_of_one(tmp_path):
    import torch

    import zoo
    from zoo.predict.texts import classify_texts

    torch.manual_seed(0)
    model = zoo.load("lstm-text", num_classes=3)
    texts = ["To be, or not to be", "I love recurrent neural networks", "Once upon a time", "Hi"]
    one_by_one, together = classify_texts(model, texts, top_k=3, batch_size=1), classify_texts(model, texts, top_k=3)
    assert [r["input"] for r in one_by_one] == texts
    for a, b in zip(one_by_one, together):
        assert [p["index"] for p in a["predictions"]] == [p["index"] for p in b["predictions"]]
        assert [p["probability"] for p in a["predictions"]] == pytest.approx([p["probability"] for p in b["predictions"]], abs=1e-5)


# Fine-tuning: a CSV file is streamed, and --steps-per-epoch bounds the feature pass


def write_csv(path: Path, rows: int) -> Path:
    """`rows` lines of about 100 characters in three classes (a few quoted, with commas and newlines)."""
    words = "the quick brown fox jumps over a lazy dog while seven wizards quietly judge boxing matches".split()
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["text", "label"])
        for i in range(rows):
            text = " ".join(words[(i + k * 7) % len(words)] for k in range(16))
            writer.writerow([f"{text}, line {i}" + ("\nand a second line" if i % 1000 == 0 else ""), f"class{i % 3}"])
    return path


@pytest.mark.slow
def test_a_large_csv_with_few_steps_takes_the_time_and_memory_of_a_small_one(tmp_path):
    write_csv(tmp_path / "small.csv", 2_000)
    large = write_csv(tmp_path / "large.csv", 600_000)
    assert large.stat().st_size > 60_000_000
    args = ("finetune", "lstm-text", "--steps-per-epoch", "2", "--epochs", "2", "--batch-size", "16", "--quiet", "--json")
    code, _, stderr, small_peak, small_seconds = measured(ZOO, *args, "--data", "small.csv", "-o", "small-out", cwd=tmp_path)
    assert code == 0, stderr
    code, stdout, stderr, peak, seconds = measured(ZOO, *args, "--data", "large.csv", "-o", "large-out", cwd=tmp_path, timeout=240)
    assert code == 0, stderr
    summary = json.loads(stdout)["data"]
    # All the rows are split; the run validates on one epoch's worth of them (2 steps of 16).
    assert (summary["train_size"], summary["val_size"], summary["val_sampled_from"]) == (480_000, 32, 120_000)
    # Read whole, the file took 4x its size in memory, and its features were computed for every row.
    assert peak < small_peak + 120, f"{peak:.0f} MB for a 60 MB CSV against {small_peak:.0f} MB for 2,000 rows"
    assert seconds < small_seconds + 45, f"{seconds:.0f} s for a 60 MB CSV against {small_seconds:.0f} s for 2,000 rows"


def test_csv_rows_are_read_back_from_the_file_as_the_scan_found_them(tmp_path):
    from zoo.data.formats import ReadOptions, read_data

    path = write_csv(tmp_path / "rows.csv", 3_000)
    with path.open(newline="") as file:
        expected = {(row["text"].strip(), int(row["label"][-1])) for row in csv.DictReader(file)}
    data = read_data(path, options=ReadOptions(seed=3))
    assert len(data.train) + len(data.val) == 3_000
    assert set(data.train) | set(data.val) == expected and not set(data.train) & set(data.val)
    assert data.train[5] == list(data.train)[5] and data.val[-1] == list(data.val)[-1]


def test_with_few_steps_features_are_computed_for_the_drawn_rows_and_train_the_same_head(tmp_path):
    import torch
    from safetensors.torch import load_file

    import zoo

    path = write_csv(tmp_path / "rows.csv", 3_000)
    args = dict(epochs=2, batch_size=16, steps_per_epoch=3, seed=1, max_length=32)
    totals = []
    cached = zoo.finetune("lstm-text", path, output=str(tmp_path / "c"), progress=lambda s, n, t, i: totals.append((s, t)), **args)
    naive = zoo.finetune("lstm-text", path, output=str(tmp_path / "n"), cache=False, **args)
    assert (cached.features, naive.features) == ("computed", "none")
    # Two epochs of three batches of 16 draw at most 96 of the 2,400 training rows; 48 of the 600
    # validation rows (one epoch's worth) are validated.
    assert cached.data["val_size"] == 48 and cached.data["val_sampled_from"] == 600
    assert {t for stage, t in totals if stage == "features"} <= set(range(48 + 48, 48 + 97))
    assert cached.metrics["val_loss"] == pytest.approx(naive.metrics["val_loss"], abs=1e-5)
    a, b = load_file(tmp_path / "c" / "model.safetensors"), load_file(tmp_path / "n" / "model.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def test_a_missing_input_is_named_before_any_batch_is_printed(tmp_path):
    paths = small_images(tmp_path / "few", 3)
    code, stdout, stderr, _, _ = measured(
        ZOO, "predict", "mlp-digits", *map(str, paths), "missing.png", "--batch-size", "1", cwd=tmp_path
    )
    assert (code, stdout) == (1, "")
    assert stderr.startswith("Error: missing.png does not exist (check the path")
