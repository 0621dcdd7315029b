"""Tasks are plugins (the register_tasks hook): a third-party plugin's own task, per-step tagging
(examples/zoo-tagger-example), is predicted, fine-tuned, evaluated and exported through its
TaskSpec alone; a task nobody registers, a raising task hook and a duplicate task name are refused."""
from __future__ import annotations

import json
import os
import random
import re
import warnings

import pytest

import zoo
from zoo.errors import DuplicateNameError, PluginError
from zoo.plugins import PluginWarning

from helpers import ROOT, run_zoo
from test_plugins import write_distribution

EXAMPLE = ROOT / "examples" / "zoo-tagger-example"
BUILTIN_TASKS = ("image-classification", "text-classification", "tabular-classification", "language-modeling", "sequence-tagging")
DETS, NOUNS, VERBS = ["the", "a", "every", "some"], ["cat", "dog", "bird", "man", "child", "tree"], ["sees", "likes", "chases", "finds"]


def write_tags(path, sentences: int, seed: int = 0):
    """A .tags file of `sentences` 'DET NOUN VERB DET NOUN' sentences: the tag of a word follows from the word."""
    rng = random.Random(seed)
    lines = []
    for _ in range(sentences):
        words = [rng.choice(DETS), rng.choice(NOUNS), rng.choice(VERBS), rng.choice(DETS), rng.choice(NOUNS)]
        lines.append(" ".join(words) + "\tDET NOUN VERB DET NOUN")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def tagger(tmp_path, monkeypatch):
    """The example tagger plugin installed (an entry point, as pip would lay it out); the env for `zoo`."""
    site = tmp_path / "site"
    info = site / "zoo_tagger_example-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: zoo-tagger-example\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[zoo]\ntagger = zoo_tagger_example\n")
    (info / "RECORD").write_text("")
    monkeypatch.syspath_prepend(str(EXAMPLE))
    monkeypatch.syspath_prepend(str(site))
    return {"PYTHONPATH": os.pathsep.join([str(site), str(EXAMPLE)])}


def test_builtin_tasks_are_registered_through_the_hook_and_found_by_name_or_alias():
    from zoo.tasks import get_task, tasks

    found = tasks()
    assert set(BUILTIN_TASKS) <= set(found)
    assert {found[name].plugin for name in BUILTIN_TASKS} == {"zoo.tasks.builtin"}
    assert get_task("sequence-classification").name == "text-classification"
    assert zoo.get_registry().archs["lenet5"].tasks[0] in found


def test_a_model_knows_its_task():
    from zoo.tasks import task_of

    assert task_of(zoo.load("lenet5")).name == "image-classification"
    assert task_of(zoo.load("lstm-text", pretrained=False)).name == "language-modeling"
    assert task_of(zoo.load("gru", task="sequence-classification", num_classes=2)).name == "text-classification"
    tagger = zoo.load("gru", task="sequence-tagging", num_classes=4, vocab_size=20, hidden_size=8)
    assert task_of(tagger).name == "sequence-tagging" and task_of(tagger).output == ("batch", "time", "classes")


def test_the_plugin_task_is_registered_with_its_architecture_and_data_format(tagger):
    from zoo.data import data_formats
    from zoo.tasks import task_of, tasks

    spec = tasks()["step-tagging"]
    assert spec.plugin == "tagger" and spec.output == ("batch", "time", "classes")
    assert task_of(zoo.load("gru-tagger")) is spec
    assert data_formats()["tagged-lines"].task == "step-tagging"
    listed = {r["name"]: r for r in json.loads(run_zoo("plugins", "--json", env=tagger).stdout)}
    assert listed["tagger"]["registered"] == {
        "architectures": ["gru-tagger"], "data_formats": ["tagged-lines"], "tasks": ["step-tagging"],
    }
    assert listed["zoo.tasks.builtin"]["registered"]["tasks"][:2] == ["image-classification", "text-classification"]


@pytest.mark.slow
def test_predict_finetune_eval_and_export_run_a_plugin_task_through_its_hook(tagger, tmp_path):
    data = write_tags(tmp_path / "train.tags", 200)
    out = tmp_path / "tagger-out"
    tuned = run_zoo("finetune", "gru-tagger", "--data", str(data), "--output", str(out), "--epochs", "6",
                    "--batch-size", "16", "--lr", "0.03", "--json", env=tagger)
    assert tuned.returncode == 0, tuned.stderr
    summary = json.loads(tuned.stdout)
    history = summary["history"]
    assert history[-1]["val_loss"] < history[0]["val_loss"] / 2  # the loss goes down
    assert summary["tag_accuracy"] > 0.95 and 0 <= summary["sentence_accuracy"] <= 1  # the task's metrics
    table = run_zoo("finetune", "gru-tagger", "--data", str(data), "--output", str(tmp_path / "again"), "--epochs", "1", env=tagger)
    assert re.search(r"^tag_accuracy +[0-9.]+$", table.stdout, re.MULTILINE), table.stdout  # the task's metrics printed
    config = json.loads((out / "config.json").read_text())["zoo"]
    assert config["task"] == "step-tagging" and config["labels"] == ["DET", "NOUN", "VERB"]

    evaluated = run_zoo("eval", str(out), "--data", str(data), "--split", "val", "--json", env=tagger)
    assert evaluated.returncode == 0, evaluated.stderr
    report = json.loads(evaluated.stdout)
    assert report["task"] == "step-tagging" and report["n"] == 40  # the 20% the fine-tune held out
    assert report["metrics"]["tag_accuracy"] == pytest.approx(summary["tag_accuracy"])
    assert report["loss"] == pytest.approx(summary["val_loss"], rel=1e-5)

    sentence = "the child finds a tree"
    table = run_zoo("predict", str(out), sentence, "every dog likes some cat", env=tagger)
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0].split() == ["INPUT", "TAGS"]
    assert table.stdout.splitlines()[1].endswith("DET NOUN VERB DET NOUN")
    eager = json.loads(run_zoo("predict", str(out), sentence, "--json", env=tagger).stdout)
    assert eager[0]["input"] == sentence and eager[0]["tags"] == ["DET", "NOUN", "VERB", "DET", "NOUN"]
    assert len(eager[0]["probabilities"]) == 5

    exported = run_zoo("export", str(out), "--format", "onnx", env=tagger)
    assert exported.returncode == 0, exported.stderr
    assert "parity passed" in exported.stdout
    sidecar = json.loads((out / "model.onnx.json").read_text())
    assert sidecar["task"] == "step-tagging" and sidecar["parity"]["passed"] and sidecar["parity"]["decoded_match"]
    onnx = json.loads(run_zoo("predict", str(out), sentence, "--runtime", "onnx", "--json", env=tagger).stdout)
    assert onnx[0]["tags"] == eager[0]["tags"]
    in_ort = json.loads(run_zoo("eval", str(out), "--data", str(data), "--split", "val", "--runtime", "onnx", "--json", env=tagger).stdout)
    assert in_ort["metrics"] == pytest.approx(report["metrics"]) and in_ort["loss"] == pytest.approx(report["loss"], abs=1e-5)
    assert onnx[0]["probabilities"] == pytest.approx(eager[0]["probabilities"], abs=1e-4)


def test_finetuning_a_model_on_data_of_another_task_is_refused(tagger, tmp_path):
    data = write_tags(tmp_path / "train.tags", 20)
    with pytest.raises(zoo.ArgumentError, match=r"lenet5 does image-classification, and .* holds step-tagging data"):
        zoo.finetune("lenet5", data, output=tmp_path / "out", epochs=1)
    assert not (tmp_path / "out").exists()


def test_a_bad_tags_line_is_named(tagger, tmp_path):
    data = tmp_path / "bad.tags"
    data.write_text("the cat\tDET NOUN\nthe dog sees\tDET NOUN\n")
    with pytest.raises(zoo.DataError, match=r"bad.tags:2: need 'tokens<TAB>tags' with one tag per token"):
        zoo.finetune("gru-tagger", data, output=tmp_path / "out", epochs=1)


def _with_task(directory, task: str) -> None:
    path = directory / "config.json"
    config = json.loads(path.read_text())
    config["zoo"]["task"] = task
    path.write_text(json.dumps(config))


def test_a_model_directory_naming_an_unregistered_task_is_one_error_line(tmp_path):
    from zoo.modeldir import save_model_dir
    from zoo.tasks import UnknownTaskError, tasks

    registered = ", ".join(sorted(tasks()))  # the built-in plugins' (zoo_ocr's text-recognition among them)
    assert registered.startswith("image-classification, language-modeling, sequence-tagging, tabular-classification")
    folder = tmp_path / "model"
    save_model_dir(zoo.load("lenet5"), folder)
    assert json.loads((folder / "config.json").read_text())["zoo"]["task"] == "image-classification"
    _with_task(folder, "audio-captioning")
    with pytest.raises(UnknownTaskError, match=f"names task 'audio-captioning', which no installed plugin registers; "
                                               f"registered tasks: {registered} "):
        zoo.load(folder)
    result = run_zoo("predict", str(folder), "x.png")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: {folder} names task 'audio-captioning', which no installed plugin registers; registered tasks: {registered} "
        "(install the plugin that provides the task (`zoo plugins` lists what is loaded))"
    ]


def test_a_plugin_tasks_model_directory_needs_the_plugin(tagger, tmp_path):
    from zoo.modeldir import save_model_dir

    folder = tmp_path / "model"
    save_model_dir(zoo.load("gru-tagger"), folder)
    result = run_zoo("eval", str(folder), "--data", str(tmp_path), env={"ZOO_LOAD_PLUGINS": ""})  # no third-party plugin
    assert result.returncode == 1
    assert "names task 'step-tagging', which no installed plugin registers" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


RAISING = """
    import zoo

    @zoo.hookimpl
    def register_tasks(register):
        raise RuntimeError("tasks are broken here")
"""


def test_a_task_hook_that_raises_skips_that_plugin_only(tmp_path, monkeypatch):
    site = tmp_path / "site"
    write_distribution(site, "zoo-raising-task", "zoo_raising_task", RAISING, entry_name="raising-task")
    monkeypatch.syspath_prepend(str(site))
    from zoo.plugins import default_plugin_manager
    from zoo.tasks import tasks

    with pytest.warns(PluginWarning, match="plugin 'raising-task' skipped: register_tasks raised RuntimeError: tasks are broken here"):
        found = tasks()
    assert "image-classification" in found
    assert "register_tasks raised" in default_plugin_manager().records["raising-task"].error
    from PIL import Image

    digit = Image.new("L", (28, 28), 255)
    digit.paste(0, (12, 4, 16, 24))  # a one
    digit.save(tmp_path / "digit.png")
    result = run_zoo("predict", "lenet5-digits", str(tmp_path / "digit.png"), "--json", env={"PYTHONPATH": str(site)})
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)[0]["predictions"]) == 5
    assert "plugin 'raising-task' skipped: register_tasks raised RuntimeError" in result.stderr
    monkeypatch.setenv("ZOO_STRICT_PLUGINS", "1")
    default_plugin_manager.cache_clear()
    with pytest.raises(PluginError, match="raising-task"):
        tasks()


def duplicate(name: str) -> str:
    return f"""
    import zoo

    @zoo.hookimpl
    def register_tasks(register):
        register(zoo.TaskSpec(name={name!r}, output=("batch", "classes"), decode="m:decode", columns=("X",),
                              rows="m:rows", metrics="m:Metrics"))
"""


def test_a_duplicate_task_name_is_refused_naming_both_plugins(tmp_path, monkeypatch):
    site = tmp_path / "site"
    write_distribution(site, "zoo-first", "zoo_first", duplicate("word-tagging"), entry_name="first")
    write_distribution(site, "zoo-second", "zoo_second", duplicate("word-tagging"), entry_name="second")
    write_distribution(site, "zoo-builtin-clash", "zoo_builtin_clash", duplicate("image-classification"), entry_name="clash")
    monkeypatch.syspath_prepend(str(site))
    from zoo.tasks import tasks

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found = tasks()
    messages = [str(w.message) for w in caught if issubclass(w.category, PluginWarning)]
    assert any("'word-tagging' is registered by both 'first' and 'second'" in m for m in messages)
    assert any("'image-classification' is registered by both 'zoo.tasks.builtin' and 'clash'" in m for m in messages)
    assert found["word-tagging"].plugin == "first" and found["image-classification"].plugin == "zoo.tasks.builtin"
    monkeypatch.setenv("ZOO_STRICT_PLUGINS", "1")
    from zoo.plugins import default_plugin_manager

    default_plugin_manager.cache_clear()
    with pytest.raises(PluginError, match="is registered by both"):
        tasks()
    assert issubclass(DuplicateNameError, zoo.RegistryError)


def test_a_data_format_naming_an_unregistered_task_is_refused_when_read(tmp_path, monkeypatch):
    site = tmp_path / "site"
    write_distribution(site, "zoo-audio", "zoo_audio", """
    from zoo.data import DataFormat
    import zoo

    @zoo.hookimpl
    def register_data_formats(register):
        register(DataFormat(name="wav-folder", task="audio-captioning", detect="zoo_audio:detect", load="zoo_audio:load"))

    def detect(path):
        return False
    """, entry_name="audio")
    monkeypatch.syspath_prepend(str(site))
    from zoo.data import read_data
    from zoo.tasks import UnknownTaskError

    with pytest.raises(UnknownTaskError, match="data format 'wav-folder' \\(audio\\) names task 'audio-captioning'"):
        read_data(tmp_path, "wav-folder")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"output": ("classes",)}, "output must name its dimensions, batch first"),
        ({"decode": "no_colon"}, "decode must be 'module:function'"),
        ({"name": "two words"}, "task name 'two words' must be a plain name"),
        ({"blank": -1}, "blank must be a class index"),
    ],
)
def test_a_bad_task_spec_is_refused(fields, message):
    spec = {"name": "t", "output": ("batch", "classes"), "decode": "m:d", "columns": ("X",), "rows": "m:r", "metrics": "m:M"}
    with pytest.raises(zoo.RegistryError, match=message):
        zoo.TaskSpec(**{**spec, **fields})


# -- the conformance kit checks a plugin's tasks ---------------------------------------------------
def test_the_example_tagger_passes_the_kit_task_checks_included(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    from zoo.testing import plugin_checks

    checks = plugin_checks("zoo_tagger_example")
    assert {str(c) for c in checks if c.name == "task"} == {"task[gru-tagger]", "task[step-tagging]"}
    for check in checks:
        if check.name in ("task", "forward", "head", "round_trip"):
            check.run()


def broken_tagger(tmp_path, monkeypatch, package: str, file: str, old: str, new: str) -> str:
    """A copy of the example tagger as `package`, with `old` replaced by `new` in `file`; importable."""
    folder = tmp_path / package
    folder.mkdir()
    for source in (EXAMPLE / "zoo_tagger_example").glob("*.py"):
        text = source.read_text().replace("zoo_tagger_example", package)
        if source.name == file:
            assert old in text, f"{file} no longer holds {old!r}: update this test"
            text = text.replace(old, new)
        (folder / source.name).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    return package


@pytest.mark.parametrize(
    ("case", "file", "old", "new", "expected"),
    [
        ("unregistered", "__init__.py", 'tasks=("step-tagging",)', 'tasks=("pos-tagging",)',
         r"check 'task' failed for architecture 'gru-tagger' \(plugin zoo_kit_unregistered\): gru-tagger names task "
         r"'pos-tagging', which no installed plugin registers"),
        ("one_dict", "task.py", "    return [\n        {\n            \"tags\"", "    return {\"all\": 1} or [\n        {\n            \"tags\"",
         r"check 'task' failed for architecture 'gru-tagger' \(plugin zoo_kit_one_dict\): decode gave dict for a batch of 2"),
        ("missing_metrics", "__init__.py", 'metrics="zoo_kit_missing_metrics.task:TagAccuracy"', 'metrics="zoo_kit_missing_metrics.task:Nothing"',
         r"check 'task' failed for task 'step-tagging' \(plugin zoo_kit_missing_metrics\): task 'step-tagging' "
         r"\(zoo_kit_missing_metrics\): 'zoo_kit_missing_metrics.task:Nothing' cannot be imported"),
        ("missing_report", "__init__.py", 'reads="texts", description', 'reads="texts", report="zoo_kit_missing_report.task:report", description',
         r"check 'task' failed for task 'step-tagging' \(plugin zoo_kit_missing_report\): task 'step-tagging' "
         r"\(zoo_kit_missing_report\): 'zoo_kit_missing_report.task:report' cannot be imported"),
    ],
)
def test_the_kit_names_a_broken_task(tmp_path, monkeypatch, case, file, old, new, expected):
    from zoo.testing import ConformanceError, plugin_checks

    package = broken_tagger(tmp_path, monkeypatch, f"zoo_kit_{case}", file, old, new)
    checks = [c for c in plugin_checks(package) if c.name == "task"]
    failures = []
    for check in checks:
        try:
            check.run()
        except ConformanceError as exc:
            failures.append(str(exc))
    assert len(failures) == 1 and re.search(expected, failures[0]), failures


# -- hostile uses of a plugin task -----------------------------------------------------------------
def test_predict_refuses_output_files_and_generation_for_a_plugin_task(tagger):
    from click.testing import CliRunner

    from zoo.cli import cli

    runner = CliRunner()
    expected = {
        "--output": "Error: --output writes image predictions, and gru-tagger reads text (drop --output: texts' answers are printed)\n",
        "--generate": "Error: --generate needs a language model; gru-tagger is not one: it does step-tagging "
                      "(drop --generate: its answers are printed)\n",
    }
    for extra in (["--output", "tags.csv"], ["--generate", "5"]):
        result = runner.invoke(cli, ["predict", "gru-tagger", "the cat sees a dog", *extra])
        assert (result.exit_code, result.stderr) == ({"--output": 1, "--generate": 2}[extra[0]], expected[extra[0]])


def test_a_decode_that_does_not_give_one_prediction_per_input_is_named(tagger, tmp_path, monkeypatch):
    from zoo.predict.decoded import predict_task

    package = broken_tagger(tmp_path, monkeypatch, "zoo_two_per_input", "task.py", "        for row, probs in zip(best, probabilities)\n",
                            "        for row, probs in zip(best, probabilities)\n        for _ in range(2)\n")
    spec = zoo.TaskSpec(name="two-per-input", output=("batch", "time", "classes"), decode=f"{package}.task:decode",
                        columns=("TAGS",), rows=f"{package}.task:rows", metrics=f"{package}.task:TagAccuracy",
                        prepare=f"{package}.task:prepare", plugin="twice")
    with pytest.raises(zoo.ArgumentError, match=r"task 'two-per-input' \(twice\) decoded one input into 2 predictions"):
        predict_task(zoo.load("gru-tagger"), spec, ["the cat"])


def test_eval_refuses_data_whose_tags_differ_from_the_models(tagger, tmp_path):
    from zoo.modeldir import save_model_dir

    model = zoo.load("gru-tagger")
    model.zoo.labels = ["DET", "NOUN", "VERB"]
    folder = save_model_dir(model, tmp_path / "model")
    other = tmp_path / "other.tags"
    other.write_text("the cat\tD N\na dog\tD N\n")
    with pytest.raises(zoo.DataError, match=r"names its classes 'D', 'N', and .* knows 'DET', 'NOUN', 'VERB'"):
        zoo.evaluate(folder, other)


@pytest.mark.slow
def test_an_export_sidecar_names_the_task_and_whether_decoding_agrees(tmp_path):
    result = zoo.export(zoo.load("lenet5"), tmp_path / "lenet5.onnx")
    assert result.record["task"] == "image-classification" and result.record["parity"]["decoded_match"] is True
    lm = zoo.export(zoo.load("textgenrnn", pretrained=False), tmp_path / "lm.onnx")
    assert lm.record["task"] == "language-modeling"
    assert lm.record["parity"]["decoded_match"] is None  # its output [batch, vocab] scores the next token only, not each step


def test_a_task_alias_that_is_another_tasks_name_is_skipped_naming_both(tmp_path, monkeypatch):
    site = tmp_path / "site"
    write_distribution(site, "zoo-alias", "zoo_alias", """
    import zoo

    @zoo.hookimpl
    def register_tasks(register):
        register(zoo.TaskSpec(name="pixel-labelling", aliases=("image-classification", "segmentation"),
                              output=("batch", "classes", "height", "width"), decode="m:decode", columns=("X",),
                              rows="m:rows", metrics="m:Metrics"))
    """, entry_name="alias")
    monkeypatch.syspath_prepend(str(site))
    from zoo.tasks import get_task, tasks

    with pytest.warns(PluginWarning, match="task alias 'image-classification' of 'pixel-labelling' is already task "
                                           "'image-classification' of plugin 'zoo.tasks.builtin'; alias skipped"):
        found = tasks()
    assert found["pixel-labelling"].aliases == ("segmentation",)
    assert get_task("image-classification").plugin == "zoo.tasks.builtin"
    assert get_task("segmentation").name == "pixel-labelling"


def test_a_config_whose_task_is_no_string_is_refused_by_name(tmp_path):
    from zoo.errors import ModelDirError
    from zoo.modeldir import save_model_dir

    folder = save_model_dir(zoo.load("lenet5"), tmp_path / "model")
    path = folder / "config.json"
    config = json.loads(path.read_text())
    config["zoo"]["task"] = {"module": "os", "function": "system"}  # data names a task by its name only
    path.write_text(json.dumps(config))
    with pytest.raises(ModelDirError, match="field 'task' must be a JSON string"):
        zoo.load(folder)


def test_a_recurrent_tagger_predicts_per_token_and_one_without_a_vocabulary_is_named():
    from zoo.predict.decoded import predict_task
    from zoo.tasks import task_of

    tagger = zoo.load("lstm", task="sequence-tagging", num_classes=3, vocab="lstm-text", hidden_size=8)
    [result] = predict_task(tagger, task_of(tagger), ["abc"])
    assert result["input"] == "abc" and len(result["tags"]) == len(tagger.tokenizer.encode("abc")) == len(result["probabilities"])
    bare = zoo.load("gru", task="sequence-tagging", num_classes=3, vocab_size=20, hidden_size=8)
    with pytest.raises(zoo.ArgumentError, match="gru reads token ids but carries no vocabulary"):
        predict_task(bare, task_of(bare), ["abc"])


def test_augment_is_refused_for_a_plugin_tasks_data_by_its_task(tagger, tmp_path):
    data = write_tags(tmp_path / "train.tags", 10)
    with pytest.raises(zoo.ArgumentError, match=r"--augment applies to images of image classification, and .*train.tags' holds "
                                                r"step-tagging data \(drop --augment\)"):
        zoo.finetune("gru-tagger", data, output=tmp_path / "out", augment=True)


NO_INPUTS = """
    import zoo
    from zoo.data import DataFormat
    from zoo.data.formats import TrainingData

    @zoo.hookimpl
    def register_tasks(register):
        register(zoo.TaskSpec(name="scoring-only", output=("batch", "classes"), decode="zoo.tasks.classification:decode",
                              columns=("RANK", "LABEL", "PROBABILITY"), rows="zoo.tasks.classification:rows",
                              metrics="zoo.tasks.classification:Accuracy"))

    @zoo.hookimpl
    def register_architectures(register):
        register(zoo.ArchSpec(name="scorer", family="mlp", build="zoo_mlp.model:mlp", tasks=("scoring-only",),
                              input=zoo.InputSpec("features", (64,))))

    @zoo.hookimpl
    def register_data_formats(register):
        register(DataFormat(name="scores", task="scoring-only", detect="zoo_scoring:detect", load="zoo_scoring:load"))

    def detect(path):
        return path.suffix == ".scores"

    def load(path, options):
        return TrainingData("scores", "scoring-only", path, ["a", "b"], [(0, 0), (1, 1)], [(2, 0)])
"""


def test_a_task_without_inputs_cannot_be_fine_tuned_and_says_so(tmp_path, monkeypatch):
    site = tmp_path / "site"
    write_distribution(site, "zoo-scoring", "zoo_scoring", NO_INPUTS, entry_name="scoring")
    monkeypatch.syspath_prepend(str(site))
    data = tmp_path / "x.scores"
    data.write_text("")
    with pytest.raises(zoo.ArgumentError, match="task 'scoring-only' cannot be fine-tuned: it says nothing of its inputs"):
        zoo.finetune("scorer", data, output=tmp_path / "out", epochs=1)
    with pytest.raises(zoo.DataError, match=r"task 'scoring-only' \(scoring\) cannot be evaluated: it says nothing of its inputs"):
        zoo.evaluate(zoo.load("scorer"), data)
    assert not (tmp_path / "out").exists()


def test_fine_tuning_an_architecture_whose_task_nobody_registers_is_refused_before_the_data_is_read(tmp_path, monkeypatch):
    site = tmp_path / "site"
    write_distribution(site, "zoo-captioner", "zoo_captioner", """
    import zoo

    @zoo.hookimpl
    def register_architectures(register):
        register(zoo.ArchSpec(name="captioner", family="mlp", build="zoo_mlp.model:mlp", tasks=("audio-captioning",),
                              input=zoo.InputSpec("features", (64,))))
    """, entry_name="captioner")
    monkeypatch.syspath_prepend(str(site))
    from zoo.tasks import UnknownTaskError

    with pytest.raises(UnknownTaskError, match="captioner names task 'audio-captioning', which no installed plugin registers"):
        zoo.finetune("captioner", tmp_path / "no-such-data", output=tmp_path / "out")
