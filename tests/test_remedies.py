"""Paths and remedies: the library takes str or os.PathLike, and each message a newcomer meets names
the real problem and a remedy that works (issue 11, point 7)."""
from __future__ import annotations

from pathlib import Path, PurePath

import pytest

import zoo
from finetune_data import real_digits


class FolderPath:
    """An os.PathLike that is not a pathlib.Path: what a library may hand zoo."""

    def __init__(self, path: Path):
        self.path = path

    def __fspath__(self) -> str:
        return str(self.path)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """8 real handwritten digits per class."""
    return real_digits(tmp_path_factory, per_class=8)


@pytest.fixture(scope="module")
def tuned(digits, tmp_path_factory):
    """A model directory that `zoo.finetune` wrote, given paths only."""
    out = tmp_path_factory.mktemp("tuned") / "lenet5-digits"
    return zoo.finetune("lenet5", digits, output=out, epochs=1).output


def test_readme_python_example_load_takes_the_path_finetune_returns(tuned):
    assert isinstance(tuned, PurePath)
    model = zoo.load(tuned)  # README: zoo.load(result.output)
    assert model.zoo.arch == "lenet5" and len(model.zoo.labels) == 10
    assert zoo.load(FolderPath(tuned)).zoo.labels == model.zoo.labels


def test_finetune_export_and_predict_take_any_path_like(tuned, digits, tmp_path):
    from zoo.predict.images import classify_images, image_inputs

    again = zoo.finetune(FolderPath(tuned), FolderPath(digits), output=FolderPath(tmp_path / "again"), epochs=1)
    assert (again.output / "config.json").is_file()
    result = zoo.export(FolderPath(tuned), FolderPath(tmp_path / "m.pt2"), format="pt2")
    assert result.parity.passed and result.path == tmp_path / "m.pt2"
    images = image_inputs([FolderPath(digits / "3")])
    assert classify_images(zoo.load(tuned), images, top_k=1)[0]["predictions"][0]["label"] in {str(i) for i in range(10)}


@pytest.fixture
def faces(tmp_path):
    """A small image folder, two classes."""
    from finetune_data import write_folder

    return write_folder(tmp_path / "faces", {"face": 4, "other": 4})


def test_a_text_model_given_an_image_folder_says_it_reads_text(faces):
    from zoo.errors import DataError

    with pytest.raises(DataError) as caught:
        zoo.finetune("lstm-text", faces, output=str(faces.parent / "out"), epochs=1)
    message = str(caught.value)
    assert "reads text, but" in message and "holds images" in message
    assert "a text folder" in message and "CSV" in message and "zoo list --task image-classification" in message
    assert "--image-size" not in message


def zoo_cli(*args: str):
    from click.testing import CliRunner

    from zoo.cli import cli

    return CliRunner().invoke(cli, list(args))


def test_export_of_a_missing_folder_says_it_does_not_exist(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = zoo_cli("export", "./missing-dir")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ./missing-dir does not exist: there is no such folder, and no model of that name")
    assert "unknown model" not in result.stderr


def test_predict_of_an_onnx_file_without_the_onnx_runtime_says_to_pass_it(tmp_path, faces):
    exported = zoo.export("mlp", tmp_path / "faces.onnx", check=False).path
    result = zoo_cli("predict", str(exported), str(faces / "face" / "000.png"))
    assert result.exit_code == 1
    assert result.stderr == f"Error: {exported} is an ONNX export (pass --runtime onnx to run it in onnxruntime)\n"


def test_skipped_files_are_named_the_first_few_of_each_reason(tmp_path):
    from finetune_data import write_folder
    from zoo.data.formats import read_data

    data = write_folder(tmp_path / "data", {"a": 4, "b": 4})
    bad = [data / "a" / f"bad{i}.png" for i in range(5)]
    for path in bad:
        path.write_bytes(b"not a png")
    read = read_data(data)
    assert read.skipped_counts() == {"corrupt or truncated image": 5}
    named = ", ".join(map(str, bad[:3]))
    assert read.skip_report() == [f"skipped 5 file(s): corrupt or truncated image: {named} and 2 more"]
    assert read.summary()["skip_report"] == read.skip_report()


@pytest.mark.parametrize("name", ["perceptron", "perceptron-logistic"])
def test_perceptron_fit_checks_the_feature_count_and_says_how_to_build_it(name):
    import torch

    from zoo.errors import DataError

    model = zoo.load(name)  # built for the default 2 features
    x, y = torch.randn(8, 4), torch.tensor([0, 1] * 4)
    with pytest.raises(DataError) as caught:
        model.fit(x, y)
    assert caught.value.message == "x has 4 features per row, but this perceptron was built for 2"
    assert caught.value.remedy == f"build it for your data: zoo.load({name!r}, in_features=4)"
    assert zoo.load(name, in_features=4).fit(x, y, max_epochs=2).epochs >= 1


def test_check_only_against_a_name_without_weights_says_each_load_is_a_new_random_model(tmp_path):
    target = tmp_path / "m.onnx"
    assert zoo_cli("export", "mlp", "-o", str(target)).exit_code == 0
    result = zoo_cli("export", "mlp", "-o", str(target), "--check-only")
    assert result.exit_code == 1 and "parity FAILED" not in result.output
    assert result.stderr == (
        "Error: mlp has no pretrained weights: each load of it is a new random model, so no file can match it "
        "(check the export against a model directory (`zoo export ./out -o FILE --check-only`) or a name with "
        "weights (`zoo list --pretrained`))\n"
    )
    weighted = tmp_path / "digits.onnx"
    assert zoo_cli("export", "mlp.digits", "-o", str(weighted)).exit_code == 0
    assert zoo_cli("export", "mlp.digits", "-o", str(weighted), "--check-only").exit_code == 0


def test_verify_raises_a_parity_error_with_the_report_as_export_does(tmp_path):
    from zoo.errors import ParityError
    from zoo.exporting import verify

    target = zoo.export("mlp.digits", tmp_path / "m.onnx").path
    assert verify("mlp.digits", target).passed
    with pytest.raises(ParityError) as caught:
        verify(zoo.load("mlp", in_features=64, num_classes=10), target)
    assert not caught.value.report.passed
    assert str(caught.value).startswith(f"{target} does not match mlp: parity FAILED: worst |Δ| ")
    assert str(caught.value).endswith("(export it again from this model)")


def test_readme_says_how_to_reach_the_zoo_command_after_make_run():
    from helpers import ROOT

    readme = (ROOT / "README.md").read_text()
    assert "`.venv/bin/zoo`" in readme and "`. .venv/bin/activate`" in readme


@pytest.mark.slow
def test_the_main_job_ends_with_a_command_that_works_as_printed(tmp_path):
    import shlex
    import subprocess

    from helpers import ROOT

    job = subprocess.run(["sh", str(ROOT / "scripts" / "main_job.sh"), str(tmp_path)], capture_output=True, text=True)
    assert job.returncode == 0, job.stderr
    last = job.stderr.strip().splitlines()[-1]
    command = last.split("(try: ", 1)[1].rstrip(")")
    assert shlex.split(command)[0] == str(ROOT / ".venv" / "bin" / "zoo")
    tried = subprocess.run(shlex.split(command), capture_output=True, text=True, cwd="/")
    assert tried.returncode == 0, tried.stderr
    assert tried.stdout.splitlines()[1].split()[2] == "face"
