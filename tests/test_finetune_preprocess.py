"""A fine-tuned model predicts with what it was trained with: the output directory records the exact
preprocessing of the run, so `zoo predict` on the run's own images agrees with what the run reported.

Before, fine-tuning mlp-digits trained on timm's transform but kept the base model's digits transform
in the output; `zoo predict` then got 108/200 of its own training images right after a 0.94 run."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import zoo
from zoo.cli import cli
from zoo.modeldir import read_config


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """scikit-learn's digits (`zoo data digits`), 30 per class in train/ and the next 15 in val/."""
    from zoo.data.packaged import write_dataset

    root = tmp_path_factory.mktemp("digits")
    write_dataset("digits", root / "all")
    for folder in sorted((root / "all").iterdir()):
        files = sorted(folder.iterdir())
        for split, chosen in (("train", files[:30]), ("val", files[30:45])):
            (root / "data" / split / folder.name).mkdir(parents=True)
            for file in chosen:
                (root / "data" / split / folder.name / file.name).write_bytes(file.read_bytes())
    return root / "data"


def predict_accuracy(model: Path, images: list[Path]) -> float:
    """The share of `images` (in folders named by their class) that `zoo predict` gets right."""
    result = CliRunner().invoke(cli, ["predict", str(model), *map(str, images), "--json", "-k", "1"])
    assert result.exit_code == 0, result.output
    answers = json.loads(result.stdout)
    return sum(a["predictions"][0]["label"] == Path(a["input"]).parent.name for a in answers) / len(answers)


@pytest.mark.parametrize("base", ["mlp-digits", "lenet5-digits"])
def test_predict_on_the_runs_own_images_agrees_with_the_accuracy_it_reported(base, digits, tmp_path):
    result = zoo.finetune(base, digits, output=str(tmp_path / "out"), epochs=10, lr=0.01, seed=0)
    assert result.val_accuracy > 0.8
    val = sorted((digits / "val").rglob("*.png"))
    assert predict_accuracy(tmp_path / "out", val) == pytest.approx(result.val_accuracy, abs=0.02)
    recorded = read_config(tmp_path / "out")["preprocess"]
    assert "transform" not in recorded  # the run read the images with timm's transform, not the base's own

    # On the training images, prediction sees exactly what training saw.
    import torch

    from zoo.data.images import ImageTransform
    from zoo.data.image_files import open_image

    train = sorted((digits / "train").rglob("*.png"))
    model = zoo.load(str(tmp_path / "out")).eval()
    transform = ImageTransform(recorded)
    with torch.no_grad():
        logits = model(torch.stack([transform(open_image(p, transform.channels)) for p in train]))
    trained = sum(model.zoo.labels[int(i)] == p.parent.name for i, p in zip(logits.argmax(-1), train)) / len(train)
    assert predict_accuracy(tmp_path / "out", train) == pytest.approx(trained, abs=0.02)
