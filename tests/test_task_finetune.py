"""`zoo finetune` and `zoo eval` dispatch on the data's and the model's TaskSpec alone: a plugin task's own
`report` and `evaluate` are used, a task whose metrics can `merge` trains on several ranks with the metrics
of one process, one whose metrics cannot is refused before any training, and a model whose task no
plugin registers is refused in one line before its weights load or its data is read."""
from __future__ import annotations

import json
import os
import re
import sys
import textwrap

import pytest

import zoo
from helpers import run_zoo
from test_plugins import write_distribution
from test_tasks import tagger, write_tags  # noqa: F401 (tagger: the fixture)

# A plugin with a per-step task of its own, reusing the example tagger's model and code, whose metrics
# have no merge, and which names its own `report` (reading the evaluation before training) and `evaluate`.
COUNTED = """
    import zoo
    from zoo.data import DataFormat

    TAGGER = "zoo_tagger_example"


    @zoo.hookimpl
    def register_tasks(register):
        register(zoo.TaskSpec(
            name="counted-tagging", output=("batch", "time", "classes"), decode=f"{TAGGER}.task:decode", columns=("TAGS",),
            rows=f"{TAGGER}.task:rows", metrics="zoo_counted.code:Count", inputs=f"{TAGGER}.task:inputs",
            prepare=f"{TAGGER}.task:prepare", reads="texts", report="zoo_counted.code:report",
            evaluate="zoo_counted.code:evaluate",
        ))


    @zoo.hookimpl
    def register_architectures(register):
        register(zoo.ArchSpec(
            name="gru-counted", family="rnn", build=f"{TAGGER}.model:gru_tagger", tasks=("counted-tagging",),
            input=zoo.InputSpec("tokens", vocab_size=97), defaults={"num_classes": 3},
        ))
        register(zoo.ArchSpec(
            name="gru-orphan", family="rnn", build=f"{TAGGER}.model:gru_tagger", tasks=("pos-tagging",),
            input=zoo.InputSpec("tokens", vocab_size=97), defaults={"num_classes": 3},
        ))


    @zoo.hookimpl
    def register_data_formats(register):
        register(DataFormat(name="counted-lines", task="counted-tagging", detect="zoo_counted.code:never",
                            load="zoo_counted.code:load"))
"""
COUNTED_CODE = """
    from zoo.finetuning.report import needs


    class Count:
        '''Tokens scored; no merge.'''

        def __init__(self, labels=None):
            self.tokens = 0

        def update(self, outputs, targets):
            self.tokens += int((targets != -100).sum())

        def result(self):
            return {"tokens": self.tokens}


    def never(path):
        return False


    def load(path, options):
        from zoo_tagger_example.data import load as tags

        data = tags(path, options)
        data.task = "counted-tagging"
        return data


    @needs(before=True)
    def report(evaluation, before, data, inputs):
        return {"val_loss": evaluation.loss, "val_loss_before": before.loss, "val_sentences": len(data.val)}


    def evaluate(model, samples, context):
        from zoo.evaluating.tasks import run_task

        report = run_task(model, samples, context)
        report.metrics["tokens_per_sentence"] = report.metrics["tokens"] / report.n
        return report
"""


@pytest.fixture
def counted(tagger, tmp_path, monkeypatch):  # noqa: F811
    """The counted-tagging plugin installed beside the example tagger; the env for `zoo`."""
    site = tmp_path / "counted-site"
    write_distribution(site, "zoo-counted", "zoo_counted", COUNTED)
    (site / "zoo_counted" / "code.py").write_text(textwrap.dedent(COUNTED_CODE))
    monkeypatch.syspath_prepend(str(site))
    for name in [n for n in sys.modules if n.split(".")[0] == "zoo_counted"]:  # an earlier test's copy
        monkeypatch.delitem(sys.modules, name)
    return {"PYTHONPATH": os.pathsep.join([str(site), tagger["PYTHONPATH"]])}


def last_line(result) -> str:
    return result.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_a_plugin_tasks_own_report_and_evaluate_are_what_finetune_records_and_eval_returns(counted, tmp_path):
    data = write_tags(tmp_path / "train.tags", 50)
    out = tmp_path / "out"
    tuned = run_zoo("finetune", "gru-counted", "--data", str(data), "--data-format", "counted-lines", "-o", str(out),
                    "--epochs", "2", "--lr", "0.03", "--json", env=counted)
    assert tuned.returncode == 0, tuned.stderr
    summary = json.loads(tuned.stdout)
    # The report's dict, with the loss before training it asked for: higher than after two epochs.
    assert summary["val_sentences"] == 10 and summary["val_loss_before"] > summary["val_loss"] > 0
    assert "tokens" not in summary  # the report, not the metrics accumulator, says what is recorded
    assert json.loads((out / "config.json").read_text())["zoo"]["metrics"]["val_loss_before"] == summary["val_loss_before"]

    evaluated = run_zoo("eval", str(out), "--data", str(data), "--data-format", "counted-lines", "--split", "val", "--json",
                        env=counted)
    assert evaluated.returncode == 0, evaluated.stderr
    report = json.loads(evaluated.stdout)
    assert report["task"] == "counted-tagging" and report["n"] == 10
    assert report["metrics"] == {"tokens": 50, "tokens_per_sentence": 5.0}  # the task's own evaluate ran
    assert report["loss"] == pytest.approx(summary["val_loss"], rel=1e-5)


@pytest.mark.slow
def test_nproc_trains_a_task_whose_metrics_merge_as_one_process_does(tagger, tmp_path):  # noqa: F811
    data = write_tags(tmp_path / "train.tags", 150, seed=3)
    args = ["--data", str(data), "--epochs", "1", "--batch-size", "8", "--lr", "0.01", "--json"]
    one = run_zoo("finetune", "gru-tagger", *args, "-o", str(tmp_path / "one"), env=tagger)
    two = run_zoo("finetune", "gru-tagger", *args, "-o", str(tmp_path / "two"), "--nproc", "2", env=tagger)
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    single, ranks = json.loads(one.stdout), json.loads(two.stdout)
    # One epoch leaves the tagger part-trained: its sentence accuracy is neither 0 nor 1, so half of the
    # 30 validation sentences (one rank's share) would score otherwise than all of them.
    assert 0 < single["sentence_accuracy"] < 1
    for name in ("tag_accuracy", "sentence_accuracy"):
        assert ranks[name] == pytest.approx(single[name], abs=1e-9), name
    assert ranks["val_loss"] == pytest.approx(single["val_loss"], rel=1e-4)
    # And they are the whole validation set's: one process evaluating the two-rank model says the same.
    evaluated = run_zoo("eval", str(tmp_path / "two"), "--data", str(data), "--split", "val", "--json", env=tagger)
    assert evaluated.returncode == 0, evaluated.stderr
    report = json.loads(evaluated.stdout)
    assert report["n"] == 30
    assert report["metrics"]["sentence_accuracy"] == pytest.approx(ranks["sentence_accuracy"], abs=1e-9)
    assert report["metrics"]["tag_accuracy"] == pytest.approx(ranks["tag_accuracy"], abs=1e-9)


NO_MERGE = (
    None,
    r"have no merge\(other\) to add up what each rank scored \(drop --nproc to train it in one process, or give the "
    r"accumulator a merge method \(docs/writing_plugins\.md\)\)",
)
# A merge, but a lambda in the accumulator: pickle cannot send it to the other ranks (an AttributeError
# after the first epoch before it was checked up front).
UNPICKLABLE = (
    "        self.tokens = 0\n        self.weigh = lambda n: n\n\n    def merge(self, other):\n        self.tokens += other.tokens\n",
    r"cannot travel between the ranks \(\w+Error: .*lambda.*\) \(drop --nproc to train it in "
    r"one process, or keep only plain values \(numbers, lists, tensors\) in the accumulator \(docs/writing_plugins\.md\)\)",
)


@pytest.mark.slow
@pytest.mark.parametrize("accumulator, refusal", [NO_MERGE, UNPICKLABLE], ids=["no-merge", "unpicklable"])
def test_nproc_refuses_a_task_whose_metrics_cannot_merge_before_any_training(counted, tmp_path, accumulator, refusal):
    """counted-tagging names a `report`: its accumulator is not used by fine-tuning, so --nproc is fine;
    the same task without a report records its metrics, which would then be one rank's share."""
    site = tmp_path / "counted-site" / "zoo_counted"
    (site / "__init__.py").write_text((site / "__init__.py").read_text().replace(' report="zoo_counted.code:report",', ""))
    if accumulator:
        (site / "code.py").write_text((site / "code.py").read_text().replace("        self.tokens = 0\n", accumulator, 1))
    data = write_tags(tmp_path / "train.tags", 40)
    out = tmp_path / "out"
    result = run_zoo("finetune", "gru-counted", "--data", str(data), "--data-format", "counted-lines", "-o", str(out),
                     "--nproc", "2", env=counted)
    assert result.returncode == 1 and result.stdout == ""
    assert re.fullmatch(
        r"Error: rank [01] of 2 failed: task 'counted-tagging' \(zoo-counted\) cannot train on several ranks: its metrics "
        r"\(zoo_counted\.code:Count\) " + refusal,
        last_line(result),
    ), result.stderr
    assert not out.exists() and not (tmp_path / ".out.partial").exists()  # nothing trained, no checkpoint


@pytest.mark.slow
def test_eval_and_finetune_of_a_model_of_an_unregistered_task_is_one_line_before_weights_or_data(counted, tmp_path):
    from zoo.modeldir import save_model_dir
    from zoo.tasks import tasks

    registered = ", ".join(sorted(tasks()))
    missing = str(tmp_path / "no-such-data")
    for command in (("eval", "gru-orphan", "--data", missing), ("finetune", "gru-orphan", "--data", missing)):
        result = run_zoo(*command, env=counted)
        assert (result.returncode, result.stderr.count("\n")) == (1, 1), result.stderr
        line = last_line(result)
        assert line.startswith(
            f"Error: gru-orphan names task 'pos-tagging', which no installed plugin registers; registered tasks: {registered} ("
        ), command
        assert line.endswith("install the plugin that provides the task (`zoo plugins` lists what is loaded))")
    folder = tmp_path / "model"
    save_model_dir(zoo.load("lenet5"), folder)
    config = json.loads((folder / "config.json").read_text())
    config["zoo"]["task"] = "audio-captioning"
    (folder / "config.json").write_text(json.dumps(config))
    for weights in folder.glob("*.safetensors"):
        weights.unlink()  # loading them first would be another error
    for command in (("eval", str(folder), "--data", missing), ("eval", str(folder), "--data", missing, "--runtime", "onnx"),
                    ("finetune", str(folder), "--data", missing)):
        result = run_zoo(*command, env=counted)
        assert (result.returncode, result.stderr.count("\n")) == (1, 1), result.stderr
        assert last_line(result).startswith(f"Error: {folder} names task 'audio-captioning', which no installed plugin "
                                            f"registers; registered tasks: {registered} "), command


def test_metrics_merged_from_two_halves_equal_one_accumulator_over_all(tagger):  # noqa: F811
    """What `--nproc` does with each rank's metrics (`merge_over_ranks`), for each task's accumulator."""
    import torch
    from zoo_ocr.task import Metrics
    from zoo_tagger_example.task import TagAccuracy

    from zoo.tasks.classification import Accuracy

    generator = torch.Generator().manual_seed(0)
    steps = torch.randn(6, 5, 3, generator=generator)
    tags = torch.randint(0, 3, (6, 5), generator=generator)
    tags[0, 3:] = -100  # padding: not scored
    labels = ["", "a", "b", "c"]
    texts = ["ab", "c", "abc", "ba", "cab", "a"]
    lines = torch.randn(6, 7, 4, generator=generator)

    def ocr_targets(rows: slice) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        chosen = texts[rows]
        flat = torch.tensor([labels.index(c) for text in chosen for c in text])
        return flat, torch.tensor([len(t) for t in chosen]), torch.full((len(chosen),), 7)

    cases = [(Accuracy, steps, lambda rows: tags[rows]), (TagAccuracy, steps, lambda rows: tags[rows]),
             (Metrics, lines, ocr_targets)]
    for make, outputs, targets in cases:
        whole, first, second = make(labels), make(labels), make(labels)
        whole.update(outputs, targets(slice(0, 6)))
        first.update(outputs[:2], targets(slice(0, 2)))
        second.update(outputs[2:], targets(slice(2, 6)))
        assert first.result() != whole.result(), make  # half of the batch scores otherwise
        first.merge(second)
        assert first.result() == whole.result(), make


def test_eval_refuses_a_window_sample_for_a_plugin_task_as_for_a_classifier(tagger, tmp_path):  # noqa: F811
    data = write_tags(tmp_path / "train.tags", 10)
    with pytest.raises(zoo.ArgumentError, match=r"^max_windows applies to language models \(drop it: gru-tagger is a "
                                                r"model of task step-tagging\)$"):
        zoo.evaluate("gru-tagger", data, max_windows=5)
    report = zoo.evaluate("gru-tagger", data)  # and without it, the task's own metrics over every sentence
    assert report.task == "step-tagging" and report.n == 10 and set(report.metrics) == {"tag_accuracy", "sentence_accuracy"}


def test_one_class_data_re_heads_only_a_model_whose_architecture_classifies(tagger, tmp_path):  # noqa: F811
    texts = tmp_path / "texts"
    for label in ("a", "b"):
        (texts / label).mkdir(parents=True)
        for i in range(3):
            (texts / label / f"{i}.txt").write_text(f"some text {label} {i}")
    with pytest.raises(zoo.ArgumentError, match=r"^gru-tagger does step-tagging, and .*texts' holds text-classification data"):
        zoo.finetune("gru-tagger", texts, output=tmp_path / "o", epochs=1)
    built_for_tags = zoo.load("gru", task="sequence-tagging", num_classes=3, vocab_size=20, hidden_size=8)
    with pytest.raises(zoo.ArgumentError, match=r"does sequence-tagging, and .*texts' holds text-classification data"):
        zoo.finetune(built_for_tags, texts, output=tmp_path / "o", epochs=1)    # (lstm-text, whose architecture names sequence-classification beside language-modeling, is re-headed:
    # tests/test_eval.py fine-tunes it on the lines of two plays.)


@pytest.mark.slow
def test_a_plugin_report_or_evaluate_of_the_wrong_type_is_one_error_naming_it(counted, tmp_path):
    code = tmp_path / "counted-site" / "zoo_counted" / "code.py"
    code.write_text(code.read_text().replace('return {"val_loss"', 'return [{"val_loss"').replace(
        '"val_sentences": len(data.val)}', '"val_sentences": len(data.val)}]').replace("return report\n", "return report.metrics\n"))
    data = write_tags(tmp_path / "train.tags", 10)
    with pytest.raises(zoo.PluginError, match=r"^task 'counted-tagging' \(zoo-counted\): its report zoo_counted\.code:report "
                                              r"returned a list, not a dict of metrics \(report it to the plugin's authors"):
        zoo.finetune("gru-counted", data, data_format="counted-lines", output=tmp_path / "o", epochs=1)
    with pytest.raises(zoo.PluginError, match=r"^task 'counted-tagging' \(zoo-counted\): its evaluate zoo_counted\.code:evaluate "
                                              r"returned a dict, not a zoo\.evaluating\.EvaluationReport"):
        zoo.evaluate("gru-counted", data, data_format="counted-lines")
