"""Text recognition as a task (zoo_ocr registers it): the text-lines data format and what it refuses,
CTC loss with each line's own length, CER and word accuracy, and english-ocr through `zoo predict`,
`zoo eval`, `zoo export` and `zoo finetune`."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

import zoo
from zoo.data.formats import ReadOptions, find_format, read_data
from zoo.errors import DataError
from zoo_ocr import ENGLISH_G2_LABELS
from zoo_ocr.model import crnn, time_steps
from zoo_ocr.render import random_lines, write_lines
from zoo_ocr.scoring import TextScore, common_words, edit_distance
from zoo_ocr.task import Metrics, collate, decode, loss

from helpers import run_zoo

FONTS = Path("/usr/share/fonts/truetype/dejavu")
WORDS = "river stone light paper green house water market field table window garden".split()


def font(name: str = "DejaVuSans") -> Path:
    path = FONTS / f"{name}.ttf"
    if not path.is_file():
        pytest.skip(f"{path} is not installed (fonts-dejavu-core)")
    return path


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A ZOO_HOME of the module's own: english-ocr is converted into it once."""
    return str(tmp_path_factory.mktemp("ocr-task-home"))


@pytest.fixture(scope="module")
def clean_lines(tmp_path_factory) -> Path:
    """8 lines of words and numbers in DejaVu Sans, with their labels.csv."""
    return write_lines(tmp_path_factory.mktemp("clean") / "lines", random_lines(WORDS, 8, seed=1), font())


def zoo_cli(home: str, *args: str):
    return run_zoo(*args, env={"ZOO_HOME": home, "OMP_NUM_THREADS": "2"})


def error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    return lines[0]


# --- the text-lines format -------------------------------------------------------------------


def test_a_folder_with_labels_csv_or_labels_txt_is_read_as_text_lines(clean_lines, tmp_path):
    data = read_data(clean_lines, options=ReadOptions(val_split=0.25, seed=0))
    assert (data.format, data.task, data.classes) == ("text-lines", "text-recognition", [])
    assert len(data.train) == 6 and len(data.val) == 2
    texts = dict(row.split(",", 1) for row in (clean_lines / "labels.csv").read_text().splitlines()[1:])
    for path, text in [*data.train, *data.val]:
        assert texts[Path(path).name] == text and Path(path).is_file()
    # the same lines as labels.txt (file<TAB>text): a folder of .txt a corpus would take is still text lines
    tab = tmp_path / "tab"
    tab.mkdir()
    for name, text in texts.items():
        (tab / name).write_bytes((clean_lines / name).read_bytes())
    # CRLF line ends and spaces around a transcript, as label files come: the text is what lies between
    (tab / "labels.txt").write_text("".join(f"{n}\t {t}  \r\n" for n, t in texts.items()), encoding="utf-8")
    assert find_format(tab).name == "text-lines"
    again = read_data(tab, options=ReadOptions(val_split=0.25, seed=0))
    assert sorted(again.train + again.val, key=str) == sorted(
        [(str(tab / Path(p).name), t) for p, t in data.train + data.val], key=str
    )


def lines_folder(tmp_path: Path, labels: str, name: str = "labels.csv", images=("a.png", "b.png")) -> Path:
    folder = tmp_path / "lines"
    write_lines(folder, ["river", "stone"], font())
    for i, image in enumerate(images):
        (folder / f"line-{i:05d}.png").rename(folder / image)
    (folder / "labels.csv").unlink()
    (folder / name).write_text(labels, encoding="utf-8")
    return folder


@pytest.mark.parametrize(
    "labels, name, message",
    [
        ("file,text\na.png,river\nc.png,stone\n", "labels.csv", "labels.csv:3: 'c.png' does not exist"),
        ("a.png,river\nb.png,\n", "labels.csv", "labels.csv:2: 'b.png' has an empty transcript"),
        ("a.png\triver\nb.png\t   \n", "labels.txt", "labels.txt:2: 'b.png' has an empty transcript"),
        ("a.png,river\n/etc/passwd,stone\n", "labels.csv", "'/etc/passwd' is not a file inside"),
        ("a.png,river\n../lines/b.png,stone\n", "labels.csv", "'../lines/b.png' is not a file inside"),
        ("a.png,river\nb.png\n", "labels.csv", "labels.csv:2: need file,text"),
        ("a.png river\n", "labels.txt", "labels.txt:1: need file<TAB>text"),
        ("a.png,river\n", "labels.csv", "names 1 line(s)"),
    ],
)
def test_bad_label_files_are_refused_naming_the_row(tmp_path, labels, name, message):
    folder = lines_folder(tmp_path, labels, name)
    with pytest.raises(DataError) as caught:
        read_data(folder)
    assert message in str(caught.value) and caught.value.remedy


def test_a_link_out_of_the_folder_and_two_label_files_are_refused(tmp_path):
    outside = tmp_path / "outside.png"
    folder = lines_folder(tmp_path, "a.png,river\nb.png,stone\n")
    outside.write_bytes((folder / "a.png").read_bytes())
    os.symlink(outside, folder / "link.png")
    (folder / "labels.csv").write_text("a.png,river\nlink.png,stone\n")
    with pytest.raises(DataError, match="'link.png' is not a file inside"):
        read_data(folder)
    (folder / "labels.csv").write_text("a.png,river\nb.png,stone\n")
    (folder / "labels.txt").write_text("a.png\triver\nb.png\tstone\n")
    with pytest.raises(DataError, match="labels.csv and labels.txt") as caught:
        read_data(folder)
    assert "keep one label file" in caught.value.remedy


def test_characters_the_model_cannot_write_are_named_with_the_remedy(tmp_path, home):
    folder = lines_folder(tmp_path, "file,text\na.png,café\nb.png,£5 ½\n")
    line = error_line(zoo_cli(home, "eval", "english-ocr", "--data", str(folder)))
    assert "3 character(s) crnn.english_g2 cannot write:" in line
    assert all(named in line for named in ("'é' (in a.png)", "'£' (in b.png)", "'½' (in b.png)"))
    assert "replace or remove them in the label file" in line


# --- scoring, loss, decoding -----------------------------------------------------------------


def test_character_error_rate_and_word_accuracy_count_edits_and_words_in_order():
    assert edit_distance("kitten", "sitting") == 3 and edit_distance("", "abc") == 3
    assert common_words("the stone bridge".split(), "the stone bridge".split()) == 3
    assert common_words("the stone bridge".split(), "stone the bridge".split()) == 2
    score = TextScore()
    score.add("hello world", "helo world")  # one deletion in 11 characters; 1 of 2 words
    score.add("river 42", "river 42")
    assert score.result() == pytest.approx({"cer": 1 / 19, "word_accuracy": 3 / 4, "line_accuracy": 1 / 2})
    assert all(v != v for v in TextScore().result().values())  # nothing scored: NaN, not 0 or 1


def test_time_steps_follow_the_width_as_the_model_computes_them():
    model = crnn(channels=16, hidden_size=8, num_classes=5).eval()
    with torch.inference_mode():
        for width in (8, 9, 31, 64, 257):
            assert model(torch.zeros(1, 1, 64, width)).shape[1] == time_steps(width)


def test_ctc_loss_reads_each_line_up_to_its_own_width():
    torch.manual_seed(0)
    lines = [torch.randn(1, 64, 200), torch.randn(1, 64, 64)]
    batch, targets = collate([(lines[0], [1, 2, 3, 3]), (lines[1], [2, 4])])
    assert batch.shape == (2, 1, 64, 200) and targets[2].tolist() == [time_steps(200), time_steps(64)]
    outputs = torch.randn(2, time_steps(200), 5, requires_grad=True)
    summed, count = loss(outputs, targets)
    assert count == 6 and torch.isfinite(summed)
    changed = outputs.detach().clone()
    changed[1, time_steps(64):] = torch.randn_like(changed[1, time_steps(64):]) * 10  # the short line's padding
    assert loss(changed, targets)[0].item() == pytest.approx(summed.item(), rel=1e-6)
    summed.backward()
    assert outputs.grad[1, time_steps(64):].abs().max() == 0
    # a transcript longer than its line's columns can hold adds nothing instead of infinity
    narrow = collate([(torch.randn(1, 64, 12), [1, 2, 3, 4])])[1]
    assert loss(torch.randn(1, 2, 5), narrow)[0].item() == 0.0


def test_decode_gives_each_characters_probability_and_metrics_skip_padding():
    labels = ["[blank]", "a", "b"]
    path = [1, 0, 2, 2, 0, 1, 1]  # "aba", then padding columns the metrics must not read
    scores = torch.full((1, len(path), 3), -10.0)
    scores[0, torch.arange(len(path)), torch.tensor(path)] = 10.0
    (decoded,) = decode(scores, labels)
    assert decoded["text"] == "aba" and len(decoded["confidences"]) == 3
    assert decoded["confidence"] == min(decoded["confidences"]) > 0.99
    metrics = Metrics(labels)
    targets = (torch.tensor([1, 2]), torch.tensor([2]), torch.tensor([4]))  # "ab" over 4 columns
    metrics.update(scores, targets)
    assert metrics.result() == {"cer": 0.0, "word_accuracy": 1.0, "line_accuracy": 1.0}


# --- english-ocr through the CLI -------------------------------------------------------------


def test_zoo_predict_prints_the_text_of_a_line_and_json_its_confidences(clean_lines, home):
    texts = [row.split(",", 1)[1] for row in (clean_lines / "labels.csv").read_text().splitlines()[1:3]]
    images = [str(clean_lines / f"line-{i:05d}.png") for i in range(2)]
    table = zoo_cli(home, "predict", "english-ocr", *images)
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["INPUT", "TEXT", "CONFIDENCE"]
    assert [row.split(None, 1)[1].rsplit(None, 1)[0] for row in rows] == texts
    result = zoo_cli(home, "predict", "english-ocr", images[0], "--json")
    (got,) = json.loads(result.stdout)
    assert got["input"] == images[0] and got["text"] == texts[0]
    assert len(got["confidences"]) == len(texts[0]) and all(0.5 < p <= 1 for p in got["confidences"])
    # --top-k 5 (the default): the five most probable texts by beam search, the clean line's reading first
    alternatives = got["alternatives"]
    assert len(alternatives) == 5 and alternatives[0]["text"] == texts[0]
    probabilities = [a["probability"] for a in alternatives]
    assert probabilities == sorted(probabilities, reverse=True) and 0.5 < probabilities[0] and sum(probabilities) <= 1 + 1e-6
    assert len({a["text"] for a in alternatives}) == 5


@pytest.mark.slow
def test_zoo_eval_reports_cer_and_word_accuracy(clean_lines, home):
    result = zoo_cli(home, "eval", "english-ocr", "--data", str(clean_lines), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["task"] == "text-recognition" and report["n"] == 8
    assert report["metrics"]["cer"] < 0.02 and report["metrics"]["word_accuracy"] > 0.95


@pytest.mark.slow
def test_zoo_export_onnx_passes_parity_and_onnx_runtime_reads_the_same_text(clean_lines, home, tmp_path, monkeypatch):
    out = tmp_path / "ocr.onnx"
    result = zoo_cli(home, "export", "english-ocr", "--format", "onnx", "-o", str(out), "--json")
    assert result.returncode == 0, result.stderr
    sidecar = json.loads(Path(f"{out}.json").read_text())
    assert sidecar["task"] == "text-recognition"
    parity = sidecar["parity"]
    assert parity["passed"] and parity["decoded_match"] is True
    assert {8, 256, 2048} <= {shape[-1] for shape in parity["shapes"]}  # the width is dynamic: three widths checked
    import onnxruntime

    from zoo.data.image_files import open_image
    from zoo_ocr.lines import text_line_transform

    from zoo.registry import default_registry

    monkeypatch.setenv("ZOO_HOME", home)
    default_registry.cache_clear()
    model = zoo.load("english-ocr")
    default_registry.cache_clear()
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    transform = text_line_transform(model.zoo.preprocess)
    for i in range(3):
        batch = transform(open_image(clean_lines / f"line-{i:05d}.png", 1))[None]
        (got,) = session.run(None, {session.get_inputs()[0].name: batch.numpy()})
        with torch.inference_mode():
            want = decode(model(batch), model.zoo.labels)[0]["text"]
        assert decode(torch.from_numpy(got), model.zoo.labels)[0]["text"] == want


def poor_font() -> Path:
    """Computer Modern Italic from the matplotlib package: english-ocr reads it worse than DejaVu."""
    matplotlib = pytest.importorskip("matplotlib")
    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "cmti10.ttf"


@pytest.mark.slow
def test_finetuning_on_a_poor_font_lowers_the_cer_on_lines_of_words_it_never_saw(home, tmp_path):
    words = sorted(WORDS + "quick brown jumps over lazy dog mother father sister brother school teacher".split())
    train_words, test_words = words[::2], words[1::2]  # no word of the held-out lines is in the training lines
    train = write_lines(tmp_path / "train", random_lines(train_words, 40, seed=2), poor_font())
    test = write_lines(tmp_path / "test", random_lines(test_words, 16, seed=3), poor_font())
    before = zoo_cli(home, "eval", "english-ocr", "--data", str(test), "--json")
    assert before.returncode == 0, before.stderr
    out = tmp_path / "tuned"
    tuned = zoo_cli(
        home, "finetune", "english-ocr", "--data", str(train), "--strategy", "full", "--epochs", "2",
        "--lr", "3e-4", "--batch-size", "8", "--val-split", "0.1", "-o", str(out), "--json",
    )
    assert tuned.returncode == 0, tuned.stderr
    summary = json.loads(tuned.stdout)
    assert {"val_loss", "cer", "word_accuracy"} <= set(summary)  # the task's metrics of the held-out tenth
    config = json.loads((out / "config.json").read_text())["zoo"]
    assert config["task"] == "text-recognition" and config["labels"] == list(ENGLISH_G2_LABELS)  # the charset stays
    after = zoo_cli(home, "eval", str(out), "--data", str(test), "--json")
    assert after.returncode == 0, after.stderr
    cer_before, cer_after = (json.loads(r.stdout)["metrics"]["cer"] for r in (before, after))
    print(f"\nheld-out CER on cmti10 lines: {cer_before:.4f} before, {cer_after:.4f} after fine-tuning")
    assert cer_before > 0 and cer_after < cer_before


@pytest.mark.slow
def test_a_finetuned_recogniser_exports_and_onnx_runtime_predicts_and_scores_it_alike(clean_lines, home, tmp_path):
    out = tmp_path / "tuned"
    tuned = zoo_cli(home, "finetune", "english-ocr", "--data", str(clean_lines), "--epochs", "1", "-o", str(out), "--quiet")
    assert tuned.returncode == 0, tuned.stderr
    exported = zoo_cli(home, "export", str(out))
    assert exported.returncode == 0 and (out / "model.onnx").is_file(), exported.stderr
    image = str(clean_lines / "line-00003.png")
    eager, onnx = (json.loads(zoo_cli(home, "predict", str(out), image, "--json", *runtime).stdout)[0]
                   for runtime in ((), ("--runtime", "onnx")))
    assert onnx["text"] == eager["text"] == (clean_lines / "labels.csv").read_text().splitlines()[4].split(",", 1)[1]
    assert onnx["confidences"] == pytest.approx(eager["confidences"], abs=1e-4)
    scores = [json.loads(zoo_cli(home, "eval", str(out), "--data", str(clean_lines), "--json", *runtime).stdout)["metrics"]
              for runtime in ((), ("--runtime", "onnx"))]
    assert scores[0] == scores[1] and scores[0]["cer"] < 0.02
