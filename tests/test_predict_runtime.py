"""`predict_files(runtime="auto")`: the whole model exported once into zoo's ONNX cache and run by ONNX
Runtime with eager's answers; the export reused, rebuilt when damaged, never executed when hostile,
and eager (with one warning) for a model the exporter cannot write. Real models, real files."""
from __future__ import annotations

import hashlib
import json
import pickle
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

import zoo
from finetune_data import real_digits, write_image
from zoo.errors import ArgumentError, ExportError
from zoo.predict import runtime as predict_runtime
from zoo.predict.files import predict_files


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    """scikit-learn's handwritten digits, 6 of each class: 60 real files."""
    return real_digits(tmp_path_factory, per_class=6)


@pytest.fixture
def always_export(monkeypatch):
    """auto exports whatever the number of images (the rule weighs them against the export's time)."""
    monkeypatch.setattr(predict_runtime, "REUSE", 0.0)


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def same_answers(got: list[dict], want: list[dict]) -> None:
    assert [g["path"] for g in got] == [w["path"] for w in want]
    assert [g["top"][0]["label"] for g in got] == [w["top"][0]["label"] for w in want]
    for g, w in zip(got, want):
        assert [t["probability"] for t in g["top"]] == pytest.approx([t["probability"] for t in w["top"]], abs=1e-4)


def cached_file(model: nn.Module) -> Path:
    from zoo.finetuning.feature_runtime import FILE, backbones_dir

    return backbones_dir() / predict_runtime.model_key(model) / FILE


@pytest.mark.slow
def test_auto_exports_once_runs_onnx_runtime_and_answers_as_eager_then_reuses_the_export(tmp_path, digits, always_export):
    model = zoo.load("lenet5-digits")
    eager = predict_files(model, [digits], tmp_path / "eager.jsonl", top_k=3, batch_size=8, runtime="eager")
    assert eager.runtime["runtime"] == "eager" and not cached_file(model).parent.exists()

    first = predict_files(model, [digits], tmp_path / "auto.jsonl", top_k=3, batch_size=8)
    assert (first.runtime["runtime"], first.runtime["export"], first.predicted) == ("onnx", "exported", 60)
    assert first.runtime["export_seconds"] > 0 and first.runtime["threads"] >= 1
    same_answers(rows(tmp_path / "auto.jsonl"), rows(tmp_path / "eager.jsonl"))

    exported = cached_file(model).stat().st_mtime_ns
    again = predict_files(model, [digits], tmp_path / "again.jsonl", top_k=3, batch_size=8)
    assert (again.runtime["runtime"], again.runtime["export"], again.runtime["reason"]) == ("onnx", "cached", "auto: the export is cached")
    assert cached_file(model).stat().st_mtime_ns == exported
    same_answers(rows(tmp_path / "again.jsonl"), rows(tmp_path / "eager.jsonl"))


def test_few_images_run_eager_and_export_nothing(tmp_path, digits):
    model = zoo.load("lenet5-digits")
    summary = predict_files(model, [digits], tmp_path / "preds.csv", batch_size=20)  # 20 left after the timed batch
    assert summary.runtime["runtime"] == "eager" and summary.runtime["reason"].startswith("auto: 20 images × ")
    assert "<= " in summary.runtime["reason"] and not cached_file(model).parent.exists()


def test_a_damaged_cached_export_is_deleted_and_exported_again(tmp_path, digits, always_export):
    model = zoo.load("lenet5-digits")
    threads = torch.get_num_threads()
    predict_files(model, [digits], tmp_path / "first.jsonl", batch_size=8, runtime="onnx")
    assert torch.get_num_threads() == threads  # PyTorch ran one thread beside ONNX Runtime, and has its own back
    path = cached_file(model)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match=r"is unusable \(.*sha256.*\); exporting it again"):
        summary = predict_files(model, [digits], tmp_path / "second.jsonl", batch_size=8)
    assert (summary.runtime["runtime"], summary.runtime["export"]) == ("onnx", "exported")
    same_answers(rows(tmp_path / "second.jsonl"), rows(tmp_path / "first.jsonl"))


class Payload:
    """Unpickling this writes a file: the proof that something ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "ran"))


def test_a_hostile_cached_export_with_a_matching_sidecar_is_never_executed(tmp_path, digits, always_export):
    model = zoo.load("lenet5-digits")
    predict_files(model, [digits], tmp_path / "first.jsonl", batch_size=8, runtime="onnx")
    path, marker = cached_file(model), tmp_path / "ran.txt"
    path.write_bytes(pickle.dumps(Payload(marker)))  # and the sidecar is rewritten to vouch for it
    sidecar = path.with_name(path.name + ".json")
    record = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**record, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}))
    with pytest.warns(UserWarning, match="is unusable"):
        summary = predict_files(model, [digits], tmp_path / "second.jsonl", batch_size=8)
    assert not marker.exists()
    assert (summary.runtime["runtime"], summary.runtime["export"]) == ("onnx", "exported")
    same_answers(rows(tmp_path / "second.jsonl"), rows(tmp_path / "first.jsonl"))


class Unexportable(nn.Module):
    """A convolution, then eigenvalues: no ONNX operator computes `eigvalsh`."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3)
        from zoo.heads import model_info

        self.zoo = model_info("unexportable", "unexportable", labels=list("abcd"),
                              preprocess={"input_size": [3, 12, 12], "mean": [0.5] * 3, "std": [0.5] * 3})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.conv(x).mean((2, 3))
        return torch.linalg.eigvalsh(f[:, :, None] * f[:, None, :] + torch.eye(4))


def test_a_model_onnx_cannot_export_runs_eager_after_one_warning_and_onnx_asked_for_is_an_error(tmp_path, always_export):
    for i in range(24):
        write_image(tmp_path / "pictures" / f"{i:02d}.png", value=i)
    model = Unexportable()
    eager = predict_files(model, [tmp_path / "pictures"], tmp_path / "eager.jsonl", batch_size=4, runtime="eager")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = predict_files(model, [tmp_path / "pictures"], tmp_path / "auto.jsonl", batch_size=4)
    notes = [str(w.message) for w in caught if "ONNX" in str(w.message)]
    assert len(notes) == 1 and notes[0].startswith("the model could not be exported to ONNX (onnx export failed")
    assert notes[0].endswith("; predicting eager")
    assert summary.runtime["runtime"] == "eager" and summary.runtime["reason"].endswith("; fell back to eager")
    assert eager.predicted == summary.predicted == 24
    same_answers(rows(tmp_path / "auto.jsonl"), rows(tmp_path / "eager.jsonl"))
    assert not cached_file(model).parent.exists()

    with pytest.raises(ExportError, match="onnx export failed"):
        predict_files(model, [tmp_path / "pictures"], tmp_path / "onnx.jsonl", runtime="onnx")
    assert not (tmp_path / "onnx.jsonl").exists()


def test_an_unknown_runtime_is_refused_before_any_row(tmp_path, digits):
    with pytest.raises(ArgumentError, match=r"unknown runtime 'tensorrt' \(choose one of auto, eager, onnx\)"):
        predict_files(zoo.load("lenet5-digits"), [digits], tmp_path / "preds.csv", runtime="tensorrt")
    assert not (tmp_path / "preds.csv").exists()


def test_a_cache_that_cannot_be_written_runs_eager_after_one_warning(tmp_path, digits, always_export):
    from zoo.finetuning.feature_runtime import backbones_dir

    model = zoo.load("lenet5-digits")
    backbones_dir().parent.mkdir(parents=True, exist_ok=True)
    backbones_dir().write_text("a file where the cache's folder should be\n")
    with pytest.warns(UserWarning, match=r"^the model could not be exported to ONNX \(NotADirectoryError: .*\); predicting eager$"):
        summary = predict_files(model, [digits], tmp_path / "preds.jsonl", batch_size=8)
    assert (summary.runtime["runtime"], summary.predicted) == ("eager", 60)


def test_another_models_export_planted_under_this_models_key_is_caught_on_the_first_batch(tmp_path, digits, always_export):
    import shutil

    original = zoo.load("lenet5-digits")
    predict_files(original, [digits], tmp_path / "original.jsonl", batch_size=8, runtime="onnx")
    changed = zoo.load("lenet5-digits")
    with torch.no_grad():
        for parameter in changed.parameters():
            parameter.mul_(-1.5)  # another function of the same architecture
    eager = predict_files(changed, [digits], tmp_path / "eager.jsonl", batch_size=8, runtime="eager")
    shutil.copytree(cached_file(original).parent, cached_file(changed).parent)  # a valid export, sidecar and all
    with pytest.warns(UserWarning, match=r"^ONNX Runtime's probabilities differ from eager by .* on the first batch; predicting eager$"):
        summary = predict_files(changed, [digits], tmp_path / "auto.jsonl", batch_size=8)
    assert summary.runtime["runtime"] == "eager" and summary.runtime["reason"] == "auto: the export is cached; fell back to eager"
    assert summary.predicted == eager.predicted == 60
    same_answers(rows(tmp_path / "auto.jsonl"), rows(tmp_path / "eager.jsonl"))
    with pytest.raises(ExportError, match="differ from eager"):
        predict_files(changed, [digits], tmp_path / "onnx.jsonl", batch_size=8, runtime="onnx")


def test_a_batch_cut_into_lanes_that_run_at_once_gives_what_one_run_gives(tmp_path):
    from zoo.predict.onnx_runtime import OnnxRunner

    path = tmp_path / "lenet5.onnx"
    zoo.export(zoo.load("lenet5-digits"), path)
    x = torch.randn(7, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    whole = OnnxRunner(path, threads=1)(x)[0]
    for lanes in (2, 3, 4, 8):  # more lanes than images too
        assert torch.equal(OnnxRunner(path, threads=1, lanes=lanes)(x)[0], whole)
    assert torch.equal(OnnxRunner(path, threads=1, lanes=4)(x[:1])[0], whole[:1])


@pytest.mark.slow
@pytest.mark.skipif(predict_runtime.usable_cores() < 2, reason="one core: there is nothing to choose")
def test_the_way_of_running_the_trials_pick_is_remembered_beside_the_export_for_the_next_process(tmp_path, digits, always_export, monkeypatch):
    model = zoo.load("lenet5-digits")
    monkeypatch.setattr(predict_runtime, "_PICKED", {})
    monkeypatch.setattr(predict_runtime, "_OPENED", {})
    first = predict_files(model, [digits], tmp_path / "a.jsonl", top_k=1, batch_size=2)  # 30 batches: the trials finish
    choice = cached_file(model).parent / predict_runtime.CHOICE
    cores = predict_runtime.usable_cores()
    assert json.loads(choice.read_text()) == {"cores": cores, "threads": first.runtime["threads"], "lanes": first.runtime["lanes"]}
    # A new process (nothing in memory) reads it; 1 thread × 3 lanes is no choice the trials make, so it was read.
    predict_runtime._PICKED.clear()
    predict_runtime._OPENED.clear()
    choice.write_text(json.dumps({"cores": cores, "threads": 1, "lanes": 3}))
    second = predict_files(model, [digits], tmp_path / "b.jsonl", top_k=1, batch_size=4)
    assert (second.runtime["runtime"], second.runtime["threads"], second.runtime["lanes"]) == ("onnx", 1, 3)
    same_answers(rows(tmp_path / "b.jsonl"), rows(tmp_path / "a.jsonl"))


@pytest.mark.parametrize("content", [
    '{"cores": CORES, "threads": true, "lanes": 1}', '{"cores": CORES, "threads": 1, "lanes": 999}',
    '{"cores": CORES, "threads": 1.0, "lanes": 3}', '{"cores": CORES, "threads": 0, "lanes": 3}',
    '{"cores": 999, "threads": 1, "lanes": 3}', '[1, 3]', 'not json', '{"cores": CORES, "threads": 1, "lanes": 3' + ' ' * 5000 + '}',
    "stale",
])
def test_a_remembered_choice_that_is_odd_stale_or_from_another_machine_is_not_taken(tmp_path, content):
    import os
    import time

    cores = predict_runtime.usable_cores()
    export = tmp_path / "backbone.onnx"
    choice = tmp_path / predict_runtime.CHOICE
    good = json.dumps({"cores": cores, "threads": 1, "lanes": 3})
    choice.write_text(good)
    assert predict_runtime.remembered(export) == (1, 3)
    choice.write_text(good if content == "stale" else content.replace("CORES", str(cores)))
    if content == "stale":
        hours_ago = time.time() - 2 * predict_runtime.CHOICE_SECONDS
        os.utime(choice, (hours_ago, hours_ago))
    assert predict_runtime.remembered(export) is None
