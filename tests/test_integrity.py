"""Integrity that holds under in-place edits and forged records: the cache, model directories,
the feature cache, what killed runs leave behind, and an export's sidecar paired with its file."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

import zoo
from finetune_data import subset
from zoo.cache import read_record, records, sha256_file, write_record
from zoo.cli import cli
from zoo.errors import WeightsIntegrityError

LITE0 = "tf_efficientnet_lite0.in1k"
MLP = "mlp.digits"


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """20 real handwritten digits per class (200 images, 8×8 grey)."""
    from zoo.data.packaged import write_dataset

    root = tmp_path_factory.mktemp("digits")
    write_dataset("digits", root / "all")
    return subset(root / "all", root / "small", per_class=20)


def flip_a_byte_keeping_mtime(path: str | Path) -> None:
    """Edit a file in place and put its mtime back, as `touch -r` would: only ctime tells."""
    st = os.stat(path)
    with open(path, "r+b") as f:
        f.seek(st.st_size - 3)
        byte = f.read(1)
        f.seek(st.st_size - 3)
        f.write(bytes([byte[0] ^ 0xFF]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(path).st_mtime_ns == st.st_mtime_ns


def mlp_source() -> str:
    from zoo.registry import default_registry

    return default_registry().weights[MLP].sources[0].describe()


# -- forged records --------------------------------------------------------------------------------
def test_a_forged_owned_record_does_not_make_cache_rm_delete_a_file_outside_zoos_folders(tmp_path):
    victim = tmp_path / "thesis.tex"
    victim.write_text("five years of work")
    write_record(MLP, mlp_source(), victim, sha256_file(victim), owned=True)
    result = CliRunner().invoke(cli, ["cache", "rm", "--all"])
    assert result.exit_code == 0, result.output
    assert victim.read_text() == "five years of work"
    assert f"forgot {MLP}: {victim} (not a file zoo wrote; left in place)" in result.stderr
    assert read_record(MLP, mlp_source()) is None


def test_a_record_pointing_a_weight_id_at_another_file_is_not_followed(tmp_path):
    pinned = zoo.load("mlp-digits")
    state = {k: v.clone() for k, v in pinned.state_dict().items()}
    forged_state = {k: v + 1 for k, v in state.items()}
    forged = Path(os.environ["ZOO_HOME"]) / "weights" / "mlp.digits" / "forged.safetensors"  # even inside ZOO_HOME
    forged.parent.mkdir(parents=True, exist_ok=True)
    save_file(forged_state, forged)
    write_record(MLP, mlp_source(), forged, sha256_file(forged))
    model = zoo.load("mlp-digits")
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    from zoo.registry import default_registry

    assert model.zoo.weights_sha256 == default_registry().weights[MLP].sources[0].sha256
    assert read_record(MLP, mlp_source()).path != str(forged)  # the fetch replaced the forged record


# -- in-place edits: ctime, and bad stays bad ------------------------------------------------------
def test_a_flipped_byte_with_its_mtime_restored_in_a_cached_file_is_refused():
    zoo.load(LITE0)
    (record,) = records()
    flip_a_byte_keeping_mtime(record.path)
    with pytest.raises(WeightsIntegrityError, match="the file was not loaded"):
        zoo.load(LITE0)


def test_a_flipped_byte_with_its_mtime_restored_in_a_model_directory_is_refused(tmp_path):
    from zoo.modeldir import save_model_dir

    folder = save_model_dir(zoo.load("mlp-digits"), tmp_path / "m")
    zoo.load(str(folder))  # recorded as verified
    flip_a_byte_keeping_mtime(folder / "model.safetensors")
    with pytest.raises(WeightsIntegrityError, match="model.safetensors .* has sha256"):
        zoo.load(str(folder))


def test_a_file_cache_verify_found_bad_is_never_used_until_it_passes_again():
    zoo.load(LITE0)
    (record,) = records()
    original = Path(record.path).read_bytes()
    flip_a_byte_keeping_mtime(record.path)
    runner = CliRunner()
    verify = runner.invoke(cli, ["cache", "verify"])
    assert verify.exit_code == 1 and "BAD" in verify.stdout
    assert read_record(LITE0, record.source).bad
    for _ in range(2):  # each load re-hashes it, and refuses it
        with pytest.raises(WeightsIntegrityError):
            zoo.load(LITE0)
    Path(record.path).write_bytes(original)  # repaired by hand: verify says so, and loads use it again
    assert runner.invoke(cli, ["cache", "verify"]).exit_code == 0
    assert not read_record(LITE0, record.source).bad
    zoo.load(LITE0)


def test_a_bad_record_is_rehashed_even_when_the_file_status_matches_it():
    from dataclasses import replace

    from zoo.cache import check_record, mark_bad

    zoo.load("mlp-digits")
    (record,) = records()
    mark_bad(replace(record, sha256="0" * 64))  # what `zoo cache verify` leaves when the bytes differ
    with pytest.raises(WeightsIntegrityError, match="expected 0000"):
        check_record(read_record(record.model, record.source), "remedy")


# -- the feature cache carries a checksum ----------------------------------------------------------
def test_swapped_labels_in_the_feature_cache_are_noticed_and_the_features_computed_again(digits, tmp_path):
    args = dict(strategy="head", epochs=2, batch_size=32, seed=0)
    first = zoo.finetune("mlp-digits", digits, output=str(tmp_path / "a"), **args)
    assert first.features == "computed"
    (path,) = (Path(os.environ["ZOO_HOME"]) / "features").glob("*.safetensors")
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        metadata = f.metadata()
    tensors = load_file(path)
    tensors["train_y"], tensors["val_y"] = 9 - tensors["train_y"], 9 - tensors["val_y"]
    save_file(tensors, path, metadata=metadata)
    with pytest.warns(UserWarning, match=r"cached features .* were changed \(checksum mismatch\); computing them again"):
        second = zoo.finetune("mlp-digits", digits, output=str(tmp_path / "b"), **args)
    assert second.features == "computed"
    assert second.val_accuracy == pytest.approx(first.val_accuracy)
    third = zoo.finetune("mlp-digits", digits, output=str(tmp_path / "c"), **args)
    assert third.features == "cached"  # the recomputed file is sound


# -- what killed runs leave behind -----------------------------------------------------------------
KILLED_WRITERS = """
    import os, signal, sys
    from pathlib import Path
    from zoo.exporting import STAGING_PREFIX
    from zoo.fsio import atomic_path, staging_dir, zoo_home

    with staging_dir(Path(sys.argv[1]), prefix=STAGING_PREFIX) as stage:
        (stage / "m.onnx").write_bytes(b"x" * 5000)
        with atomic_path(zoo_home() / "weights" / "w" / "a.safetensors") as tmp:
            tmp.write_bytes(b"y" * 3000)
            os.kill(os.getpid(), signal.SIGKILL)
"""


def test_cache_commands_see_and_clean_what_a_sigkill_left(tmp_path):
    killed = subprocess.run([sys.executable, "-c", textwrap.dedent(KILLED_WRITERS), str(tmp_path / "m.onnx")])
    assert killed.returncode == -signal.SIGKILL
    (staging,) = tmp_path.glob(".zoo-export-*")
    (temporary,) = (Path(os.environ["ZOO_HOME"]) / "weights" / "w").glob(".*.tmp")
    live = subprocess.Popen(  # a writer still at work: its files are not orphans
        [sys.executable, "-c", textwrap.dedent(KILLED_WRITERS.replace("os.kill(os.getpid(), signal.SIGKILL)", "print('ready', flush=True); sys.stdin.read()")),
         str(tmp_path / "live.onnx")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert live.stdout.readline().strip() == "ready"
        runner = CliRunner()
        listed = runner.invoke(cli, ["cache", "ls"])
        assert listed.exit_code == 0
        assert "Note: 2 file(s) left by interrupted runs (8.0KB); `zoo cache clean` removes them" in listed.stderr
        dry = runner.invoke(cli, ["cache", "clean", "--dry-run", "--json"])
        assert {(r["kind"], r["path"]) for r in json.loads(dry.stdout)} == {
            ("staging folder", str(staging)), ("temporary file", str(temporary))
        }
        assert staging.exists() and temporary.exists()
        cleaned = runner.invoke(cli, ["cache", "clean"])
        assert cleaned.exit_code == 0 and str(staging) in cleaned.stdout
        assert not staging.exists() and not temporary.exists()
        assert len(list(tmp_path.glob(".zoo-export-*"))) == 1  # the live writer's
    finally:
        live.communicate("")
    assert not list(tmp_path.glob(".zoo-export-*"))  # and it cleans up after itself


# -- an export's sidecar names its artifact --------------------------------------------------------
def test_a_sidecar_paired_with_another_exports_file_is_refused(tmp_path):
    from PIL import Image

    image = tmp_path / "digit.png"
    Image.new("L", (8, 8), 255).save(image)
    zoo.export("mlp-digits", tmp_path / "m.onnx")
    other = zoo.load("mlp-digits")
    with torch.no_grad():
        for p in other.parameters():
            p.mul_(-1)
    zoo.export(other, tmp_path / "n.onnx")
    record = json.loads((tmp_path / "m.onnx.json").read_text())
    assert record["sha256"] == sha256_file(tmp_path / "m.onnx")
    # An export killed between its two moves: the new sidecar beside the old file.
    (tmp_path / "m.onnx.json").write_text((tmp_path / "n.onnx.json").read_text())
    result = CliRunner().invoke(cli, ["predict", str(tmp_path / "m.onnx"), str(image), "--runtime", "onnx"])
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {tmp_path / 'm.onnx'} has sha256 {sha256_file(tmp_path / 'm.onnx')}, but its sidecar m.onnx.json was "
        f"written for {sha256_file(tmp_path / 'n.onnx')}: they come from different exports (export the model again "
        "(an export was interrupted, or a file was replaced))\n"
    )


def test_an_export_killed_while_publishing_never_leaves_a_sidecar_beside_another_file(tmp_path):
    from PIL import Image

    image = tmp_path / "digit.png"
    Image.new("L", (8, 8), 255).save(image)
    zoo.export("mlp-digits", tmp_path / "m.onnx")
    script = """
        import os, signal, sys, torch
        import zoo

        real = os.replace
        def replace(src, dst):
            real(src, dst)
            if str(dst) == sys.argv[1]:
                os.kill(os.getpid(), signal.SIGKILL)  # the new file has arrived, its sidecar not yet
        os.replace = replace
        model = zoo.load("mlp-digits")
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(-1)
        zoo.export(model, sys.argv[1])
    """
    killed = subprocess.run([sys.executable, "-c", textwrap.dedent(script), str(tmp_path / "m.onnx")])
    assert killed.returncode == -signal.SIGKILL
    result = CliRunner().invoke(cli, ["predict", str(tmp_path / "m.onnx"), str(image), "--runtime", "onnx"])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {tmp_path / 'm.onnx'} has no sidecar m.onnx.json")
