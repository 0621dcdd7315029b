"""Nothing the user owns is deleted or replaced by surprise: --overwrite, crash-safe swaps, locks, -o.

Crashes are real SIGKILLs, delivered by the process to itself at the moment that matters; the
concurrent writers are real processes holding the real lock.
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import zoo
from helpers import run_zoo
from finetune_data import real_digits
from zoo.cli import cli
from zoo.errors import ArgumentError, BusyError, ModelDirError, ZooError
from zoo.modeldir import read_config

FAST = dict(epochs=1, batch_size=32, seed=0)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """20 real handwritten digits per class (200 images, 8×8 grey)."""
    return real_digits(tmp_path_factory, per_class=20)


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# -- --overwrite replaces only a zoo model directory or an empty folder ---------------------------
def test_overwrite_refuses_a_folder_that_is_not_a_zoo_model_directory_before_training(digits, tmp_path, isolated_env):
    important = tmp_path / "important"
    (important / "src").mkdir(parents=True)
    (important / "thesis.tex").write_text("five years of work")
    (important / "src" / "main.py").write_text("print('hi')")
    before = tree(important)
    result = run_zoo("finetune", "mlp-digits", "--data", str(digits), "-o", str(important), "--overwrite", "--epochs", "1")
    assert result.returncode == 1
    assert result.stderr == (
        f"Error: {important} is not a zoo model directory (no config.json with \"library\": \"zoo\"); --overwrite "
        "replaces only a zoo model directory or an empty folder (nothing was changed; choose another output, "
        "or move that folder away yourself)\n"
    )
    assert tree(important) == before
    assert not (isolated_env / "zoo" / "features").exists()  # refused before the feature pass, not after training
    assert not (tmp_path / ".important.partial").exists()


def test_overwrite_refuses_a_file_and_a_folder_whose_config_is_not_zoos(digits, tmp_path):
    paper = tmp_path / "paper.pdf"
    paper.write_bytes(b"%PDF")
    with pytest.raises(ArgumentError, match="paper.pdf is a file; --overwrite replaces only a zoo model directory"):
        zoo.finetune("mlp-digits", digits, output=str(paper), overwrite=True, **FAST)
    assert paper.read_bytes() == b"%PDF"
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"format_version": 1, "library": "transformers"}))
    with pytest.raises(ArgumentError, match="is not a zoo model directory"):
        zoo.finetune("mlp-digits", digits, output=str(other), overwrite=True, **FAST)
    assert [p.name for p in other.iterdir()] == ["config.json"]


def test_overwrite_replaces_a_zoo_model_directory_and_an_empty_folder(digits, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    zoo.finetune("mlp-digits", digits, output=str(empty), overwrite=True, **FAST)
    first = tree(empty)
    assert "config.json" in first
    zoo.finetune("mlp-digits", digits, output=str(empty), overwrite=True, lr=3e-3, **FAST)
    assert tree(empty)["model.safetensors"] != first["model.safetensors"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]  # no .previous, .partial or lock left


def test_save_model_dir_overwrite_refuses_a_folder_zoo_did_not_write(tmp_path):
    from zoo.modeldir import save_model_dir

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    model = zoo.load("mlp-digits")
    with pytest.raises(ModelDirError, match="is not a zoo model directory"):
        save_model_dir(model, mine, overwrite=True)
    assert tree(mine) == {"notes.txt": b"keep"}


# -- a swap cut short is repaired, never lost -----------------------------------------------------
KILL_AT_RENAME = """
    import os, signal, sys
    import zoo
    from zoo import fsio
    from zoo.modeldir import save_model_dir

    real, calls = os.rename, []
    def rename(src, dst):
        real(src, dst)
        calls.append(dst)
        if len(calls) == int(sys.argv[2]):
            os.kill(os.getpid(), signal.SIGKILL)  # the crash, right after this rename of the swap
    fsio.os.rename = rename
    model = zoo.load("mlp-digits")
    model.zoo.name = "second"
    save_model_dir(model, sys.argv[1], overwrite=True)
"""


def replace_and_kill(out: Path, at_rename: int) -> None:
    killed = subprocess.run([sys.executable, "-c", textwrap.dedent(KILL_AT_RENAME), str(out), str(at_rename)])
    assert killed.returncode == -9


def test_a_swap_killed_between_its_renames_keeps_the_old_model_and_the_next_run_restores_it(digits, tmp_path):
    out = tmp_path / "out"
    zoo.finetune("mlp-digits", digits, output=str(out), **FAST)
    old = tree(out)
    replace_and_kill(out, at_rename=1)
    previous = tmp_path / ".out.previous"
    assert not out.exists() and tree(previous) == old  # the old model waits where no run deletes it
    # The next plain run puts it back, then refuses to replace it without --overwrite (before training).
    with pytest.warns(UserWarning, match="was restored from .out.previous"), pytest.raises(ArgumentError, match="already exists"):
        zoo.finetune("mlp-digits", digits, output=str(out), **FAST)
    assert tree(out) == old and not previous.exists()


def test_a_swap_killed_after_the_new_model_arrived_is_finished_by_zoo_cache_clean(tmp_path):
    out = tmp_path / "out"
    from zoo.modeldir import save_model_dir

    save_model_dir(zoo.load("mlp-digits"), out)
    replace_and_kill(out, at_rename=2)
    assert read_config(out)["name"] == "second"
    assert (tmp_path / ".out.previous").is_dir()
    cleaned = CliRunner().invoke(cli, ["cache", "clean", "--json"])
    assert cleaned.exit_code == 0, cleaned.output
    done = sorted((r["kind"], r["done"]) for r in json.loads(cleaned.stdout))
    assert done == [("interrupted swap", "finished"), ("journal entry", "removed")]  # the staging folder had arrived
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# -- one writer per output: a second run fails at once, before training --------------------------
HOLD_LOCK = """
    import sys, time
    from pathlib import Path
    from zoo.fsio import lock_path, locked

    with locked(lock_path(Path(sys.argv[1])), "test"):
        print("held", flush=True)
        time.sleep(float(sys.argv[2]))
"""


def hold_lock(target: Path, seconds: float = 60) -> subprocess.Popen:
    """A real second process holding the lock of `target` for `seconds`."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLD_LOCK), str(target), str(seconds)], stdout=subprocess.PIPE, text=True
    )


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_second_run_to_the_same_output_fails_at_once_while_the_first_writes(digits, tmp_path, overwrite):
    out = tmp_path / "out"
    holder = hold_lock(out)
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.perf_counter()
        result = run_zoo("finetune", "mlp-digits", "--data", str(digits), "-o", str(out), "--epochs", "1",
                         *(["--overwrite"] if overwrite else []))
        assert result.returncode == 1
        assert result.stderr.startswith(f"Error: the output '{out}' is being written by another zoo process (lock file ")
        assert result.stderr.endswith("(wait for that run to finish, or choose another output)\n")
        assert time.perf_counter() - started < 30 and not out.exists()
    finally:
        holder.kill()
        holder.wait()


def test_a_cache_entry_being_fetched_by_another_process_is_waited_for(tmp_path):
    from zoo.cache import weights_dir
    from zoo.fsio import lock_path

    holder = hold_lock(weights_dir("mlp.digits"), seconds=2)
    assert holder.stdout.readline().strip() == "held"
    started = time.perf_counter()
    model = zoo.load("mlp-digits")  # waits for the holder, then fetches
    assert time.perf_counter() - started > 1.0 and model.zoo.weights == "mlp.digits"
    holder.wait()
    assert lock_path(weights_dir("mlp.digits")).parent == Path(os.environ["ZOO_HOME"]) / "locks"


def test_locked_raises_busy_naming_what_is_held(tmp_path):
    from zoo.fsio import lock_path, locked

    holder = hold_lock(tmp_path / "x")
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(BusyError, match="the thing is being written by another zoo process"):
            with locked(lock_path(tmp_path / "x"), "the thing"):
                pass
    finally:
        holder.kill()
        holder.wait()
    with locked(lock_path(tmp_path / "x"), "the thing"):  # free again once the holder is gone
        pass


# -- -o replaces only a regular file --------------------------------------------------------------
def test_export_refuses_a_fifo_a_symlink_and_a_device_as_output(tmp_path):
    fifo = tmp_path / "m.onnx"
    os.mkfifo(fifo)
    runner = CliRunner()
    result = runner.invoke(cli, ["export", "mlp-digits", "-o", str(fifo)])
    assert result.exit_code == 1
    assert result.stderr == f"Error: {fifo} is a FIFO; an export replaces only a regular file (choose another -o)\n"
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    target = tmp_path / "real.onnx"
    target.write_bytes(b"mine")
    link = tmp_path / "link.onnx"
    link.symlink_to(target)
    result = runner.invoke(cli, ["export", "mlp-digits", "-o", str(link)])
    assert result.exit_code == 1 and "is a symlink; an export replaces only a regular file" in result.stderr
    assert link.is_symlink() and target.read_bytes() == b"mine"
    result = runner.invoke(cli, ["export", "mlp-digits", "-o", "/dev/null"])
    assert result.exit_code == 1 and "/dev/null is a character device" in result.stderr
    sidecar_fifo = tmp_path / "s.onnx.json"
    os.mkfifo(sidecar_fifo)
    result = runner.invoke(cli, ["export", "mlp-digits", "-o", str(tmp_path / "s.onnx")])
    assert result.exit_code == 1 and f"{sidecar_fifo} is a FIFO" in result.stderr
    assert not (tmp_path / "s.onnx").exists()


# -- outputs have the permissions of a file the user creates --------------------------------------
def test_a_finetune_output_is_0644_and_0755_under_umask_022(digits, tmp_path):
    old = os.umask(0o022)
    try:
        zoo.finetune("mlp-digits", digits, output=str(tmp_path / "out"), **FAST)
    finally:
        os.umask(old)
    out = tmp_path / "out"
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()}
    assert modes == {name: 0o644 for name in ("README.md", "config.json", "confusion_matrix.png", "model.safetensors")}


def test_a_folder_named_like_a_swap_that_zoo_did_not_leave_is_never_touched(tmp_path):
    from zoo.modeldir import save_model_dir

    mine = tmp_path / ".out.previous"
    (mine / "src").mkdir(parents=True)
    (mine / "src" / "thesis.tex").write_text("mine")
    out = tmp_path / "out"
    save_model_dir(zoo.load("mlp-digits"), out)  # no output yet: the folder is not put in its place
    with pytest.raises(ZooError, match=r"\.out\.previous beside it was not left by zoo"):
        save_model_dir(zoo.load("mlp-digits"), out, overwrite=True)  # an output there: the folder is not deleted
    assert (mine / "src" / "thesis.tex").read_text() == "mine"
    assert read_config(out)["library"] == "zoo"


def test_a_partial_folder_holding_what_zoo_did_not_write_is_never_deleted(digits, tmp_path):
    work = tmp_path / ".out.partial"
    work.mkdir()
    (work / "notes.txt").write_text("mine")
    with pytest.raises(ArgumentError, match=r"holds what zoo did not write there \(notes\.txt\)"):
        zoo.finetune("mlp-digits", digits, output=str(tmp_path / "out"), overwrite=True, **FAST)
    assert (work / "notes.txt").read_text() == "mine" and not (tmp_path / "out").exists()
