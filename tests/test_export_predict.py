"""A fine-tuned model exported to ONNX predicts what eager PyTorch predicts, on real photos, through
`zoo predict --runtime onnx` with the model directory's preprocessing and labels."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import zoo
from zoo.cli import cli
from zoo.data.packaged import write_dataset

PHOTOS = ("astronaut", "chelsea", "coffee", "camera", "rocket", "immunohistochemistry", "coins", "logo")


@pytest.fixture
def photos(tmp_path):
    """scikit-image's photos (CC0 / public domain), as PNG files: RGB, greyscale and RGBA among them."""
    import skimage.data
    from PIL import Image

    paths = []
    for name in PHOTOS:
        path = tmp_path / f"{name}.png"
        Image.fromarray(getattr(skimage.data, name)()).save(path)
        paths.append(str(path))
    return paths


def predictions(*args: str) -> list[dict]:
    result = CliRunner().invoke(cli, ["predict", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.slow
def test_a_finetuned_model_exported_to_onnx_predicts_the_labels_eager_predicts(tmp_path, photos):
    write_dataset("lfw-faces", tmp_path / "faces")
    out = tmp_path / "faces-model"
    zoo.finetune("tf_efficientnet_lite0.in1k", tmp_path / "faces", epochs=1, image_size=64, output=str(out))
    exported = zoo.export(str(out))  # the model directory's default: out/model.onnx
    assert exported.path == out / "model.onnx" and exported.parity.passed
    assert exported.record["labels"] == ["face", "non-face"]
    assert exported.record["input"]["dims"] == ["batch", 3, 64, 64]

    eager = predictions(str(out), *photos, "-k", "2")
    onnx = predictions(str(out), *photos, "-k", "2", "--runtime", "onnx")
    assert [r["input"] for r in onnx] == photos
    assert [p["label"] for r in onnx for p in r["predictions"]] == [p["label"] for r in eager for p in r["predictions"]]
    for got, want in zip(onnx, eager):
        for a, b in zip(got["predictions"], want["predictions"]):
            assert a["probability"] == pytest.approx(b["probability"], abs=1e-4)
    # the file alone carries what it needs: labels and preprocessing from its sidecar
    assert predictions(str(out / "model.onnx"), *photos, "-k", "2", "--runtime", "onnx") == onnx


def test_predict_runtime_onnx_needs_an_exported_file(tmp_path, photos):
    from zoo.modeldir import save_model_dir

    save_model_dir(zoo.load("lenet5"), tmp_path / "lenet")
    runner = CliRunner()
    missing = runner.invoke(cli, ["predict", str(tmp_path / "lenet"), photos[0], "--runtime", "onnx"])
    assert missing.exit_code == 1
    assert missing.stderr.strip() == f"Error: {tmp_path / 'lenet'} holds no model.onnx (run `zoo export {tmp_path / 'lenet'}` first)"
    name = runner.invoke(cli, ["predict", "lenet5", photos[0], "--runtime", "onnx"])
    assert name.exit_code == 1 and "--runtime onnx runs an exported file, and lenet5 is neither" in name.stderr
    (tmp_path / "bare.onnx").write_bytes(b"")
    bare = runner.invoke(cli, ["predict", str(tmp_path / "bare.onnx"), photos[0], "--runtime", "onnx"])
    assert bare.exit_code == 1 and "has no sidecar bare.onnx.json" in bare.stderr
