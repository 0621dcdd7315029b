"""The feature pass in ONNX Runtime (`--runtime onnx|auto`): the same features and head as eager, one
export per backbone, a damaged or hostile cached export never used; batched decoding."""
from __future__ import annotations

import json
import re
import shutil
import textwrap
from pathlib import Path

import pytest
import torch

import zoo
from helpers import run_zoo
from finetune_data import real_digits
from zoo.cache import sha256_file
from zoo.modeldir import read_config
from zoo.finetuning.feature_runtime import FILE, backbone_key, backbones_dir, cached_backbone, choose_runtime, model_id

LITE0 = "tf_efficientnet_lite0.in1k"
SIZE = 64  # the tests' image size: the backbone and the checks are the same at 224, only slower


@pytest.fixture(scope="module")
def exported(faces, tmp_path_factory):
    """One fine-tune with --runtime onnx in a ZOO_HOME of its own: (that home, its result)."""
    home = tmp_path_factory.mktemp("onnx-home")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("ZOO_HOME", str(home))
        env.setenv("HF_HUB_OFFLINE", "1")
        result = zoo.finetune(LITE0, faces, output=str(home.parent / "onnx-out"), image_size=SIZE, runtime="onnx")
    return home, result


def copy_backbones(home: Path) -> Path:
    """The fixture's exported backbone, copied into this test's ZOO_HOME; its folder there."""
    shutil.copytree(home / "backbones", backbones_dir())
    (folder,) = backbones_dir().iterdir()
    return folder


@pytest.mark.slow
def test_onnx_features_equal_eager_features_on_real_faces(faces, exported):
    from zoo.data import read_data
    from zoo.data.images import ImageSamples, ImageTransform
    from zoo.finetuning.features import compute_features
    from zoo.finetuning.inputs import image_preprocess
    from zoo.parity import ATOL

    folder = copy_backbones(exported[0])
    model = zoo.load(LITE0).eval()
    data = read_data(faces)
    preprocess = ImageTransform(image_preprocess(model, data, SIZE)).preprocess
    samples = ImageSamples(data.train[:48], ImageTransform(preprocess))
    batches = list(torch.utils.data.DataLoader(samples, batch_size=16))
    eager, _ = compute_features(model, batches, torch.device("cpu"), len(samples))
    runtime = choose_runtime(model, "onnx", task=data.task, device=torch.device("cpu"), identity=model.zoo.weights_sha256,
                             model_id=model_id(model), preprocess=preprocess, images=len(samples))
    assert runtime.summary()["backbone"] == "cached" and folder.name == runtime.key  # the fine-tune's own export
    onnx, _ = compute_features(model, batches, torch.device("cpu"), len(samples), forward=runtime)
    assert onnx.shape == eager.shape == (48, model.num_features)
    assert (onnx - eager).abs().max().item() <= ATOL
    assert eager.abs().max().item() > 0.1  # real features, not zeros


@pytest.mark.slow
def test_the_head_trained_with_onnx_reaches_the_eager_accuracy(faces, exported, tmp_path):
    onnx = exported[1]
    eager = zoo.finetune(LITE0, faces, output=str(tmp_path / "eager"), image_size=SIZE, runtime="eager")
    assert onnx.feature_pass["runtime"] == "onnx" and eager.feature_pass["runtime"] == "eager"
    assert eager.feature_pass["reason"] == "asked for"
    assert abs(onnx.val_accuracy - eager.val_accuracy) <= 0.01
    assert onnx.val_accuracy >= 0.9


@pytest.mark.slow
def test_the_exported_backbone_is_cached_and_not_exported_again(faces, exported, tmp_path):
    first = exported[1].feature_pass
    assert first["backbone"] == "exported" and first["export_seconds"] > 0
    folder = copy_backbones(exported[0])
    mtime = (folder / FILE).stat().st_mtime_ns
    # Another seed splits the data differently: the features are computed again, the backbone is not exported.
    again = zoo.finetune(LITE0, faces, output=str(tmp_path / "o"), image_size=SIZE, runtime="onnx", seed=1)
    assert again.features == "computed"
    assert again.feature_pass["backbone"] == "cached" and again.feature_pass["export_seconds"] is None
    assert (folder / FILE).stat().st_mtime_ns == mtime
    # auto takes a cached export: it costs nothing.
    auto = zoo.finetune(LITE0, faces, output=str(tmp_path / "a"), image_size=SIZE, seed=2)
    assert auto.feature_pass["runtime"] == "onnx"
    assert auto.feature_pass["reason"] == "auto: the exported backbone is cached"
    assert read_config(tmp_path / "a")["training"]["feature_pass"]["runtime"] == "onnx"


def test_the_backbone_key_changes_with_the_weights_and_the_preprocessing():
    preprocess = {"input_size": [3, 224, 224], "mean": [0.5] * 3, "std": [0.5] * 3, "interpolation": "bicubic", "crop_pct": 0.875}
    model_id = json.dumps(["tf_efficientnet_lite0", {}])
    key = backbone_key("a" * 64, model_id, preprocess)
    assert key == backbone_key("a" * 64, model_id, dict(preprocess))
    assert key != backbone_key("b" * 64, model_id, preprocess)
    assert key != backbone_key("a" * 64, model_id, {**preprocess, "input_size": [3, 96, 96]})
    assert key != backbone_key("a" * 64, model_id, {**preprocess, "mean": [0.485, 0.456, 0.406]})
    assert key != backbone_key("a" * 64, json.dumps(["tf_efficientnet_lite1", {}]), preprocess)


@pytest.mark.slow
def test_a_truncated_cached_export_is_exported_again(faces, exported, tmp_path):
    folder = copy_backbones(exported[0])
    data = (folder / FILE).read_bytes()
    (folder / FILE).write_bytes(data[: len(data) // 2])
    with pytest.warns(UserWarning, match="unusable .*has sha256 .*exporting it again"):
        result = zoo.finetune(LITE0, faces, output=str(tmp_path / "o"), image_size=SIZE, runtime="onnx", seed=3)
    assert result.feature_pass["backbone"] == "exported"
    assert sha256_file(folder / FILE) == json.loads((folder / f"{FILE}.json").read_text())["sha256"]


def _rehashed(folder: Path) -> None:
    """What a hostile writer of ZOO_HOME would do: make the sidecar name the altered file's sha256."""
    sidecar = folder / f"{FILE}.json"
    record = json.loads(sidecar.read_text())
    record["sha256"] = sha256_file(folder / FILE)
    sidecar.write_text(json.dumps(record))


@pytest.mark.slow
def test_a_cached_export_of_garbage_is_deleted_never_loaded(exported):
    folder = copy_backbones(exported[0])
    (folder / FILE).write_bytes(b"\x08\x07garbage, not a protobuf" * 100)
    _rehashed(folder)  # even with a matching sidecar, onnx cannot parse it
    with pytest.warns(UserWarning, match="unusable"):
        assert cached_backbone(folder.name) is None
    assert not folder.exists()


@pytest.mark.slow
def test_a_cached_export_reading_data_outside_its_folder_is_refused(exported):
    import onnx

    folder = copy_backbones(exported[0])
    graph = onnx.load(str(folder / FILE))
    tensor = graph.graph.initializer[0]
    outside = folder.parent / "outside.bin"
    outside.write_bytes(tensor.raw_data)
    tensor.ClearField("raw_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value="../outside.bin")
    onnx.save(graph, str(folder / FILE))
    _rehashed(folder)
    with pytest.warns(UserWarning, match=r"external data '\.\./outside\.bin'"):
        assert cached_backbone(folder.name) is None
    assert not folder.exists() and outside.exists()  # the file outside is not zoo's: left alone


@pytest.mark.slow
def test_a_cached_export_naming_a_custom_operator_domain_is_refused(exported):
    import onnx

    folder = copy_backbones(exported[0])
    graph = onnx.load(str(folder / FILE))
    graph.opset_import.add(domain="com.example.custom", version=1)
    graph.graph.node[0].domain = "com.example.custom"
    onnx.save(graph, str(folder / FILE))
    _rehashed(folder)
    with pytest.warns(UserWarning, match="custom domain.*com.example.custom"):
        assert cached_backbone(folder.name) is None


# onnxruntime as if it were not installed: found (torch probes for it with find_spec), but not importable.
BLOCK_ONNXRUNTIME = """
import importlib.abc
import importlib.machinery
import sys


class Missing(importlib.abc.Loader):
    def create_module(self, spec):
        raise ModuleNotFoundError(f"No module named {spec.name!r} (blocked by this test)", name=spec.name)

    def exec_module(self, module):
        raise ModuleNotFoundError(f"No module named {module.__name__!r} (blocked by this test)")


class BlockOnnxRuntime(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "onnxruntime":
            return importlib.machinery.ModuleSpec(name, Missing())
        return None


sys.meta_path.insert(0, BlockOnnxRuntime())
"""


@pytest.mark.slow
def test_runtime_onnx_without_onnxruntime_is_a_clear_error_and_auto_runs_eager(faces, tmp_path):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(textwrap.dedent(BLOCK_ONNXRUNTIME))
    env = {"PYTHONPATH": str(tmp_path / "site")}
    common = (LITE0, "--data", str(faces), "--image-size", str(SIZE), "--epochs", "1")
    refused = run_zoo("finetune", *common, "-o", str(tmp_path / "a"), "--runtime", "onnx", env=env)
    assert refused.returncode == 1, refused.stderr
    assert "Error: --runtime onnx needs onnxruntime, which cannot be imported" in refused.stderr
    assert "pip install onnxruntime, or pass --runtime eager" in refused.stderr
    assert not (tmp_path / "a").exists()
    auto = run_zoo("finetune", *common, "-o", str(tmp_path / "b"), "--json", env=env)
    assert auto.returncode == 0, auto.stderr
    assert json.loads(auto.stdout)["feature_pass"]["reason"] == "auto: onnxruntime is not installed"


@pytest.fixture
def digits(tmp_path_factory):
    return real_digits(tmp_path_factory, per_class=10)


@pytest.mark.slow
def test_auto_on_the_cpu_follows_the_rule(digits, tmp_path):
    """A small pass costs less than an export: eager. A pass large enough pays for the export: onnx."""
    from zoo.finetuning.feature_runtime import ORT_SPEEDUP, PAYBACK, export_estimate

    small = zoo.finetune("lenet5.digits", digits, output=str(tmp_path / "o"), epochs=1)
    assert small.feature_pass["runtime"] == "eager"
    assert small.feature_pass["reason"].startswith("auto: ") and "s saved <= 2 × about" in small.feature_pass["reason"]
    model = zoo.load("lenet5.digits").eval()
    from zoo.data.images import ImageTransform

    preprocess = ImageTransform(model.zoo.preprocess).preprocess
    x = torch.randn(32, *preprocess["input_size"])
    # The images it would take for the rule to call for the export, whatever the speed of this machine:
    # eager on this batch costs more than 1 ms per 1,000 images; ORT_SPEEDUP discounts it.
    images = int(1e6 * PAYBACK * export_estimate(model) * ORT_SPEEDUP)
    runtime = choose_runtime(model, "auto", task="image-classification", device=torch.device("cpu"), identity="lenet5",
                             model_id="lenet5", preprocess=preprocess, images=images)
    with torch.inference_mode():
        runtime(x)  # the first batch warms up: not timed
        assert runtime.summary()["runtime"] == "eager" and runtime.summary()["reason"] == "auto: one batch, too few to time: eager"
        eager = runtime(x)
        assert runtime.summary()["runtime"] == "onnx" and "s saved > 2 × about" in runtime.summary()["reason"]
        assert runtime.summary()["backbone"] == "exported"
        assert (runtime(x) - eager).abs().max().item() <= 1e-4
    again = choose_runtime(model, "auto", task="image-classification", device=torch.device("cpu"), identity="lenet5",
                           model_id="lenet5", preprocess=preprocess, images=10)
    assert again.summary()["reason"] == "auto: the exported backbone is cached"


@pytest.mark.slow
def test_runtime_onnx_refuses_a_run_without_a_feature_pass(digits, tmp_path):
    from zoo.errors import ArgumentError

    with pytest.raises(ArgumentError, match="--runtime onnx runs the cached feature pass, and this run has none") as caught:
        zoo.finetune("lenet5.digits", digits, output=str(tmp_path / "o"), strategy="full", runtime="onnx", epochs=1)
    assert "drop --runtime onnx" in caught.value.remedy
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_runtime_onnx_refuses_a_text_model_and_auto_says_it_runs_eager(tmp_path):
    from zoo.data.packaged import write_dataset
    from zoo.errors import ArgumentError

    write_dataset("play-lines", tmp_path / "lines", plays=["macbeth", "a-midsummer-night-s-dream"])
    lines = tmp_path / "lines" / "play_lines.csv"
    with pytest.raises(ArgumentError, match="--runtime onnx runs the feature pass of image models; text models run eager"):
        zoo.finetune("lstm-text", lines, label_column="play", output=str(tmp_path / "o"), runtime="onnx", epochs=1)
    auto = zoo.finetune("lstm-text", lines, label_column="play", output=str(tmp_path / "a"), epochs=1)
    assert auto.feature_pass["runtime"] == "eager" and auto.feature_pass["reason"] == "auto: text models run eager"


def test_zoo_finetune_prints_the_runtime_and_why(digits, tmp_path):
    done = run_zoo("finetune", "lenet5.digits", "--data", str(digits), "-o", str(tmp_path / "o"), "--epochs", "1", "--runtime", "eager")
    assert done.returncode == 0, done.stderr
    assert re.search(r"^runtime +eager \(asked for\)$", done.stdout, re.M), done.stdout


def test_an_unknown_runtime_is_refused():
    from zoo.errors import ArgumentError
    from zoo.finetuning.options import FinetuneOptions

    with pytest.raises(ArgumentError, match="unknown runtime 'ort'") as caught:
        FinetuneOptions(runtime="ort")
    assert caught.value.remedy == "use one of: auto, eager, onnx"


# -- batched decoding ------------------------------------------------------------------------------
def _jpeg_faces(faces: Path, target: Path, count: int) -> Path:
    """Real JPEG photos at realistic sizes: LFW faces scaled up, flipped and cropped, saved as JPEG."""
    from PIL import Image, ImageOps

    paths = sorted(faces.rglob("*.png"))
    paths = paths[:: max(1, len(paths) // count)][:count]  # both classes
    for i, path in enumerate(paths):
        image = Image.open(path).convert("RGB").resize((160 + 7 * i, 200 - 3 * i), Image.BICUBIC)
        image = ImageOps.mirror(image) if i % 2 else image.crop((5, 0, image.width, image.height - 5))
        (target / path.parent.name).mkdir(parents=True, exist_ok=True)
        image.save(target / path.parent.name / f"{i:03d}.jpg", quality=90)
    return target


def _batches(folder: Path, device: str, fast: bool) -> torch.Tensor:
    from zoo.data import read_data
    from zoo.data.device_decode import fast_batches
    from zoo.data.images import ImageSamples, ImageTransform

    data = read_data(folder)
    samples = ImageSamples(data.train + data.val, ImageTransform({"input_size": [3, 96, 96], "interpolation": "bicubic", "crop_pct": 0.875}))
    if fast:
        batches = fast_batches(samples, 8, torch.device(device))
        assert batches is not None
    else:
        batches = torch.utils.data.DataLoader(samples, batch_size=8)
    return torch.cat([x.to("cpu", torch.float32) for x, _ in batches])


def test_batched_decoding_gives_the_per_sample_transform_s_pixels(faces):
    slow, fast = _batches(faces, "cpu", fast=False), _batches(faces, "cpu", fast=True)
    assert fast.shape == slow.shape == (200, 3, 96, 96)
    assert (fast - slow).abs().max().item() <= 1e-6


def test_grey_digits_batch_as_their_transform_does_and_augmentation_keeps_the_per_sample_path(digits):
    from zoo.data import read_data
    from zoo.data.device_decode import fast_batches
    from zoo.data.images import ImageSamples, ImageTransform

    transform = ImageTransform(zoo.load("lenet5.digits").zoo.preprocess)
    samples = ImageSamples(read_data(digits).train, transform)
    fast = torch.cat([x for x, _ in fast_batches(samples, 8, torch.device("cpu"))])
    slow = torch.cat([x for x, _ in torch.utils.data.DataLoader(samples, batch_size=8)])
    assert fast.shape == slow.shape == (80, 1, 32, 32) and (fast - slow).abs().max().item() <= 1e-6
    augmented = ImageSamples(samples.samples, ImageTransform(transform.preprocess, augment=True))
    assert fast_batches(augmented, 8, torch.device("cpu")) is None


def test_the_device_path_decodes_jpegs_in_batches_close_to_pil(faces, tmp_path):
    """decode_jpeg and the tensor resize run on the CPU here: the code CUDA runs, against PIL's pixels."""
    from zoo.data.device_decode import JpegOrPixels, _decode_on_device, device_decodable, pixel_pipeline
    from zoo.data import read_data
    from zoo.data.images import ImageSamples, ImageTransform

    folder = _jpeg_faces(faces, tmp_path / "jpegs", 24)
    (tmp_path / "jpegs" / "face" / "png.png").write_bytes(next(faces.rglob("*.png")).read_bytes())  # takes the CPU path
    data = read_data(folder)
    samples = ImageSamples(data.train + data.val, ImageTransform({"input_size": [3, 96, 96], "interpolation": "bicubic", "crop_pct": 0.875}))
    pipeline = pixel_pipeline(samples.transform)
    reader = JpegOrPixels(samples, pipeline)
    items = [reader[i] for i in range(len(samples))]
    flags = [flag for _, flag, _ in items]
    assert flags.count(False) == 1 and all(device_decodable(Path(p)) == f for (p, _), f in zip(samples.samples, flags))
    pixels = _decode_on_device([t for t, _, _ in items], flags, pipeline, torch.device("cpu"))
    reference = torch.stack([samples[i][0] for i in range(len(samples))])
    decoded = pipeline.normalise(pixels, torch.device("cpu"))
    # libjpeg-turbo's IDCT and the tensor bicubic differ from PIL's by a few grey levels (of 255, normalised: x 2/255/0.225)
    assert (decoded - reference).abs().mean().item() < 0.05
    assert (decoded - reference).abs().max().item() < 1.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="decoding on the GPU needs CUDA")
def test_gpu_decoded_features_match_the_cpu_path_on_real_jpegs(faces, tmp_path):
    from zoo.data import read_data
    from zoo.data.device_decode import fast_batches
    from zoo.data.images import ImageSamples, ImageTransform
    from zoo.finetuning.features import compute_features

    folder = _jpeg_faces(faces, tmp_path / "jpegs", 64)
    model = zoo.load(LITE0).cuda().to(memory_format=torch.channels_last).eval()
    data = read_data(folder)
    samples = ImageSamples(data.train + data.val, ImageTransform(model.zoo.preprocess))
    cuda = torch.device("cuda")
    gpu, _ = compute_features(model, fast_batches(samples, 16, cuda), cuda, len(samples))
    cpu, _ = compute_features(model, torch.utils.data.DataLoader(samples, batch_size=16), cuda, len(samples))
    cosine = torch.nn.functional.cosine_similarity(gpu, cpu, dim=1)
    assert cosine.min().item() > 0.98, cosine


@pytest.mark.slow
def test_a_killed_export_leaves_what_zoo_cache_clean_removes_and_the_next_run_exports(faces, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    command = [str(Path(sys.executable).parent / "zoo"), "finetune", LITE0, "--data", str(faces), "--image-size", str(SIZE),
               "--runtime", "onnx", "-o", str(tmp_path / "o"), "--epochs", "1"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while not list(backbones_dir().glob("*/.zoo-export-*")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    (staging,) = backbones_dir().glob("*/.zoo-export-*")
    cleaned = run_zoo("cache", "clean", "--json")
    assert cleaned.returncode == 0, cleaned.stderr
    assert str(staging) in {row["path"] for row in json.loads(cleaned.stdout)}
    assert not staging.exists()
    result = zoo.finetune(LITE0, faces, output=str(tmp_path / "o2"), image_size=SIZE, runtime="onnx", epochs=1)
    assert result.feature_pass["backbone"] == "exported"
