"""The RNN family: options, tasks, padding invariance, learning, text in and out, and bad inputs."""
from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

import zoo
from zoo.cli import cli
from zoo.data.tokenizers import Tokenizer
from zoo.heads import freeze_groups
from zoo.training import clip_grad_norm

CELLS = ("rnn", "lstm", "gru", "rnn-scratch", "lstm-scratch")
TOL = dict(atol=1e-5, rtol=1e-5)


def test_zoo_list_family_rnn_shows_every_cell_and_the_scratch_variants():
    result = CliRunner().invoke(cli, ["list", "--family", "rnn", "--json"])
    assert result.exit_code == 0, result.output
    names = {r["name"] for r in json.loads(result.output)}
    assert {"rnn", "lstm", "gru", "rnn-scratch", "lstm-scratch", "textgenrnn"} <= names


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_default_path_is_torchs_fused_module(cell):
    model = zoo.load(cell, num_layers=2, hidden_size=16)
    assert type(model.rnn) is {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    assert model.rnn.num_layers == 2 and model.rnn.hidden_size == 16 and model.rnn.batch_first


PADDING_CASES = [
    dict(task="language-modeling"),
    dict(task="sequence-tagging", bidirectional=True, num_classes=4),
    dict(task="sequence-classification", pooling="last", bidirectional=True, num_classes=3),
    dict(task="sequence-classification", pooling="mean", num_classes=3),
    dict(task="sequence-classification", pooling="attention", bidirectional=True, num_classes=3),
]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("case", PADDING_CASES, ids=lambda c: "-".join(str(v) for v in c.values()))
def test_padding_does_not_change_a_sequences_result(cell, case):
    torch.manual_seed(0)
    model = zoo.load(cell, vocab_size=20, embed_dim=8, hidden_size=12, num_layers=2, **case).eval()
    short = torch.tensor([[3, 7, 2, 9]])
    batch = torch.tensor([[3, 7, 2, 9, 0, 0, 0], [5, 1, 4, 4, 6, 8, 2]])  # pad id 0 on the right
    alone, padded = model(short), model(batch)
    if case["task"] == "sequence-classification":
        torch.testing.assert_close(padded[0], alone[0], **TOL)
    else:
        torch.testing.assert_close(padded[0, :4], alone[0], **TOL)
    torch.testing.assert_close(padded[1], model(batch[1:])[0], **TOL)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("case", PADDING_CASES, ids=lambda c: "-".join(str(v) for v in c.values()))
def test_padding_on_the_left_does_not_change_a_sequences_result_either(cell, case):
    # lstm-text's tokenizer pads on the left: a model built with its vocabulary gets such batches.
    torch.manual_seed(0)
    model = zoo.load(cell, vocab_size=20, embed_dim=8, hidden_size=12, num_layers=2, **case).eval()
    short = torch.tensor([[3, 7, 2, 9]])
    batch = torch.tensor([[0, 0, 0, 3, 7, 2, 9], [5, 1, 4, 4, 6, 8, 2], [0, 0, 0, 0, 0, 0, 4]])
    padded = model(batch)
    if case["task"] == "sequence-classification":
        torch.testing.assert_close(padded[0], model(short)[0], **TOL)
        torch.testing.assert_close(padded[2], model(batch[2:, -1:])[0], **TOL)
    else:  # every step lines up with its token
        torch.testing.assert_close(padded[0, 3:], model(short)[0], **TOL)
        torch.testing.assert_close(padded[2, 6:], model(batch[2:, -1:])[0], **TOL)
    torch.testing.assert_close(padded[1], model(batch[1:2])[0], **TOL)


def test_texts_batched_by_lstm_texts_tokenizer_get_the_classes_they_get_alone():
    torch.manual_seed(0)
    model = zoo.load("gru", vocab="lstm-text", task="sequence-classification", num_classes=3, embed_dim=16, hidden_size=32).eval()
    texts = ["To be, or not to be", "All", "Now is the winter"]
    ids, _ = model.tokenizer.batch(texts)
    assert int(ids[1, 0]) == model.pad_id  # padded on the left
    with torch.no_grad():
        batched = model(ids)
        for i, text in enumerate(texts):
            torch.testing.assert_close(batched[i], model(model.tokenizer.batch([text])[0])[0], **TOL)


def test_a_row_of_padding_only_is_refused_on_either_side():
    from zoo.errors import ArgumentError

    model = zoo.load("gru", vocab_size=20, task="sequence-classification", num_classes=3)
    for batch in ([[0, 0, 0], [1, 2, 3]], [[1, 2, 3], [0, 0, 0]]):
        with pytest.raises(ArgumentError, match=r"a sequence in the batch is empty \(only padding\)"):
            model(torch.tensor(batch))


def test_one_hot_embedding_has_nothing_to_learn():
    model = zoo.load("lstm", vocab_size=30, embedding="onehot", hidden_size=8)
    assert model.rnn.input_size == 30
    assert [name for name, _ in freeze_groups(model)] == ["rnn.l0", "head"]
    assert model(torch.tensor([[1, 2, 29]])).shape == (1, 3, 30)


def test_freeze_groups_go_from_embedding_through_each_layer_to_the_head():
    model = zoo.load(
        "gru", num_layers=3, bidirectional=True, task="sequence-classification", pooling="attention", num_classes=2
    )
    groups = freeze_groups(model)
    assert [name for name, _ in groups] == ["embedding", "rnn.l0", "rnn.l1", "rnn.l2", "pool", "head"]
    assert len(groups[2][1]) == 8  # both directions of layer 1: 2 × (w_ih, w_hh, b_ih, b_hh)


def test_output_shapes_per_task():
    ids = torch.randint(1, 128, (2, 9))
    assert zoo.load("lstm")(ids).shape == (2, 9, 128)  # next-token logits at every position
    assert zoo.load("lstm", task="sequence-tagging", num_classes=5)(ids).shape == (2, 9, 5)
    model = zoo.load("lstm", task="sequence-classification", num_classes=3, bidirectional=True, hidden_size=10)
    assert model(ids).shape == (2, 3) and model.forward_features(ids).shape == (2, 20)


def test_lstm_learns_a_long_range_dependency_with_clipped_gradients():
    """Classify a sequence by its first token, read 12 steps earlier: the job LSTMs were made for."""
    torch.manual_seed(0)
    model = zoo.load("lstm", vocab_size=10, embed_dim=8, hidden_size=24, task="sequence-classification", num_classes=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    norms = []
    for _ in range(150):
        ids = torch.randint(3, 10, (32, 12))
        labels = torch.randint(0, 2, (32,))
        ids[:, 0] = labels + 1  # token 1 or 2 first, then noise
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(ids), labels)
        loss.backward()
        norms.append(clip_grad_norm(model.parameters(), max_norm=1.0))
        optimizer.step()
    assert all(n > 0 for n in norms)
    total = torch.sqrt(sum(p.grad.square().sum() for p in model.parameters()))
    assert total <= 1.0 + 1e-4  # clipped
    ids = torch.randint(3, 10, (200, 12))
    labels = torch.randint(0, 2, (200,))
    ids[:, 0] = labels + 1
    accuracy = (model.eval()(ids).argmax(1) == labels).float().mean()
    assert accuracy > 0.95


def test_a_word_level_lstm_language_model_generates_what_it_learned(tmp_path):
    text = "the cat sat on the mat . " * 4
    tokenizer = Tokenizer.build([text], kind="word", bos=True)
    vocab = tokenizer.save(tmp_path / "vocab.json")
    torch.manual_seed(0)
    model = zoo.load("lstm", vocab=str(vocab), embed_dim=16, hidden_size=32)
    assert model.tokenizer.tokens == tokenizer.tokens and model.head.out_features == len(tokenizer)
    ids = torch.tensor([tokenizer.encode(text, bos=True)])
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-2)
    for _ in range(120):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(ids[:, :-1])[0], ids[0, 1:])
        loss.backward()
        optimizer.step()
    assert model.generate("the cat", max_new_tokens=5, temperature=0) == "sat on the mat ."
    assert model.next_tokens("the cat sat on the", k=1)[0][0] == "mat"
    assert model.score("the cat sat on the mat .") < 0.2

    from zoo.modeldir import save_model_dir

    folder = save_model_dir(model, tmp_path / "lm")
    loaded = zoo.load(str(folder))
    assert loaded.tokenizer.tokens == tokenizer.tokens
    assert loaded.generate("the cat", max_new_tokens=5, temperature=0) == "sat on the mat ."


def test_generation_is_deterministic_per_seed():
    torch.manual_seed(0)
    tokenizer = Tokenizer.build(["abcdefgh"], bos=True)
    model = zoo.load("gru", vocab_size=len(tokenizer), hidden_size=8)
    model.tokenizer = tokenizer
    first = model.generate("ab", max_new_tokens=30, seed=3)
    assert model.generate("ab", max_new_tokens=30, seed=3) == first
    assert 0 < len(first) <= 30 and "<unk>" not in first  # the bos token ends a text: it is not shown
    assert any(model.generate("ab", max_new_tokens=30, seed=s) != first for s in range(4, 8))


def test_bad_rnn_arguments_are_refused_with_the_remedy():
    with pytest.raises(zoo.ArgumentError, match="bidirectional network cannot be a language model"):
        zoo.load("lstm", bidirectional=True)
    with pytest.raises(zoo.ArgumentError, match=r"task 'sequence-classification' needs num_classes"):
        zoo.load("gru", task="sequence-classification")
    with pytest.raises(zoo.ArgumentError, match=r"lstm: pooling='max' is not allowed \(use one of: last, mean, attention\)"):
        zoo.load("lstm", pooling="max")
    with pytest.raises(zoo.ArgumentError, match=r"dropout must be in \[0, 1\)"):
        zoo.load("rnn", dropout=1.0)
    with pytest.raises(zoo.ArgumentError, match="hidden_size must be a positive integer"):
        zoo.load("rnn", hidden_size=0)


def test_bad_rnn_inputs_are_refused_with_the_remedy():
    model = zoo.load("lstm")
    with pytest.raises(zoo.ArgumentError, match=r"expected token ids, a LongTensor \[batch, time\]"):
        model(torch.randn(2, 5))
    with pytest.raises(zoo.ArgumentError, match="only padding"):
        model(torch.tensor([[4, 5, 0], [0, 0, 0]]))
    with pytest.raises(zoo.ArgumentError, match="has no vocabulary"):
        model.generate("hello")
    classifier = zoo.load("lstm", task="sequence-classification", num_classes=2)
    classifier.tokenizer = Tokenizer.build(["abc"])
    with pytest.raises(zoo.ArgumentError, match="head has 2 outputs, not one per token"):
        classifier.next_tokens("ab")
    with pytest.raises(zoo.ArgumentError, match="built for sequence-classification, not language-modeling"):
        classifier.position_logits(torch.tensor([[1, 2]]))
