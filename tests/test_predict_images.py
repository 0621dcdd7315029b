"""`zoo predict` on real photos in every PIL mode, and `zoo info DIR`."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from PIL import Image
from skimage import data

from zoo.cli import cli

LITE0 = "tf_efficientnet_lite0.in1k"
CATS = {"tabby, tabby cat", "tiger cat", "Egyptian cat"}


def invoke(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """chelsea in RGB, L, RGBA, CMYK (JPEG) and P, and coffee as RGBA."""
    folder = tmp_path_factory.mktemp("photos")
    cat = Image.fromarray(data.chelsea())
    paths = {}
    for mode, suffix in (("RGB", "png"), ("L", "png"), ("RGBA", "png"), ("CMYK", "jpg"), ("P", "png")):
        paths[mode] = folder / f"chelsea-{mode}.{suffix}"
        cat.convert(mode).save(paths[mode])
    paths["coffee"] = folder / "coffee.png"
    Image.fromarray(data.coffee()).convert("RGBA").save(paths["coffee"])
    return paths


def test_predict_json_names_the_classes_of_real_photos_in_any_mode(photos):
    result = invoke("predict", LITE0, *map(str, photos.values()), "--top-k", "3", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["input"] for r in rows] == [str(p) for p in photos.values()]
    for row in rows:
        assert [p["rank"] for p in row["predictions"]] == [1, 2, 3]
        probabilities = [p["probability"] for p in row["predictions"]]
        assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1.0001
    for row in rows[:-1]:
        assert CATS & {p["label"] for p in row["predictions"]}, row
    coffee = rows[-1]["predictions"][0]
    assert coffee["label"] == "espresso" and coffee["index"] == 967 and coffee["probability"] > 0.9


def test_predict_prints_a_table_with_top_k_rows(photos):
    result = invoke("predict", LITE0, str(photos["coffee"]), "-k", "2")
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["INPUT", "RANK", "LABEL", "PROBABILITY"] and len(lines) == 3
    assert "espresso" in lines[1]


def test_predict_on_a_file_that_is_not_an_image_says_so(tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    result = invoke("predict", LITE0, str(bad))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {bad} cannot be read as an image")


def test_predict_on_an_image_too_large_to_decode_safely_says_so(tmp_path):
    # PIL refuses images over twice its pixel limit with an error that is not an OSError.
    huge = tmp_path / "huge.png"
    Image.new("1", (20000, 20000)).save(huge)  # 400 megapixels in a few kilobytes
    result = invoke("predict", "mlp-digits", str(huge))
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {huge} is too large to read safely: Image size (400000000 pixels) exceeds limit of "
        f"{2 * Image.MAX_IMAGE_PIXELS} pixels (resize it first; the model sees a small crop of it anyway)\n"
    )


def test_info_describes_a_model_directory(tmp_path):
    import zoo
    from zoo.modeldir import save_model_dir

    model = zoo.load(LITE0, num_classes=2)
    model.zoo.labels = ["face", "other"]
    folder = save_model_dir(model, tmp_path / "faces", training={"epochs": 5})
    record = json.loads(invoke("info", str(folder), "--json").stdout)
    assert record["kind"] == "model directory" and record["architecture"] == "tf_efficientnet_lite0"
    assert record["labels"] == ["face", "other"] and record["base_weights"]["id"] == LITE0
    assert record["card"]["base_model"] == "timm/tf_efficientnet_lite0.in1k"
    text = invoke("info", str(folder)).stdout
    assert "base weights  tf_efficientnet_lite0.in1k" in text and "labels        face, other" in text


def test_info_on_a_model_directory_imports_neither_torch_nor_timm(tmp_path):
    import subprocess
    import sys

    import zoo
    from zoo.modeldir import save_model_dir

    folder = save_model_dir(zoo.load("mlp", pretrained=False), tmp_path / "m")
    code = (
        "import sys; from zoo.cli import main\n"
        f"try: main(['info', {str(folder)!r}, '--json'])\n"
        "except SystemExit: pass\n"
        "assert 'torch' not in sys.modules and 'timm' not in sys.modules, 'heavy import'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["architecture"] == "mlp"


def test_the_table_is_sized_once_for_every_batch_a_column_of_labels_for_the_longest_label(photos):
    result = invoke("predict", LITE0, str(photos["coffee"]), str(photos["RGB"]), "-k", "2", "--batch-size", "1")
    header, *rows = result.stdout.splitlines()
    width = max(len(str(photos["coffee"])), len(str(photos["RGB"])))
    # INPUT to the longest input, RANK to its header, LABEL to ImageNet's longest label (at most 40).
    assert header == "INPUT".ljust(width) + "  RANK  " + "LABEL".ljust(40) + "  PROBABILITY"
    assert len(rows) == 4 and {row.index(" 0.") for row in rows} == {header.index("PROBABILITY") - 1}
    assert rows[0].startswith(str(photos["coffee"]).ljust(width) + "  1     espresso ")
