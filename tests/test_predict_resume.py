"""`predict_files(..., resume=True)` / `zoo predict --output F --resume`: a run that stops keeps its rows
and a record of them beside the output, and the same run resumed writes what one uninterrupted run
writes. Another run on that output is told what to do, a record of another run is refused naming what
differs, and a damaged record or a folder holding the user's files is never trusted or deleted.
Real digits (scikit-learn's), the real lenet5-digits weights."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

import zoo
from finetune_data import real_digits
from zoo.cli import cli
from zoo.errors import ArgumentError
from zoo.predict.files import predict_files
from zoo.predict.partial import PROGRESS, partial_dir


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    """60 real files, 6 of each digit."""
    return real_digits(tmp_path_factory, per_class=6)


@pytest.fixture(scope="module")
def model():
    return zoo.load("lenet5-digits")


def stop_at(rows: int):
    """A progress callback that stops the run as Ctrl-C does once `rows` rows are written."""
    def progress(stage, done, total, info):
        if done >= rows:
            raise KeyboardInterrupt
    return progress


def run(model, digits, output, **options):
    return predict_files(model, [digits], output, batch_size=8, runtime="eager", **options)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_an_interrupted_run_keeps_its_rows_and_resumed_writes_what_one_run_writes(tmp_path, digits, model, suffix):
    whole = tmp_path / f"whole{suffix}"
    run(model, digits, whole)
    output = tmp_path / f"preds{suffix}"
    with pytest.raises(KeyboardInterrupt):
        run(model, digits, output, progress=stop_at(16))
    work = partial_dir(output)
    assert not output.exists() and sorted(p.name for p in work.iterdir()) == sorted([PROGRESS, output.name])
    record = json.loads((work / PROGRESS).read_text())
    assert (record["done"], record["total"]) == (16, 60)
    # A process killed while writing a row leaves half of it after the recorded length: it goes.
    with open(work / output.name, "a") as rows:
        rows.write("/half/a/row.png,seven,0.9")

    with pytest.raises(ArgumentError, match=re.escape(
        f"an interrupted run left 16 of 60 rows for {output} in {work} (pass --resume to continue it, or --overwrite to start over)"
    )):
        run(model, digits, output)
    summary = run(model, digits, output, resume=True)
    assert output.read_bytes() == whole.read_bytes()
    assert (summary.inputs, summary.predicted, summary.resumed) == (60, 60, 16)
    assert not work.exists()


def test_resume_refuses_another_runs_rows_naming_what_differs_and_overwrite_starts_over(tmp_path, digits, model):
    output = tmp_path / "preds.csv"
    with pytest.raises(KeyboardInterrupt):
        run(model, digits, output, progress=stop_at(8))
    work = partial_dir(output)
    kept = (work / output.name).read_bytes(), (work / PROGRESS).read_bytes()
    with pytest.raises(ArgumentError, match=r"had other --top-k \(run the same model on the same files"):
        run(model, digits, output, resume=True, top_k=3)
    touched = sorted(digits.rglob("*.png"))[30]
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))
    with pytest.raises(ArgumentError, match=r"had other input files \(names, sizes or times\)"):
        run(model, digits, output, resume=True)
    other = zoo.load("mlp-digits")
    with pytest.raises(ArgumentError, match=r"had other input files \(names, sizes or times\), model weights"):
        run(other, digits, output, resume=True)
    assert ((work / output.name).read_bytes(), (work / PROGRESS).read_bytes()) == kept  # nothing changed
    summary = run(model, digits, output, overwrite=True)
    assert (summary.inputs, summary.resumed) == (60, 0) and len(output.read_text().splitlines()) == 61
    assert not work.exists()


@pytest.mark.parametrize("damage", ["not json", "done past total", "size past the file", "a count of the wrong type", "no record"])
def test_a_damaged_record_is_not_trusted_and_overwrite_starts_over(tmp_path, digits, model, damage):
    output = tmp_path / "preds.jsonl"
    with pytest.raises(KeyboardInterrupt):
        run(model, digits, output, progress=stop_at(8))
    work = partial_dir(output)
    record = json.loads((work / PROGRESS).read_text())
    if damage == "not json":
        (work / PROGRESS).write_text("{\"version\": 1, ")
    elif damage == "no record":
        (work / PROGRESS).unlink()
    else:
        key, value = {"done past total": ("done", 61), "size past the file": ("size", 10**9),
                      "a count of the wrong type": ("predicted", "8")}[damage]
        (work / PROGRESS).write_text(json.dumps({**record, key: value}))
    with pytest.raises(ArgumentError, match=re.escape(
        f"an interrupted run left rows for {output} in {work}, without a record zoo can use (pass --overwrite to start over)"
    )):
        run(model, digits, output, resume=True)
    assert (work / output.name).exists()
    assert run(model, digits, output, overwrite=True).inputs == 60 and not work.exists()


def test_a_partial_folder_holding_the_users_files_is_refused_and_never_deleted(tmp_path, digits, model):
    output = tmp_path / "preds.csv"
    work = partial_dir(output)
    work.mkdir()
    (work / "notes.txt").write_text("mine")
    for flags in ({}, {"resume": True}, {"overwrite": True}):
        with pytest.raises(ArgumentError, match=r"holds what zoo did not write there \(notes\.txt\)"):
            run(model, digits, output, **flags)
    assert (work / "notes.txt").read_text() == "mine" and not output.exists()
    (work / "notes.txt").unlink()
    work.rmdir()
    work.symlink_to(tmp_path)
    with pytest.raises(ArgumentError, match=r"is not a folder zoo made"):
        run(model, digits, output, overwrite=True)
    assert work.is_symlink() and tmp_path.is_dir()


def test_a_run_that_fails_before_its_first_row_keeps_nothing(tmp_path, digits, model):
    output = tmp_path / "preds.csv"
    with pytest.raises(ArgumentError, match="unknown runtime"):
        predict_files(model, [digits], output, runtime="bogus")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_the_cli_says_how_to_continue_and_resume_says_what_it_continued(tmp_path, digits, model):
    output = tmp_path / "preds.csv"
    with pytest.raises(KeyboardInterrupt):
        run(model, digits, output, progress=stop_at(24))
    again = CliRunner().invoke(cli, ["predict", "lenet5-digits", str(digits), "-o", str(output), "-b", "8", "--runtime", "eager"])
    assert again.exit_code == 1 and again.stderr == (
        f"Error: an interrupted run left 24 of 60 rows for {output} in {partial_dir(output)} "
        "(pass --resume to continue it, or --overwrite to start over)\n"
    )
    resumed = CliRunner().invoke(cli, ["predict", "lenet5-digits", str(digits), "-o", str(output), "-b", "8", "--runtime",
                                       "eager", "--resume", "--json"])
    assert resumed.exit_code == 0, resumed.output
    assert "resumed after 24 rows an interrupted run wrote" in resumed.stderr
    summary = json.loads(resumed.stdout)
    assert (summary["inputs"], summary["resumed"]) == (60, 24) and len(output.read_text().splitlines()) == 61


def test_progress_counts_a_resumed_runs_rate_on_its_own_rows():
    import io

    from zoo.predict.progress import Progress

    stream = io.StringIO()
    shown = Progress(stream, every=0.0)
    shown.started -= 1.0  # a run one second old that continued after 24 rows an interrupted run wrote
    shown("predict", 60, 60, {"resumed": 24})
    done, rate = re.fullmatch(r"(\S+) images, (\S+) images/s\n", stream.getvalue()).groups()
    assert done == "60/60" and 30.0 < float(rate) <= 36.0
