"""The Elman RNN and the LSTM written from their equations, one time step at a time, for learning.

They take the same arguments and hold the same parameters, under the same names, as `nn.RNN`
and `nn.LSTM` (batch_first), so a state dict moves between the two unchanged and the outputs and
gradients agree (tests/test_rnn_scratch.py). torch keeps two biases, b_ih and b_hh; their sum is
the b of the textbook equations.

    RNN:   h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)
    LSTM:  i_t = σ(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)        input gate
           f_t = σ(W_if x_t + b_if + W_hf h_{t-1} + b_hf)        forget gate
           g_t = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)     candidate cell
           o_t = σ(W_io x_t + b_io + W_ho h_{t-1} + b_ho)        output gate
           c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t
           h_t = o_t ⊙ tanh(c_t)

Variable-length batches: a step past a sequence's length leaves its state unchanged and outputs
zeros, exactly what `nn.LSTM` does on a packed sequence.
"""
from __future__ import annotations

import math

import torch
from torch import nn


class ScratchRecurrent(nn.Module):
    """Layers × directions of a cell, looped over time. Subclasses give `gates` and `cell`."""

    gates = 1

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bidirectional, self.dropout = bidirectional, dropout
        directions = 2 if bidirectional else 1
        width = self.gates * hidden_size
        for layer in range(num_layers):
            inputs = input_size if layer == 0 else hidden_size * directions
            for suffix in self.suffixes(layer):
                self.register_parameter(f"weight_ih{suffix}", nn.Parameter(torch.empty(width, inputs)))
                self.register_parameter(f"weight_hh{suffix}", nn.Parameter(torch.empty(width, hidden_size)))
                self.register_parameter(f"bias_ih{suffix}", nn.Parameter(torch.empty(width)))
                self.register_parameter(f"bias_hh{suffix}", nn.Parameter(torch.empty(width)))
        self.reset_parameters()

    def suffixes(self, layer: int) -> list[str]:
        """Parameter-name suffixes of a layer, as nn.RNN names them."""
        return [f"_l{layer}"] + ([f"_l{layer}_reverse"] if self.bidirectional else [])

    def reset_parameters(self) -> None:
        # nn.RNN's initialisation: U(-1/sqrt(H), 1/sqrt(H)) for every weight and bias.
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def initial_state(self, batch: int, like: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (like.new_zeros(batch, self.hidden_size),)

    def cell(self, gx: torch.Tensor, state: tuple[torch.Tensor, ...], w_hh: torch.Tensor, b_hh: torch.Tensor):
        """One step: the input's share `gx` = W_ih x_t + b_ih, and the previous state."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None):
        """Run over x [batch, time, input]; `lengths` (on the CPU) masks the steps past each sequence's end.

        Returns:
            (output [batch, time, directions × hidden], final states [layers × directions, batch, hidden])
            where the final states are `h_n` (RNN) or `(h_n, c_n)` (LSTM), as torch returns them.
        """
        batch, steps = x.shape[0], x.shape[1]
        if lengths is None:
            lengths = torch.full((batch,), steps, dtype=torch.long)
        # valid[t, b]: whether step t is inside sequence b
        valid = (torch.arange(steps)[:, None] < lengths[None, :]).to(x.device)[..., None]
        finals: list[tuple[torch.Tensor, ...]] = []
        for layer in range(self.num_layers):
            if layer > 0 and self.dropout and self.training:
                x = nn.functional.dropout(x, self.dropout, training=True)
            outputs = []
            for suffix in self.suffixes(layer):
                out, state = self.run_direction(x, valid, suffix, reverse=suffix.endswith("_reverse"))
                outputs.append(out)
                finals.append(state)
            x = torch.cat(outputs, dim=-1)
        stacked = tuple(torch.stack(parts) for parts in zip(*finals))
        return x, stacked[0] if len(stacked) == 1 else stacked

    def run_direction(self, x: torch.Tensor, valid: torch.Tensor, suffix: str, reverse: bool):
        w_ih, w_hh = getattr(self, f"weight_ih{suffix}"), getattr(self, f"weight_hh{suffix}")
        b_ih, b_hh = getattr(self, f"bias_ih{suffix}"), getattr(self, f"bias_hh{suffix}")
        gx = x @ w_ih.T + b_ih  # the input's share, for every step at once: one matmul
        state = self.initial_state(x.shape[0], x)
        outputs = [x.new_zeros(0)] * x.shape[1]
        order = range(x.shape[1] - 1, -1, -1) if reverse else range(x.shape[1])
        for t in order:
            new = self.cell(gx[:, t], state, w_hh, b_hh)
            # Past the end, keep the state; reversed, the zero state waits for the last valid step.
            state = tuple(torch.where(valid[t], n, s) for n, s in zip(new, state))
            outputs[t] = state[0] * valid[t]
        return torch.stack(outputs, dim=1), state


class ScratchRNN(ScratchRecurrent):
    """The Elman RNN: h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)."""

    gates = 1

    def cell(self, gx, state, w_hh, b_hh):
        (h,) = state
        return (torch.tanh(gx + h @ w_hh.T + b_hh),)


class ScratchLSTM(ScratchRecurrent):
    """The LSTM: input, forget, candidate and output gates (torch's order i, f, g, o) and a cell state."""

    gates = 4

    def initial_state(self, batch, like):
        zeros = like.new_zeros(batch, self.hidden_size)
        return (zeros, zeros)

    def cell(self, gx, state, w_hh, b_hh):
        h, c = state
        i, f, g, o = (gx + h @ w_hh.T + b_hh).chunk(4, dim=-1)
        i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
        c = f * c + i * g
        h = o * torch.tanh(c)
        return (h, c)
