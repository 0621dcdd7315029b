"""`zoo predict` runs every model through its task's TaskSpec: the inputs it reads (a folder of lines
for english-ocr), its prepare in batches (inputs of one shape run together, none padded to another's
size), its decode, streamed; and a task that no plugin registers is one line before anything loads."""
from __future__ import annotations

import json
import shutil

import pytest

import zoo
from zoo.predict.decoded import predict_batches, predict_task
from zoo.predict.images import classify_images
from zoo.tasks import task_of
from zoo_ocr.render import random_lines, write_lines

from helpers import run_zoo
from test_ocr_task import WORDS, font
from test_plugins import write_distribution
from test_tasks import tagger  # noqa: F401 - the example tagger plugin installed, a fixture


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A ZOO_HOME of the module's own: english-ocr is converted into it once."""
    return str(tmp_path_factory.mktemp("task-predict-home"))


@pytest.fixture(scope="module")
def ocr(home):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ZOO_HOME", home)
        yield zoo.load("english-ocr")


@pytest.fixture(scope="module")
def lines(tmp_path_factory):
    """Five rendered lines of different widths, and their transcripts."""
    texts = random_lines(WORDS, 5, seed=4)
    return write_lines(tmp_path_factory.mktemp("lines") / "lines", texts, font()), texts


def forward_calls(model) -> list[int]:
    """The batch size of every forward call the model gets from now on."""
    calls: list[int] = []
    model.register_forward_hook(lambda module, args, output: calls.append(args[0].shape[0]))
    return calls


def test_lines_of_one_width_run_together_and_every_line_reads_as_it_does_alone(ocr, lines, tmp_path):
    folder, texts = lines
    first = folder / "line-00000.png"
    twin = tmp_path / "twin.png"
    shutil.copy(first, twin)  # the same width as the first line: one run of two
    inputs = [str(first), str(twin), str(folder / "line-00001.png"), str(first)]
    spec = task_of(ocr)
    alone = predict_task(ocr, spec, inputs, batch_size=1)
    calls = forward_calls(ocr)
    batches = list(predict_batches(ocr, spec, inputs, batch_size=4))
    assert calls == [2, 1, 1] and [len(b) for b in batches] == [4]
    together = batches[0]
    assert [r["input"] for r in together] == inputs
    assert [r["text"] for r in together] == [texts[0], texts[0], texts[1], texts[0]] == [r["text"] for r in alone]
    for a, b in zip(together, alone):
        assert a["confidences"] == pytest.approx(b["confidences"], abs=1e-4)


@pytest.mark.slow
def test_zoo_predict_reads_a_folder_of_lines_in_name_order_in_batches(home, lines):
    folder, texts = lines
    env = {"ZOO_HOME": home, "OMP_NUM_THREADS": "2"}
    result = run_zoo("predict", "english-ocr", str(folder), "--batch-size", "2", "--json", env=env)
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)
    assert [r["input"] for r in records] == [str(folder / f"line-{i:05d}.png") for i in range(5)]
    assert [r["text"] for r in records] == texts
    table = run_zoo("predict", "english-ocr", str(folder), "--batch-size", "1", env=env)
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["INPUT", "TEXT", "CONFIDENCE"] and len(rows) == 5
    assert [row.split(None, 1)[1].rsplit(None, 1)[0] for row in rows] == texts  # one table, a batch at a time


def test_images_of_one_size_run_a_batch_at_a_time(tmp_path):
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    paths = []
    for i in range(5):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray((digits.images[i] * 255 / 16).astype("uint8")).resize((28, 28)).save(paths[-1])
    model = zoo.load("lenet5-digits")
    whole = classify_images(model, paths, top_k=3, batch_size=5)  # zoo's image classifier, in one batch
    calls = forward_calls(model)
    batches = list(predict_batches(model, task_of(model), paths, top_k=3, batch_size=2))
    assert calls == [2, 2, 1] and [[r["input"] for r in b] for b in batches] == [paths[:2], paths[2:4], paths[4:]]
    streamed = [r for b in batches for r in b]
    assert [[p["label"] for p in r["predictions"]] for r in streamed] == [[p["label"] for p in r["predictions"]] for r in whole]
    for got, want in zip(streamed, whole):
        assert [p["probability"] for p in got["predictions"]] == pytest.approx([p["probability"] for p in want["predictions"]], abs=1e-5)


def test_a_tagger_tags_each_sentence_by_its_own_length_in_a_batch(tagger):  # noqa: F811
    model = zoo.load("gru-tagger")
    sentences = ["the cat", "every dog likes some cat", "a bird sees", "the man finds a tree"]
    calls = forward_calls(model)
    results = predict_task(model, task_of(model), sentences, batch_size=8)
    assert calls == [1, 1, 1, 1]  # four lengths: four runs, none padded
    assert [len(r["tags"]) for r in results] == [2, 5, 3, 5]
    again = predict_task(model, task_of(model), [sentences[1], sentences[3]], batch_size=8)
    assert calls[4:] == [2] and [r["tags"] for r in again] == [results[1]["tags"], results[3]["tags"]]


CAPTIONER = """
    from pathlib import Path

    import zoo

    @zoo.hookimpl
    def register_architectures(register):
        register(zoo.ArchSpec(name="captioner", family="mlp", build="zoo_captioner:build", tasks=("audio-captioning",),
                              input=zoo.InputSpec("features", (64,))))

    def build(**kwargs):
        Path("built").write_text("the model was built")
        from zoo_mlp.model import mlp

        return mlp(**kwargs)
"""


def test_a_registry_name_whose_task_nobody_registers_is_one_line_before_anything_is_built(tmp_path):
    site = tmp_path / "site"
    write_distribution(site, "zoo-captioner", "zoo_captioner", CAPTIONER, entry_name="captioner")
    result = run_zoo("predict", "captioner", "x.wav", env={"PYTHONPATH": str(site)}, cwd=tmp_path)
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("Error: captioner names task 'audio-captioning', which no installed plugin registers; "
                           "registered tasks: image-classification, language-modeling, ")
    assert not (tmp_path / "built").exists()


def test_a_model_directory_of_a_task_no_plugin_registers_is_one_line_before_its_weights_are_read(tagger, tmp_path):  # noqa: F811
    from zoo.modeldir import save_model_dir

    folder = save_model_dir(zoo.load("gru-tagger"), tmp_path / "model")
    (folder / "model.safetensors").write_bytes(b"not weights")  # reading them would be another error
    result = run_zoo("predict", str(folder), "the cat", env={"ZOO_LOAD_PLUGINS": ""})  # the tagger plugin not loaded
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith(f"Error: {folder} names task 'step-tagging', which no installed plugin registers; registered tasks: ")
    assert "install the plugin that provides the task" in line


def test_generate_for_a_task_that_cannot_sample_is_one_line_with_the_remedy():
    result = run_zoo("predict", "lenet5-digits", "digit.png", "--generate", "5")
    assert (result.returncode, result.stderr) == (
        2, "Error: --generate needs a language model; lenet5-digits is not one: it does image-classification "
           "(drop --generate: its answers are printed)\n",
    )


@pytest.mark.slow
def test_output_runs_auto_unless_asked_and_auto_without_output_is_a_usage_error(tmp_path):
    from PIL import Image

    image = tmp_path / "digit.png"
    Image.new("L", (28, 28), 255).save(image)
    default = run_zoo("predict", "lenet5-digits", str(image), "-o", str(tmp_path / "a.csv"), "--json")
    assert default.returncode == 0, default.stderr
    assert json.loads(default.stdout)["runtime"]["requested"] == "auto"
    eager = run_zoo("predict", "lenet5-digits", str(image), "-o", str(tmp_path / "b.csv"), "--runtime", "eager", "--json")
    assert json.loads(eager.stdout)["runtime"] | {"threads": None} == {
        "runtime": "eager", "requested": "eager", "reason": "asked for", "export": None, "export_seconds": None, "threads": None,
        "lanes": 1,
    }
    printed = run_zoo("predict", "lenet5-digits", str(image), "--runtime", "auto")
    assert printed.returncode == 2
    assert printed.stderr.splitlines()[-1] == (
        "Error: --runtime auto goes with --output (printed predictions run eager unless --runtime onnx)"
    )


@pytest.mark.slow
def test_output_writes_each_line_of_a_folder_as_the_task_decodes_it_and_skips_a_broken_one(home, lines, tmp_path):
    folder, texts = lines
    shutil.copytree(folder, tmp_path / "lines")
    (tmp_path / "lines" / "line-00002.png").write_bytes(b"not a picture")
    env = {"ZOO_HOME": home, "OMP_NUM_THREADS": "2"}
    result = run_zoo("predict", "english-ocr", str(tmp_path / "lines"), "-o", str(tmp_path / "texts.jsonl"), "-k", "1", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"wrote 5 rows to {tmp_path / 'texts.jsonl'}: 4 predicted, 1 skipped")
    rows = [json.loads(line) for line in (tmp_path / "texts.jsonl").read_text().splitlines()]
    assert [r["path"] for r in rows] == [str(tmp_path / "lines" / f"line-{i:05d}.png") for i in range(5)]
    assert [r.get("text") for r in rows] == [*texts[:2], None, *texts[3:]]
    assert "error" in rows[2] and "skipped 1 file(s)" in result.stderr


class PairModel:
    """A model that takes a pair (the text's character codes, their count), as some plugins' do."""

    def eval(self):
        return self

    def __call__(self, batch):
        import torch

        codes, count = batch
        return torch.stack([codes.float().sum(-1) / count, count.float()], dim=-1)


def prepare_pair(model, texts):
    import torch

    (text,) = texts
    return torch.tensor([[ord(c) for c in text]]), torch.tensor([len(text)])


def decode_pair(outputs, labels, top_k):
    return [{"mean_code": round(float(mean), 3), "length": int(n)} for mean, n in outputs.tolist()]


def test_a_prepared_batch_that_is_no_tensor_runs_alone_and_is_decoded_in_order():
    spec = zoo.TaskSpec(name="pairs", output=("batch", "values"), decode="test_task_predict:decode_pair", columns=("LENGTH",),
                        rows="test_task_predict:decode_pair", metrics="zoo.tasks.classification:Accuracy",
                        prepare="test_task_predict:prepare_pair", reads="texts", plugin="tests")
    results = predict_task(PairModel(), spec, ["ab", "cd", "xyz"], batch_size=8)
    assert results == [{"input": "ab", "mean_code": 97.5, "length": 2}, {"input": "cd", "mean_code": 99.5, "length": 2},
                       {"input": "xyz", "mean_code": 121.0, "length": 3}]


def rows_pair(prediction):
    return [(prediction["length"], prediction["mean_code"])]


def test_rows_that_do_not_fit_the_columns_are_named():
    from zoo.predict.decoded import table_cells

    spec = zoo.TaskSpec(name="pairs", output=("batch", "values"), decode="test_task_predict:decode_pair", columns=("LENGTH",),
                        rows="test_task_predict:rows_pair", metrics="zoo.tasks.classification:Accuracy",
                        prepare="test_task_predict:prepare_pair", reads="texts", plugin="tests")
    results = predict_task(PairModel(), spec, ["ab"])
    with pytest.raises(zoo.ArgumentError, match=r"task 'pairs' \(tests\) gave a row of 2 value\(s\) for its 1 column\(s\) LENGTH"):
        table_cells(spec, results)
    fitting = zoo.TaskSpec(**{**spec.__dict__, "columns": ("LENGTH", "MEAN")})
    assert table_cells(fitting, results) == [("ab", "2", "97.5")]


@pytest.mark.slow
def test_texts_of_different_lengths_get_the_classes_they_get_alone_and_in_onnxruntime(tmp_path):
    import torch

    from zoo.modeldir import save_model_dir

    torch.manual_seed(0)
    model = zoo.load("gru", vocab="lstm-text", task="sequence-classification", num_classes=3, embed_dim=16, hidden_size=32)
    model.zoo.labels = ["comedy", "history", "tragedy"]
    folder = save_model_dir(model, tmp_path / "plays")
    assert zoo.export(str(folder)).parity.passed
    texts = ["To be, or not to be", "Now is the winter", "All"]  # padded together, "All" read otherwise (0.37 vs 0.36)
    eager = json.loads(run_zoo("predict", str(folder), *texts, "-k", "3", "--json").stdout)
    alone = [json.loads(run_zoo("predict", str(folder), text, "-k", "3", "--json").stdout)[0] for text in texts]
    onnx = json.loads(run_zoo("predict", str(folder), *texts, "-k", "3", "--json", "--runtime", "onnx").stdout)
    for got, one, ort in zip(eager, alone, onnx):
        assert [p["label"] for p in got["predictions"]] == [p["label"] for p in one["predictions"]] == [p["label"] for p in ort["predictions"]]
        assert [p["probability"] for p in got["predictions"]] == pytest.approx([p["probability"] for p in ort["predictions"]], abs=1e-5)


@pytest.mark.slow
def test_sentences_of_one_length_run_together_in_onnxruntime_and_tag_as_eager(tagger, tmp_path):  # noqa: F811
    from zoo.modeldir import save_model_dir
    from zoo.predict.onnx_runtime import load_onnx_model

    folder = save_model_dir(zoo.load("gru-tagger"), tmp_path / "model")
    assert zoo.export(str(folder)).parity.passed
    sentences = ["the cat sees a dog", "every dog likes some cat", "a bird sees"]
    eager = predict_task(zoo.load(str(folder)), task_of(zoo.load(str(folder))), sentences)
    onnx = load_onnx_model(folder)
    calls = []
    run = onnx.runner.session.run
    onnx.runner.session.run = lambda names, feed: calls.append(next(iter(feed.values())).shape) or run(names, feed)
    in_ort = predict_task(onnx, task_of(onnx), sentences)
    assert [c[0] for c in calls] == [2, 1]  # the two five-word sentences in one run
    assert [r["tags"] for r in in_ort] == [r["tags"] for r in eager]
    for a, b in zip(in_ort, eager):
        assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-4)
