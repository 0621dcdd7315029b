"""The cells written from the equations agree with torch's fused nn.RNN / nn.LSTM, given the same weights."""
from __future__ import annotations

import re

import pytest
import torch
from torch import nn

import zoo
from zoo_rnn.scratch import ScratchLSTM, ScratchRNN

from helpers import ROOT

PAIRS = {"rnn": (ScratchRNN, nn.RNN), "lstm": (ScratchLSTM, nn.LSTM)}
TOL = dict(atol=1e-5, rtol=1e-5)


def _run_fused(fused: nn.Module, x: torch.Tensor, lengths: torch.Tensor | None):
    if lengths is None:
        return fused(x)
    packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out, state = fused(packed)
    out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
    return out, state


def _flat(state) -> list[torch.Tensor]:
    return list(state) if isinstance(state, tuple) else [state]


@pytest.mark.parametrize("kind", PAIRS)
@pytest.mark.parametrize("num_layers,bidirectional", [(1, False), (2, False), (2, True)])
@pytest.mark.parametrize("padded", [False, True], ids=["full", "padded"])
def test_scratch_cell_matches_fused_outputs_and_gradients(kind, num_layers, bidirectional, padded):
    scratch_cls, fused_cls = PAIRS[kind]
    torch.manual_seed(0)
    fused = fused_cls(5, 7, num_layers=num_layers, bidirectional=bidirectional, batch_first=True)
    scratch = scratch_cls(5, 7, num_layers=num_layers, bidirectional=bidirectional)
    scratch.load_state_dict(fused.state_dict())  # same names, same shapes: the same weights
    x = torch.randn(3, 6, 5)
    lengths = torch.tensor([6, 2, 4]) if padded else None
    x_fused, x_scratch = x.clone().requires_grad_(), x.clone().requires_grad_()

    out_f, state_f = _run_fused(fused, x_fused, lengths)
    out_s, state_s = scratch(x_scratch, lengths)
    torch.testing.assert_close(out_s, out_f, **TOL)
    for s, f in zip(_flat(state_s), _flat(state_f), strict=True):
        torch.testing.assert_close(s, f, **TOL)

    # One loss over outputs and final states reaches every weight and the input.
    weights = torch.randn_like(out_f)
    loss_f = (out_f * weights).sum() + sum(t.square().sum() for t in _flat(state_f))
    loss_s = (out_s * weights).sum() + sum(t.square().sum() for t in _flat(state_s))
    loss_f.backward()
    loss_s.backward()
    torch.testing.assert_close(x_scratch.grad, x_fused.grad, **TOL)
    fused_params = dict(fused.named_parameters())
    for name, param in scratch.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
        torch.testing.assert_close(param.grad, fused_params[name].grad, **TOL, msg=f"gradient of {name}")


@pytest.mark.parametrize("scratch,fused", [("rnn-scratch", "rnn"), ("lstm-scratch", "lstm")])
def test_scratch_architecture_loads_the_fused_ones_weights(scratch, fused):
    torch.manual_seed(0)
    args = dict(num_layers=2, task="sequence-classification", pooling="attention", num_classes=3)
    reference = zoo.load(fused, **args).eval()
    model = zoo.load(scratch, **args).eval()
    model.load_state_dict(reference.state_dict())
    ids = torch.tensor([[5, 9, 3, 7, 1, 2], [4, 4, 8, 0, 0, 0]])  # the second row is padded
    torch.testing.assert_close(model(ids), reference(ids), **TOL)


def test_scratch_cells_apply_dropout_between_layers_only_in_training():
    torch.manual_seed(0)
    cell = ScratchLSTM(4, 6, num_layers=2, dropout=0.5)
    x = torch.randn(2, 5, 4)
    cell.eval()
    assert torch.equal(cell(x)[0], cell(x)[0])
    cell.train()
    assert not torch.equal(cell(x)[0], cell(x)[0])


def _docs_gru_variant() -> dict:
    """Run the plugin example of docs/families.md ("Adding a variant in a plugin") as written."""
    text = (ROOT / "docs" / "families.md").read_text()
    section = text[text.index("## Adding a variant in a plugin") :]
    code = re.findall(r"```python\n(.*?)```", section, re.S)[0]
    namespace: dict = {"__name__": "zoo_gru_scratch_model"}
    exec(compile(code, "docs/families.md", "exec"), namespace)
    return namespace


def test_the_docs_gru_variant_matches_nn_gru():
    variant = _docs_gru_variant()
    torch.manual_seed(0)
    fused = nn.GRU(5, 7, num_layers=2, bidirectional=True, batch_first=True)
    scratch = variant["ScratchGRU"](5, 7, num_layers=2, bidirectional=True)
    scratch.load_state_dict(fused.state_dict())
    x, lengths = torch.randn(3, 6, 5, requires_grad=True), torch.tensor([6, 2, 4])
    out_f, h_f = _run_fused(fused, x, lengths)
    out_s, h_s = scratch(x, lengths)
    torch.testing.assert_close(out_s, out_f, **TOL)
    torch.testing.assert_close(h_s, h_f, **TOL)
    grad_f = torch.autograd.grad(out_f.sum(), fused.weight_hh_l1_reverse)[0]
    grad_s = torch.autograd.grad(out_s.sum(), scratch.weight_hh_l1_reverse)[0]
    torch.testing.assert_close(grad_s, grad_f, **TOL)

    model = variant["gru_scratch"](task="sequence-classification", num_classes=2)
    reference = zoo.load("gru", task="sequence-classification", num_classes=2)
    model.load_state_dict(reference.state_dict())
    ids = torch.tensor([[5, 9, 3, 7], [4, 8, 0, 0]])
    torch.testing.assert_close(model(ids), reference(ids), **TOL)
    assert sum(p.numel() for p in variant["gru_scratch"]().parameters()) == 99200  # the num_params it declares
