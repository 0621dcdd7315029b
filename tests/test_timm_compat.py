"""A model directory is also a timm and Hub repo: timm loads zoo's fine-tuned lite0 with identical
outputs and preprocessing, the card parses as a Hub model card, version-1 directories still load,
and a config.json whose two readers' keys contradict each other is refused."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import zoo
from finetune_data import real_digits
from zoo.cli import cli
from zoo.errors import ModelDirError
from zoo.modeldir import read_config, save_model_dir

LITE0 = "tf_efficientnet_lite0.in1k"


@pytest.fixture(scope="module")
def lite0_faces(tmp_path_factory):
    """`make run`'s job, one epoch: lite0 (weights from the pip package) fine-tuned on the LFW faces."""
    from zoo.data.packaged import write_dataset

    root = tmp_path_factory.mktemp("lite0")
    with pytest.MonkeyPatch.context() as patch:  # a module fixture's own cache (`isolated_env` comes later)
        patch.setenv("ZOO_HOME", str(root / "zoo"))
        patch.setenv("HF_HOME", str(root / "hf"))
        patch.setenv("HF_HUB_OFFLINE", "1")
        write_dataset("lfw-faces", root / "faces")
        result = zoo.finetune(LITE0, str(root / "faces"), output=str(root / "out"), epochs=1)
    return root / "out", result, root / "faces"


def faces_sample(faces: Path, per_class: int = 4) -> list[Path]:
    return [*sorted((faces / "face").iterdir())[:per_class], *sorted((faces / "non-face").iterdir())[:per_class]]


def as_version_1(folder: Path) -> None:
    """Rewrite a directory's config.json in the format-1 layout: zoo's fields at the top level, nothing else."""
    fields = json.loads((folder / "config.json").read_text())["zoo"]
    (folder / "config.json").write_text(json.dumps({**fields, "format_version": 1}, indent=2))


@pytest.mark.slow
def test_timm_loads_the_fine_tuned_directory_with_zoo_s_exact_outputs(lite0_faces):
    import timm
    from timm.data import create_transform, resolve_data_config

    from zoo.data.image_files import image_transform, open_image

    folder, result, faces = lite0_faces
    ours = zoo.load(str(folder))
    theirs = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
    assert type(theirs) is type(ours) and theirs.num_classes == 2
    assert theirs.pretrained_cfg["label_names"] == ours.zoo.labels == ["face", "non-face"]

    data_config = resolve_data_config({}, model=theirs)
    preprocess = ours.zoo.preprocess
    assert data_config == {
        "input_size": tuple(preprocess["input_size"]),
        "interpolation": preprocess["interpolation"],
        "mean": preprocess["mean"],
        "std": preprocess["std"],
        "crop_pct": preprocess["crop_pct"],
        "crop_mode": "center",  # zoo's transform crops at the centre too (timm's default)
    }
    paths = faces_sample(faces, 20)  # 20 faces, 20 non-faces
    images = [open_image(path) for path in paths]
    x_zoo = torch.stack([image_transform(preprocess)(image) for image in images])
    x_timm = torch.stack([create_transform(**data_config)(image) for image in images])
    assert len(paths) == 40 and torch.equal(x_zoo, x_timm)
    with torch.no_grad():
        logits = ours(x_zoo)
        assert torch.equal(theirs(x_timm), logits)
    truth = torch.tensor([path.parent.name == "non-face" for path in paths]).long()
    assert (logits.argmax(1) == truth).float().mean() >= 0.75  # it learned faces


@pytest.mark.slow
def test_the_card_is_a_hub_model_card_whose_results_are_config_s_metrics(lite0_faces):
    from huggingface_hub import ModelCard

    folder, result, _ = lite0_faces
    card = ModelCard.load(folder / "README.md")
    metrics = read_config(folder)["metrics"]
    assert card.data.library_name == "timm" and card.data.pipeline_tag == "image-classification"
    assert card.data.base_model == "timm/tf_efficientnet_lite0.in1k" and card.data.license == "apache-2.0"
    assert {"timm", "zoo", "image-classification"} <= set(card.data.tags)
    found = {r.metric_name: (r.metric_type, r.metric_value, r.dataset_name, r.dataset_split) for r in card.data.eval_results}
    assert found == {
        "val_accuracy": ("accuracy", metrics["val_accuracy"], "faces", "validation"),
        "val_loss": ("loss", metrics["val_loss"], "faces", "validation"),
    }
    assert metrics["val_accuracy"] == result.val_accuracy
    assert {r.task_type for r in card.data.eval_results} == {"image-classification"}
    assert 'zoo.load("hf://org/repo")' in card.text and 'timm.create_model("hf-hub:org/repo", pretrained=True)' in card.text


@pytest.mark.slow
def test_a_version_1_directory_of_lite0_still_loads_and_predicts(lite0_faces, tmp_path):
    folder, _, faces = lite0_faces
    old = shutil.copytree(folder, tmp_path / "v1")
    as_version_1(old)
    assert read_config(old) == {**read_config(folder), "format_version": 1}
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(zoo.load(str(old))(x), zoo.load(str(folder))(x))
    image = faces_sample(faces)[0]
    answers = [json.loads(CliRunner().invoke(cli, ["predict", str(d), str(image), "--json"]).stdout) for d in (old, folder)]
    assert answers[0] == answers[1] and answers[0][0]["predictions"][0]["label"] in ("face", "non-face")


@pytest.fixture
def mlp_digits(tmp_path_factory):
    """mlp-digits fine-tuned on 20 real digits of each class: a family no other library loads."""
    digits = real_digits(tmp_path_factory, per_class=20)
    out = tmp_path_factory.mktemp("mlp") / "out"
    return out, zoo.finetune("mlp-digits", digits, output=str(out), epochs=2, batch_size=32)


def test_a_non_timm_model_keeps_zoo_s_format_with_an_honest_card(mlp_digits, tmp_path):
    from huggingface_hub import ModelCard

    folder, result = mlp_digits
    assert list(json.loads((folder / "config.json").read_text())) == ["zoo"]
    card = ModelCard.load(folder / "README.md")
    assert card.data.library_name == "zoo" and card.data.pipeline_tag == "image-classification"
    assert "timm" not in card.data.tags and "timm.create_model" not in card.text
    assert {r.metric_name: r.metric_value for r in card.data.eval_results} == {
        "val_accuracy": result.metrics["val_accuracy"],
        "val_loss": result.metrics["val_loss"],
    }
    loaded = zoo.load(str(folder))
    assert loaded.zoo.labels == [str(d) for d in range(10)]


def test_a_version_1_directory_loads_and_may_be_overwritten(mlp_digits, tmp_path):
    folder, _ = mlp_digits
    old = shutil.copytree(folder, tmp_path / "v1")
    as_version_1(old)
    x = torch.rand(3, 1, 8, 8)
    model = zoo.load(str(folder))
    with torch.no_grad():
        assert torch.equal(zoo.load(str(old))(x), model(x))
    assert zoo.load(str(old)).zoo.preprocess == model.zoo.preprocess
    save_model_dir(model, old, overwrite=True)  # --overwrite knows a version-1 directory as zoo's
    assert read_config(old)["format_version"] == 2


@pytest.fixture
def resnet_dir(tmp_path):
    """A resnet18 (random weights) with two labels, saved: timm's keys at the top, zoo's under "zoo"."""
    torch.manual_seed(0)
    model = zoo.load("resnet18", pretrained=False, num_classes=2)
    model.zoo.labels = ["cat", "dog"]
    model.zoo.preprocess = {"input_size": [3, 64, 64], "mean": [0.5] * 3, "std": [0.25] * 3, "interpolation": "bilinear", "crop_pct": 1.0}
    folder = save_model_dir(model, tmp_path / "resnet")
    return folder, json.loads((folder / "config.json").read_text())


def rewrite(folder: Path, document) -> None:
    (folder / "config.json").write_text(json.dumps(document))


def test_timm_and_zoo_read_the_same_facts_from_a_small_resnet(resnet_dir):
    import timm
    from timm.data import resolve_data_config

    folder, document = resnet_dir
    assert document["architecture"] == "resnet18" and document["zoo"]["architecture"] == "resnet18"
    theirs = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(theirs(x), zoo.load(str(folder))(x))
    config = resolve_data_config({}, model=theirs)
    assert config["input_size"] == (3, 64, 64) and config["std"] == [0.25] * 3 and config["interpolation"] == "bilinear"


def test_a_model_built_through_the_timm_prefix_is_saved_for_timm_too(tmp_path):
    """`timm/<name>` (an architecture no catalogue lists, resolved on demand) gets timm's keys as well."""
    import timm

    torch.manual_seed(0)
    folder = save_model_dir(zoo.load("timm/resnet10t", pretrained=False, num_classes=3), tmp_path / "r10t")
    document = json.loads((folder / "config.json").read_text())
    assert document["architecture"] == "resnet10t" and document["zoo"]["architecture"] == "timm/resnet10t"
    assert "library_name: timm" in (folder / "README.md").read_text()
    theirs = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(theirs(x), zoo.load(str(folder))(x))


def test_timm_crops_as_zoo_does_whatever_the_base_tag_says(tmp_path):
    """zoo's preprocessing without a crop_mode crops at the centre; the base weights' tag may squash."""
    import timm
    from timm.data import resolve_data_config

    model = zoo.load("resnet18", pretrained=False, num_classes=2)
    model.pretrained_cfg = {**model.pretrained_cfg, "crop_mode": "squash"}
    model.zoo.preprocess = {"input_size": [3, 64, 64], "mean": [0.5] * 3, "std": [0.5] * 3, "interpolation": "bicubic", "crop_pct": 1.0}
    folder = save_model_dir(model, tmp_path / "centre")
    assert resolve_data_config({}, model=timm.create_model(f"local-dir:{folder}", pretrained=True))["crop_mode"] == "center"
    model.zoo.preprocess["crop_mode"] = "squash"
    folder = save_model_dir(model, tmp_path / "squash")
    assert resolve_data_config({}, model=timm.create_model(f"local-dir:{folder}", pretrained=True))["crop_mode"] == "squash"
    assert zoo.load(str(folder)).zoo.preprocess["crop_mode"] == "squash"


def test_a_timm_model_with_a_zoo_transform_is_not_offered_to_timm(tmp_path):
    """timm cannot run a transform a zoo plugin registered: such a directory is zoo's alone."""
    model = zoo.load("resnet18", pretrained=False, num_classes=10, in_chans=1)
    model.zoo.preprocess = {"input_size": [1, 8, 8], "transform": "digits"}
    folder = save_model_dir(model, tmp_path / "digits")
    assert list(json.loads((folder / "config.json").read_text())) == ["zoo"]
    from zoo.modeldir import read_front_matter

    assert read_front_matter(folder / "README.md")["library_name"] == "zoo"
    x = torch.rand(2, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(zoo.load(str(folder))(x), model.eval()(x))


# Run in a new process: huggingface_hub reads HF_ENDPOINT (the olah test hub) when it is imported.
TIMM_FROM_HUB = """
import sys, numpy, timm, torch
model = timm.create_model(sys.argv[1], pretrained=True).eval()
with torch.no_grad():
    numpy.save(sys.argv[3], model(torch.from_numpy(numpy.load(sys.argv[2]))).numpy())
print(model.pretrained_cfg["label_names"], timm.data.resolve_data_config({}, model=model)["input_size"])
"""


@pytest.mark.slow
def test_timm_loads_the_directory_from_the_hub_as_zoo_does(resnet_dir, hub, tmp_path):
    import os
    import subprocess
    import sys

    import numpy as np

    folder, _ = resnet_dir
    repo = f"zoo-tests/timm-compat-{tmp_path.name}"
    hub.commit(repo, {p.name: p for p in folder.iterdir()}, lfs=("model.safetensors",))
    x = torch.randn(2, 3, 64, 64)
    np.save(tmp_path / "x.npy", x.numpy())
    env = {**os.environ, "HF_ENDPOINT": hub.endpoint, "HF_HOME": str(tmp_path / "timm-hf")}
    done = subprocess.run(
        [sys.executable, "-c", TIMM_FROM_HUB, f"hf-hub:{repo}", str(tmp_path / "x.npy"), str(tmp_path / "y.npy")],
        capture_output=True, text=True, env=env,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "['cat', 'dog'] (3, 64, 64)\n"
    with torch.no_grad():
        ours = zoo.load(f"hf://{repo}")(x)
    assert torch.equal(torch.from_numpy(np.load(tmp_path / "y.npy")), ours)


REWRITE = "(the directory is damaged or was not written by zoo: save or download it again)"
DISAGREE = "(timm and zoo would build different models from it: the file was edited or damaged; save or download the directory again)"


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.pop("zoo"), 'has no "zoo" object: it is not a zoo model directory (a timm repo, perhaps) '
         '(load a timm repo with timm.create_model("local-dir:DIR", pretrained=True)'),
        (lambda d: d.update(zoo=["resnet18"]), f"field 'zoo' must be a JSON object {REWRITE}"),
        (lambda d: d["zoo"].update(format_version=3), "format_version 3 is not one this zoo reads (it reads 1 at the top level, 2 under \"zoo\")"),
        (lambda d: d.update(num_classes=3), f"the top-level num_classes 3 disagrees with zoo's 2 (under \"zoo\") {DISAGREE}"),
        (lambda d: d.update(architecture="resnet50"), "the top-level architecture 'resnet50' disagrees with zoo's 'resnet18'"),
        (lambda d: d["zoo"].pop("architecture"), f"field 'architecture' is missing {REWRITE}"),
        (lambda d: d.update(label_names=["dog", "cat"]), "the top-level label_names ['dog', 'cat'] disagrees with zoo's ['cat', 'dog']"),
        (lambda d: d["pretrained_cfg"].update(mean=[0.4] * 3), "the top-level pretrained_cfg.mean [0.4, 0.4, 0.4] disagrees with zoo's [0.5, 0.5, 0.5]"),
        (lambda d: d["pretrained_cfg"].update(crop_mode="squash"), "the top-level pretrained_cfg.crop_mode 'squash' disagrees with zoo's 'center'"),
        (lambda d: d.update(pretrained_cfg="imagenet"), f"field 'pretrained_cfg' must be a JSON object {REWRITE}"),
        (lambda d: d.update(format_version=2), "format_version 2 is not one this zoo reads"),
    ],
    ids=["no-zoo", "zoo-not-object", "zoo-version", "num_classes", "architecture", "no-zoo-architecture", "labels", "mean", "crop_mode", "pretrained_cfg", "v2-at-top"],
)
def test_a_config_whose_readers_disagree_is_refused_with_the_remedy(resnet_dir, change, message):
    folder, document = resnet_dir
    change(document)
    rewrite(folder, document)
    with pytest.raises(ModelDirError) as caught:
        zoo.load(str(folder))
    assert message in str(caught.value)
    done = CliRunner().invoke(cli, ["info", str(folder)])
    errors = [line for line in done.output.splitlines() if line.startswith("Error:")]
    assert done.exit_code == 1 and errors == [f"Error: {caught.value}"]


def test_overwrite_refuses_a_timm_repo_that_is_not_zoo_s(resnet_dir, tmp_path):
    folder, document = resnet_dir
    timm_only = tmp_path / "timm-only"
    timm_only.mkdir()
    rewrite(timm_only, {k: v for k, v in document.items() if k != "zoo"})
    with pytest.raises(ModelDirError, match="is not a zoo model directory"):
        save_model_dir(zoo.load(str(folder)), timm_only, overwrite=True)
    assert [p.name for p in timm_only.iterdir()] == ["config.json"]


def plain_config(model):
    """A library's keys as a plugin's `library_config` gives them."""
    return {"architecture": "mlp-lib", "num_classes": model.num_classes, "label_names": model.zoo.labels}


def failing_config(model):
    raise RuntimeError("the library cannot describe this model")


def not_an_object(model):
    return ["mlp-lib"]


def config_with_zoo_key(model):
    return {"architecture": "mlp-lib", "zoo": {}}


class LibraryPlugin:
    """Registers `mlp-lib`, zoo's MLP declared as also loaded by the library `otherlib`."""

    def __init__(self, library_config: str):
        self.library_config = library_config

    @zoo.hookimpl
    def register_architectures(self, register):
        from dataclasses import replace

        from zoo.plugins import get_plugin_manager
        from zoo.registry import Registry

        mlp = Registry.from_plugin_manager(get_plugin_manager(entry_points=False)).archs["mlp"]
        register(replace(mlp, name="mlp-lib", library="otherlib", library_config=self.library_config))


@pytest.fixture
def library_plugin():
    from zoo.plugins import default_plugin_manager
    from zoo.registry import default_registry

    def install(function: str):
        plugin = LibraryPlugin(f"test_timm_compat:{function}")
        default_plugin_manager().add(plugin, "library-plugin")
        default_registry.cache_clear()

    yield install
    default_plugin_manager().unregister(name="library-plugin")
    default_registry.cache_clear()


def test_a_plugin_s_library_config_goes_to_the_top_level_and_its_name_to_the_card(library_plugin, tmp_path):
    library_plugin("plain_config")
    model = zoo.load("mlp-lib", pretrained=False, num_classes=3)
    model.zoo.labels = ["a", "b", "c"]
    folder = save_model_dir(model, tmp_path / "lib")
    document = json.loads((folder / "config.json").read_text())
    assert {k: v for k, v in document.items() if k != "zoo"} == {"architecture": "mlp-lib", "num_classes": 3, "label_names": ["a", "b", "c"]}
    assert read_config(folder)["architecture"] == "mlp-lib"
    from zoo.modeldir import read_front_matter

    assert read_front_matter(folder / "README.md")["library_name"] == "otherlib"
    x = torch.randn(2, 64)
    with torch.no_grad():
        assert torch.equal(zoo.load(str(folder))(x), model.eval()(x))


@pytest.mark.parametrize(
    "function, message",
    [
        ("not_an_object", "the otherlib config of mlp-lib (library-plugin) gave a list, not a JSON object"),
        ("failing_config", "the otherlib config of mlp-lib (library-plugin) failed: the library cannot describe this model"),
        ("config_with_zoo_key", "the otherlib config of mlp-lib (library-plugin) gave a 'zoo' key, which holds zoo's own fields"),
    ],
)
def test_a_failing_library_config_is_the_plugin_s_error_and_writes_nothing(library_plugin, tmp_path, function, message):
    from zoo.errors import PluginError

    library_plugin(function)
    model = zoo.load("mlp-lib", pretrained=False)
    with pytest.raises(PluginError, match=message.replace("(", r"\(").replace(")", r"\)")):
        save_model_dir(model, tmp_path / "lib")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "reference, options, tag",
    [
        ("lstm-text", {}, "text-generation"),
        ("lstm-text", {"num_classes": 2}, "text-classification"),
        ("perceptron", {"pretrained": False}, "tabular-classification"),
        ("lenet5-digits", {}, "image-classification"),
        ("lenet5", {"pretrained": False}, "image-classification"),  # no preprocessing recorded: the architecture says images
    ],
)
def test_each_family_s_card_names_its_pipeline_and_zoo_as_its_library(tmp_path, reference, options, tag):
    from huggingface_hub import ModelCard

    folder = save_model_dir(zoo.load(reference, **options), tmp_path / "model")
    card = ModelCard.load(folder / "README.md")
    assert card.data.pipeline_tag == tag and card.data.library_name == "zoo" and tag in card.data.tags
    assert card.data.model_name is None and card.data.eval_results is None  # no results: no model-index
    assert list(json.loads((folder / "config.json").read_text())) == ["zoo"]
    assert zoo.load(str(folder)).zoo.arch == read_config(folder)["architecture"]


@pytest.mark.parametrize("data_path, name", [("/data/reviews", "reviews"), ("reviews/", "reviews"), (".", "data"), ("/", "data")])
def test_the_model_index_names_the_data_set_after_the_training_folder(tmp_path, data_path, name):
    from huggingface_hub import ModelCard

    from zoo.card import card_text

    config = {
        "name": "m", "architecture": "lstm", "labels": ["neg", "pos"],
        "metrics": {"val_accuracy": 0.75, "val_size": 40, "val_loss_before": 0.9, "majority_baseline": 0.5},
        "training": {"data": {"path": data_path, "format": "text-folder"}},
    }
    (tmp_path / "README.md").write_text(card_text(config, task="text-classification"))
    [result] = ModelCard.load(tmp_path / "README.md").data.eval_results
    assert (result.dataset_name, result.dataset_type, result.metric_type, result.metric_value) == (name, "text-folder", "accuracy", 0.75)
