"""The cells written from the equations agree with torch's fused nn.RNN / nn.LSTM, given the same weights."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import zoo
from zoo_rnn.scratch import ScratchLSTM, ScratchRNN

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
