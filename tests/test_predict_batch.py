"""`zoo predict MODEL FOLDER --output preds.csv|.jsonl` on 1,000 real images (scikit-image's LFW faces
and their flips and rotations) with a truncated PNG, a text file named .jpg and a 1×60000 strip
among them: one row per input in order, the bad ones skipped, counted and named; atomic output that
a SIGKILL never leaves half-written, and `--resume` finishing a killed run as one run would; the ONNX
export answers as eager PyTorch does."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

import zoo
from zoo.cli import cli
from zoo.errors import ArgumentError
from zoo.data.packaged import write_dataset

LITE0 = "tf_efficientnet_lite0.in1k"
# Each face as it is, mirrored, and turned by 90, 180 and 270 degrees: 200 × 5 = 1,000 images.
TURNS = (None, Image.Transpose.FLIP_LEFT_RIGHT, Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270)
BAD = {"face/0004-bad-truncated.png": "corrupt or truncated image", "non-face/0000-bad-text.jpg": "corrupt or truncated image",
       "non-face/zz-strip.png": "aspect ratio over 100:1"}


def write_faces(root: Path, turns=TURNS, bad=True) -> Path:
    """LFW's 200 faces / non-faces in each of `turns`, and (with `bad`) the three unusable files of BAD."""
    write_dataset("lfw-faces", root / "lfw")
    folder = root / "faces"
    for source in sorted((root / "lfw").rglob("*.png")):
        (folder / source.parent.name).mkdir(parents=True, exist_ok=True)
        with Image.open(source) as image:
            for k, turn in enumerate(turns):
                (image if turn is None else image.transpose(turn)).save(folder / source.parent.name / f"{source.stem}-{k}.png")
    if bad:
        whole = (folder / "face" / "0004-0.png").read_bytes()
        (folder / "face" / "0004-bad-truncated.png").write_bytes(whole[: len(whole) // 2])
        (folder / "non-face" / "0000-bad-text.jpg").write_text("this is not a JPEG\n")
        Image.new("L", (1, 60000)).save(folder / "non-face" / "zz-strip.png")
    return folder


def expected_order(folder: Path) -> list[str]:
    """Every image file under `folder`, sorted by its path inside it (as `zoo predict` lists them)."""
    return [str(p) for p in sorted(folder.rglob("*.*"), key=lambda p: p.relative_to(folder).parts) if p.is_file()]


def zoo_exe() -> str:
    return str(Path(sys.executable).parent / "zoo")


def one_at_a_time(path: str) -> list[dict]:
    result = CliRunner().invoke(cli, ["predict", LITE0, path, "-k", "3", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)[0]["predictions"]


@pytest.mark.slow
def test_a_thousand_faces_give_one_row_each_in_order_in_csv_and_jsonl_and_the_bad_files_are_named(tmp_path):
    folder = write_faces(tmp_path)
    order = expected_order(folder)
    assert len(order) == 1003
    csv_out, jsonl_out = tmp_path / "preds.csv", tmp_path / "preds.jsonl"

    run = subprocess.run([zoo_exe(), "predict", LITE0, str(folder), "--output", str(csv_out), "-k", "3"],
                         capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(f"wrote 1,003 rows to {csv_out}: 1,000 predicted, 3 skipped")
    assert "1,003/1,003 images" in run.stderr  # the last progress line (stderr is a pipe: one a minute before it)
    assert "skipped 2 file(s): corrupt or truncated image: " in run.stderr
    assert f"skipped 1 file(s): aspect ratio over 100:1: {folder / 'non-face' / 'zz-strip.png'}" in run.stderr
    with csv_out.open(newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert list(rows[0]) == ["path", "label_1", "prob_1", "label_2", "prob_2", "label_3", "prob_3", "error"]
    assert [r["path"] for r in rows] == order
    labels = set(zoo.load(LITE0).zoo.labels)
    for row in rows:
        name = str(Path(row["path"]).relative_to(folder))
        if name in BAD:
            assert row["error"] == BAD[name] and row["label_1"] == row["prob_1"] == ""
            continue
        assert row["error"] == "" and {row["label_1"], row["label_2"], row["label_3"]} <= labels
        assert 1 >= float(row["prob_1"]) >= float(row["prob_2"]) >= float(row["prob_3"]) > 0

    from zoo.predict.files import predict_files

    summary = predict_files(zoo.load(LITE0), [folder], jsonl_out, top_k=3, batch_size=50, workers=0)
    assert (summary.inputs, summary.predicted, summary.skipped) == (
        1003, 1000, {"corrupt or truncated image": 2, "aspect ratio over 100:1": 1})
    lines = [json.loads(line) for line in jsonl_out.read_text(encoding="utf-8").splitlines()]
    assert [line["path"] for line in lines] == order
    for line, row in zip(lines, rows):  # the same answers, whatever the batch size and worker count
        assert line.get("error", "") == row["error"]
        assert [t["label"] for t in line["top"]] == [row[f"label_{k}"] for k in (1, 2, 3) if row[f"label_{k}"]]
        for k, top in enumerate(line["top"], 1):
            assert top["probability"] == pytest.approx(float(row[f"prob_{k}"]), abs=1e-4)

    for index in (0, 333, 777, 1001):  # and what `zoo predict` says of each file alone (the last one is the strip)
        assert "error" not in lines[index]
        alone = one_at_a_time(lines[index]["path"])
        assert [p["label"] for p in alone] == [t["label"] for t in lines[index]["top"]]
        assert [p["probability"] for p in alone] == pytest.approx([t["probability"] for t in lines[index]["top"]], abs=1e-4)


@pytest.mark.slow
def test_a_run_killed_with_sigkill_leaves_no_output_and_resume_writes_what_one_run_writes(tmp_path):
    from zoo.predict.partial import PROGRESS, partial_dir

    folder = write_faces(tmp_path, turns=TURNS[:2], bad=False)
    output = tmp_path / "preds.csv"
    command = [zoo_exe(), "predict", LITE0, str(folder), "-o", str(output), "-b", "8", "--workers", "0", "--runtime", "eager"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    work = partial_dir(output)
    deadline = time.monotonic() + 600

    def recorded() -> int:
        try:
            return json.loads((work / PROGRESS).read_text())["done"]
        except (OSError, ValueError):
            return 0

    while recorded() < 40:  # rows are being written, and recorded batch by batch
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read().decode()
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not output.exists()
    done = recorded()
    assert 40 <= done < 400 and (work / output.name).is_file()

    again = subprocess.run(command, capture_output=True, text=True)  # the same command: told, nothing changed
    assert again.returncode == 1 and again.stderr.strip().splitlines()[-1] == (
        f"Error: an interrupted run left {done} of 400 rows for {output} in {work} "
        "(pass --resume to continue it, or --overwrite to start over)"
    )
    resumed = subprocess.run([*command, "--resume"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed after {done} rows an interrupted run wrote" in resumed.stderr
    whole = subprocess.run([*command[:5], str(tmp_path / "whole.csv"), *command[6:]], capture_output=True, text=True)
    assert whole.returncode == 0, whole.stderr
    assert output.read_bytes() == (tmp_path / "whole.csv").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["faces", "lfw", "preds.csv", "whole.csv"]


@pytest.mark.slow
def test_the_onnx_export_gives_the_top_1_eager_gives_and_skips_the_same_files(tmp_path):
    from zoo.modeldir import save_model_dir
    from zoo.predict.files import predict_files
    from zoo.predict.onnx_runtime import load_onnx_model

    folder = write_faces(tmp_path, turns=TURNS[:1])
    model = tmp_path / "lite0"
    save_model_dir(zoo.load(LITE0), model)
    zoo.export(str(model))
    inputs = [folder / "face", folder / "non-face" / "0000-bad-text.jpg", folder / "non-face" / "zz-strip.png"]
    eager = predict_files(zoo.load(model), inputs, tmp_path / "eager.jsonl", top_k=1, workers=1)
    result = CliRunner().invoke(cli, ["predict", str(model), *map(str, inputs), "--runtime", "onnx", "-k", "1",
                                      "-o", str(tmp_path / "onnx.jsonl"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["skipped"] == eager.skipped == {"corrupt or truncated image": 2, "aspect ratio over 100:1": 1}
    want = [json.loads(line) for line in (tmp_path / "eager.jsonl").read_text().splitlines()]
    got = [json.loads(line) for line in (tmp_path / "onnx.jsonl").read_text().splitlines()]
    assert len(got) == 103 and [g["path"] for g in got] == [w["path"] for w in want]
    assert [[t["label"] for t in g["top"]] for g in got] == [[t["label"] for t in w["top"]] for w in want]
    assert predict_files(load_onnx_model(model), inputs[:1], tmp_path / "api.csv").predicted == 100


def test_an_existing_output_is_refused_without_overwrite_and_replaced_with_it(tmp_path):
    image = tmp_path / "digit.png"
    drawn = Image.new("L", (16, 16), 255)
    drawn.paste(0, (6, 2, 10, 14))  # a one
    drawn.save(image)
    output = tmp_path / "preds.csv"
    output.write_text("precious\n")
    refused = CliRunner().invoke(cli, ["predict", "lenet5-digits", str(image), "-o", str(output)])
    assert refused.exit_code == 1
    assert refused.stderr == f"Error: the output {output} already exists (pass --overwrite (overwrite=True) to replace it, or choose another name)\n"
    assert output.read_text() == "precious\n"
    replaced = CliRunner().invoke(cli, ["predict", "lenet5-digits", str(image), "-o", str(output), "--overwrite", "-k", "2"])
    assert replaced.exit_code == 0, replaced.output
    header, row = output.read_text().splitlines()
    assert header == "path,label_1,prob_1,label_2,prob_2,error" and row.startswith(f"{image},")


@pytest.mark.parametrize(
    "where, message",
    [
        ("folder", "Error: the output {out} is a folder (name a file in it, e.g. {out}/predictions.csv)"),
        ("missing/preds.csv", "Error: the output's folder {tmp}/missing does not exist (create it first (mkdir -p {tmp}/missing))"),
        ("preds.txt", "Error: the output {out} is neither .csv nor .jsonl (name it predictions.csv or predictions.jsonl)"),
    ],
)
def test_an_output_that_cannot_be_written_is_refused_before_the_model_loads(tmp_path, where, message):
    (tmp_path / "folder").mkdir()
    image = tmp_path / "face.png"
    Image.new("RGB", (25, 25)).save(image)
    out = tmp_path / where
    result = CliRunner().invoke(cli, ["predict", "no-such-model", str(image), "-o", str(out)])
    assert result.exit_code == 1
    assert result.stderr.strip() == message.format(out=out, tmp=tmp_path)
    assert not (tmp_path / "missing").exists()


def test_an_output_inside_the_input_folder_is_never_read_as_an_input(tmp_path):
    folder = tmp_path / "digits"
    folder.mkdir()
    for k in range(3):
        picture = Image.new("L", (16, 16), 255)
        picture.paste(0, (4 + k, 2, 10, 14))
        picture.save(folder / f"{k}.png")
    output = folder / "preds.jsonl"
    for inputs in ([folder], [folder, output]):  # the second run finds the first one's file there, and named as an input
        result = CliRunner().invoke(cli, ["predict", "lenet5-digits", *map(str, inputs), "-o", str(output), "--overwrite"])
        assert result.exit_code == 0, result.output
        assert [json.loads(line)["path"] for line in output.read_text().splitlines()] == [str(folder / f"{k}.png") for k in range(3)]
    assert sorted(p.name for p in folder.iterdir()) == ["0.png", "1.png", "2.png", "preds.jsonl"]


def test_progress_is_redrawn_in_place_on_a_terminal_and_one_line_per_interval_in_a_log():
    import io

    from zoo.predict.progress import Progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    log, terminal = io.StringIO(), Terminal()
    for stream in (log, terminal):
        progress = Progress(stream, every=0)
        for done in (250, 500, 1000):
            progress("predict", done, 1000, {})
        progress.close()
    assert [line.split(" images,")[0] for line in log.getvalue().splitlines()] == ["250/1,000", "500/1,000", "1,000/1,000", "1,000/1,000"]
    assert terminal.getvalue().count("\r") == 4 and terminal.getvalue().endswith("\n") and terminal.getvalue().count("\n") == 1
    quiet = io.StringIO()
    progress = Progress(quiet)  # a log: one line a minute, and the last one
    progress("predict", 500, 1000, {})
    progress.close()
    assert len(quiet.getvalue().splitlines()) == 1 and quiet.getvalue().startswith("500/1,000 images, ")


def one_digit(path: Path, shift: int = 0) -> Path:
    picture = Image.new("L", (16, 16), 255)
    picture.paste(0, (5 + shift, 2, 9 + shift, 14))
    picture.save(path, format="PNG")
    return path


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_file_name_that_is_not_utf8_is_written_as_its_bytes_and_the_run_goes_on(tmp_path, suffix):
    folder = tmp_path / "digits"
    folder.mkdir()
    odd = one_digit(Path(os.fsdecode(bytes(folder) + b"/caf\xe9.png")))  # Latin-1, not UTF-8
    one_digit(folder / "plain.png", 1)
    output = tmp_path / f"preds{suffix}"
    result = CliRunner().invoke(cli, ["predict", "lenet5-digits", str(folder), "-o", str(output)])
    assert result.exit_code == 0, result.output
    lines = output.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
    rows = [json.loads(line)["path"] for line in lines] if suffix == ".jsonl" else [line.split(",")[0] for line in lines[1:]]
    assert rows == [str(odd), str(folder / "plain.png")] and os.fsencode(rows[0]).endswith(b"/caf\xe9.png")


def test_a_second_writer_of_the_same_output_is_refused_while_the_first_holds_it(tmp_path):
    from zoo.fsio import lock_path, locked

    image = one_digit(tmp_path / "one.png")
    output = tmp_path / "preds.csv"
    with locked(lock_path(output), str(output)):
        result = CliRunner().invoke(cli, ["predict", "lenet5-digits", str(image), "-o", str(output)])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {output} is being written by another zoo process")
    assert not output.exists()


def test_a_model_that_takes_no_images_is_refused_by_the_python_api_and_writes_nothing(tmp_path):
    image = one_digit(tmp_path / "one.png")
    for runtime in ("auto", "eager", "onnx"):  # said before anything is exported
        with pytest.raises(ArgumentError, match=r"this model declares no image preprocessing \(input_size\)"):
            zoo.predict_files(zoo.load("lstm-text"), [image], tmp_path / "preds.csv", runtime=runtime)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.png"]


def test_with_output_a_folder_stands_for_its_images_at_any_depth_hidden_folders_left_out(tmp_path):
    folder = tmp_path / "shots"
    (folder / "b" / "deeper").mkdir(parents=True)
    (folder / ".cache").mkdir()
    for name in ("z.png", "b/a.png", "b/deeper/c.png", ".cache/hidden.png", "b/.hidden.png"):
        one_digit(folder / name)
    (folder / "b" / "notes.txt").write_text("not an image")
    result = CliRunner().invoke(cli, ["predict", "lenet5-digits", str(folder), "-o", str(tmp_path / "preds.jsonl")])
    assert result.exit_code == 0, result.output
    paths = [json.loads(line)["path"] for line in (tmp_path / "preds.jsonl").read_text().splitlines()]
    assert paths == [str(folder / "b" / "a.png"), str(folder / "b" / "deeper" / "c.png"), str(folder / "z.png")]
    printed = CliRunner().invoke(cli, ["predict", "lenet5-digits", str(folder), "--json"])  # without --output: its own files
    assert [r["input"] for r in json.loads(printed.stdout)] == [str(folder / "z.png")]


def test_output_with_a_text_model_is_refused_and_workers_without_output_is_a_usage_error(tmp_path):
    text = CliRunner().invoke(cli, ["predict", "lstm-text", "I love recurrent", "-o", str(tmp_path / "preds.csv")])
    assert text.exit_code == 1
    assert text.stderr == "Error: --output writes image predictions, and lstm-text reads text (drop --output: texts' answers are printed)\n"
    workers = CliRunner().invoke(cli, ["predict", "lenet5-digits", str(one_digit(tmp_path / "one.png")), "--workers", "2"])
    assert workers.exit_code == 2 and "--overwrite, --resume and --workers go with --output" in workers.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.png"]


@pytest.fixture(scope="module")
def ocr_home(tmp_path_factory):
    """A ZOO_HOME of the module's own: english-ocr is converted into it once."""
    return tmp_path_factory.mktemp("ocr-home")


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_task_other_than_classification_writes_its_decoded_fields_per_file_and_skips_an_unreadable_one(
    tmp_path, monkeypatch, ocr_home, suffix
):
    from zoo_ocr.render import random_lines, write_lines

    from zoo.predict.files import predict_files
    from zoo.tasks import task_of

    font = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
    if not font.is_file():
        pytest.skip(f"{font} is not installed (fonts-dejavu-core)")
    monkeypatch.setenv("ZOO_HOME", str(ocr_home))
    lines = write_lines(tmp_path / "lines", random_lines("river stone light paper green house".split(), 3, seed=4), font)
    texts = [row.split(",", 1)[1] for row in (lines / "labels.csv").read_text().splitlines()[1:]]
    (lines / "line-00001-bad.png").write_text("not a picture\n")  # sorts between the first and the second line
    model = zoo.load("english-ocr")
    output = tmp_path / f"read{suffix}"
    seen = []
    summary = predict_files(model, [lines], output, top_k=2, task=task_of(model), progress=lambda *a: seen.append(a[1:3]))
    assert (summary.inputs, summary.predicted, summary.skipped) == (4, 3, {"corrupt or truncated image": 1})
    assert seen == [(4, 4)] and summary.runtime["runtime"] == "eager"
    paths = [str(lines / name) for name in ("line-00000.png", "line-00001-bad.png", "line-00001.png", "line-00002.png")]
    if suffix == ".jsonl":
        got = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
        assert [g["path"] for g in got] == paths
        assert got[1] == {"path": paths[1], "error": "corrupt or truncated image"}
        read = [g for k, g in enumerate(got) if k != 1]
    else:
        with output.open(newline="", encoding="utf-8") as stream:
            got = list(csv.DictReader(stream))
        assert list(got[0]) == ["path", "text", "confidence", "confidences", "alternatives", "error"]
        assert [g["path"] for g in got] == paths
        assert got[1] == {"path": paths[1], "text": "", "confidence": "", "confidences": "", "alternatives": "",
                          "error": "corrupt or truncated image"}
        read = [{**g, "confidences": json.loads(g["confidences"]), "alternatives": json.loads(g["alternatives"]),
                 "confidence": float(g["confidence"])} for k, g in enumerate(got) if k != 1]
    assert [r["text"] for r in read] == texts
    for r in read:
        assert len(r["confidences"]) == len(r["text"]) and r["confidence"] == min(r["confidences"]) > 0.5
        assert len(r["alternatives"]) == 2 and r["alternatives"][0]["text"] == r["text"]
        assert r.get("error", "") == ""


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
@pytest.mark.parametrize("stop", [1, 2], ids=["after-the-unreadable-first-file", "after-a-prediction"])
def test_a_task_run_stopped_and_resumed_writes_what_one_run_writes(tmp_path, monkeypatch, ocr_home, suffix, stop):
    """CSV rows of a decoded task wait for the first prediction, which names the columns: a run stopped
    before it keeps them in its record, and the resumed run writes them under the right header."""
    from zoo_ocr.render import random_lines, write_lines

    from zoo.predict.files import predict_files
    from zoo.tasks import task_of

    font = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
    if not font.is_file():
        pytest.skip(f"{font} is not installed (fonts-dejavu-core)")
    monkeypatch.setenv("ZOO_HOME", str(ocr_home))
    lines = write_lines(tmp_path / "lines", random_lines("river stone light paper".split(), 3, seed=5), font)
    (lines / "line-00000-bad.png").write_text("not a picture\n")  # sorts first
    model = zoo.load("english-ocr")
    task = task_of(model)
    predict_files(model, [lines], tmp_path / f"whole{suffix}", top_k=2, task=task, batch_size=1)

    def stop_after(stage, done, total, info):
        if done >= stop:
            raise KeyboardInterrupt

    output = tmp_path / f"read{suffix}"
    with pytest.raises(KeyboardInterrupt):
        predict_files(model, [lines], output, top_k=2, task=task, batch_size=1, progress=stop_after)
    summary = predict_files(model, [lines], output, top_k=2, task=task, batch_size=1, resume=True)
    assert (summary.inputs, summary.predicted, summary.resumed) == (4, 3, stop)
    assert summary.skipped == {"corrupt or truncated image": 1}
    assert output.read_bytes() == (tmp_path / f"whole{suffix}").read_bytes()


def test_a_task_that_reads_texts_is_refused_with_output(tmp_path):
    from zoo.predict.files import predict_files
    from zoo.tasks import task_of

    model = zoo.load("lstm-text")
    with pytest.raises(ArgumentError, match=r"--output writes predictions for image files, and task 'language-modeling' reads texts"):
        predict_files(model, [tmp_path], tmp_path / "preds.csv", task=task_of(model))
    assert not (tmp_path / "preds.csv").exists()


def test_the_decoding_thread_hands_on_items_in_order_raises_its_error_here_and_stops_when_left_early():
    import threading

    from zoo.predict.images import prefetched

    def numbers(stop_at=None):
        for k in range(10):
            if k == stop_at:
                raise OSError(f"disk gone at {k}")
            yield k

    assert list(prefetched(numbers())) == list(range(10))
    got = []
    with pytest.raises(OSError, match="disk gone at 4"):
        for k in prefetched(numbers(stop_at=4)):
            got.append(k)
    assert got == [0, 1, 2, 3]
    early = prefetched(numbers(), depth=1)
    assert next(early) == 0
    early.close()
    assert not any(t.name == "zoo-prefetch" for t in threading.enumerate())


def decode_tensors(outputs, labels, top_k):
    """A decode that breaks the contract: tensors, not JSON values."""
    return [{"scores": row} for row in outputs]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_task_whose_decode_gives_what_json_cannot_hold_is_named_and_leaves_no_output(tmp_path, suffix):
    from zoo.predict.files import predict_files

    spec = zoo.TaskSpec(name="raw-scores", output=("batch", "classes"), decode="test_predict_batch:decode_tensors",
                        columns=("SCORES",), rows="zoo.tasks.classification:rows", metrics="zoo.tasks.classification:metrics",
                        plugin="a test")
    image = one_digit(tmp_path / "one.png")
    with pytest.raises(ArgumentError, match=rf"task 'raw-scores' \(a test\) decoded {image} into a value JSON cannot hold \(.*Tensor"):
        predict_files(zoo.load("lenet5-digits"), [image], tmp_path / f"scores{suffix}", task=spec)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.png"]
