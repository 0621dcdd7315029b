"""A fine-tuned model exported to ONNX predicts what eager PyTorch predicts, on real photos, through
`zoo predict --runtime onnx` with the model directory's preprocessing and labels."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import zoo
from zoo.cli import cli
from zoo.data.packaged import write_dataset

VOCAB = "lstm-text"  # the bundled character vocabulary, registered by zoo_rnn
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


def test_a_text_classifier_runs_in_onnxruntime_with_its_vocabulary_one_unpadded_text_at_a_time(tmp_path):
    from zoo.modeldir import save_model_dir

    import torch

    torch.manual_seed(0)
    model = zoo.load("gru", vocab=VOCAB, task="sequence-classification", num_classes=3, embed_dim=16, hidden_size=32)
    model.zoo.labels = ["comedy", "history", "tragedy"]
    save_model_dir(model, tmp_path / "plays")
    assert zoo.export(str(tmp_path / "plays")).parity.passed
    texts = ["To be, or not to be", "Now is the winter of our discontent made glorious summer", "All the world's a stage"]
    eager = predictions(str(tmp_path / "plays"), *texts, "-k", "3")
    onnx = predictions(str(tmp_path / "plays"), *texts, "-k", "3", "--runtime", "onnx")
    assert [p["label"] for r in onnx for p in r["predictions"]] == [p["label"] for r in eager for p in r["predictions"]]
    for got, want in zip(onnx, eager):
        for a, b in zip(got["predictions"], want["predictions"]):
            assert a["probability"] == pytest.approx(b["probability"], abs=1e-5)


def test_a_language_model_directory_is_refused_by_the_onnx_runtime(tmp_path):
    from zoo.modeldir import save_model_dir

    save_model_dir(zoo.load("lstm", vocab=VOCAB, embed_dim=8, hidden_size=8), tmp_path / "lm")
    zoo.export(str(tmp_path / "lm"))
    result = CliRunner().invoke(cli, ["predict", str(tmp_path / "lm"), "To be", "--runtime", "onnx"])
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"Error: {tmp_path / 'lm'} is a language model: --runtime onnx runs classifiers "
        "(continue texts with the eager model: drop --runtime onnx)"
    )


def test_predict_runtime_onnx_on_a_damaged_file_or_sidecar_names_it(tmp_path):
    from PIL import Image

    image = tmp_path / "digit.png"
    Image.new("L", (8, 8), 255).save(image)
    exported = tmp_path / "m.onnx"
    zoo.export("mlp-digits", exported)
    sidecar = tmp_path / "m.onnx.json"
    damaged = tmp_path / "damaged.onnx"
    damaged.write_bytes(b"not onnx")
    (tmp_path / "damaged.onnx.json").write_text(sidecar.read_text())
    runner = CliRunner()
    bad_file = runner.invoke(cli, ["predict", str(damaged), str(image), "--runtime", "onnx"])
    assert bad_file.exit_code == 1
    assert bad_file.stderr.startswith(f"Error: {damaged} cannot be read as onnx: InvalidProtobuf: ")
    sidecar.write_text("[]")
    bad_sidecar = runner.invoke(cli, ["predict", str(exported), str(image), "--runtime", "onnx"])
    assert bad_sidecar.exit_code == 1
    assert bad_sidecar.stderr == f"Error: the sidecar {sidecar} is not a JSON object (export the model again to rewrite it)\n"


def test_an_mlp_on_images_runs_in_onnxruntime_on_the_flattened_picture(tmp_path):
    # mlp-digits reads 1×8×8 pictures and flattens them itself; its ONNX graph takes the 64 features.
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = []
    for index in (0, 1, 2, 3, 7):
        path = tmp_path / f"digit-{index}.png"
        Image.fromarray((255 - digits.images[index] * 16).clip(0, 255).astype(np.uint8)).resize((32, 32)).save(path)
        images.append(str(path))
    zoo.export("mlp-digits", tmp_path / "m.onnx")
    eager = predictions("mlp-digits", *images)
    onnx = predictions(str(tmp_path / "m.onnx"), *images, "--runtime", "onnx")
    assert [r["predictions"][0]["label"] for r in onnx] == [r["predictions"][0]["label"] for r in eager]
    for ours, theirs in zip(onnx, eager):
        assert ours["predictions"][0]["probability"] == pytest.approx(theirs["predictions"][0]["probability"], abs=1e-4)
