"""RNN, LSTM and GRU networks over token sequences, for language modelling, classification and tagging.

    tokens -> embedding (learned, or one-hot) -> recurrent layers -> task:
      language-modeling        every position's output -> head -> the next token
      sequence-tagging         every position's output -> head -> that position's tag
      sequence-classification  pooled (last state, mean, or attention) -> head -> the class

The recurrent layers are torch's fused `nn.RNN` / `nn.LSTM` / `nn.GRU` (cuDNN on a GPU), the
cells written from the equations in `zoo_rnn.scratch`, or a plugin's own (`recurrent_builder`). Batches are padded on the right with the
pad id; padded sequences are packed, so padding never changes a sequence's result.
"""
from __future__ import annotations

import re
from typing import Any, Callable

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from zoo.data.tokenizers import load_tokenizer
from zoo.errors import ArgumentError
from zoo.heads import ZooModel
from zoo_rnn.generation import LanguageModel
from zoo_rnn.scratch import ScratchLSTM, ScratchRNN

CELLS: dict[str, Callable[..., nn.Module]] = {
    "rnn": lambda *a, **k: nn.RNN(*a, nonlinearity="tanh", batch_first=True, **k),
    "lstm": lambda *a, **k: nn.LSTM(*a, batch_first=True, **k),
    "gru": lambda *a, **k: nn.GRU(*a, batch_first=True, **k),
    "rnn-scratch": ScratchRNN,
    "lstm-scratch": ScratchLSTM,
}
TASKS = ("language-modeling", "sequence-classification", "sequence-tagging")
EMBEDDINGS = ("learned", "onehot")
POOLINGS = ("last", "mean", "attention")
_LAYER = re.compile(r"_l(\d+)(?:_reverse)?$")


class OneHot(nn.Module):
    """Token ids -> one-hot vectors: an embedding with nothing to learn."""

    def __init__(self, vocab_size: int):
        super().__init__()
        self.vocab_size = vocab_size

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(ids, self.vocab_size).to(torch.get_default_dtype())


class AttentionPool(nn.Module):
    """A weighted average over time: a learned vector scores each step, softmax over the valid steps."""

    def __init__(self, features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(features).uniform_(-0.05, 0.05))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        scores = x @ self.weight
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        return (scores.softmax(dim=1).unsqueeze(-1) * x).sum(dim=1)


def trailing_lengths(ids: torch.Tensor, pad_id: int) -> torch.Tensor | None:
    """Each row's length without its trailing pad ids; None when no row is padded (the fast path).

    While exporting or tracing there is no data to look at: the graph takes unpadded batches.
    """
    if torch.compiler.is_exporting() or torch.jit.is_tracing():
        return None
    if not bool((ids[:, -1] == pad_id).any()):
        return None
    positions = torch.arange(1, ids.shape[1] + 1, device=ids.device)
    lengths = ((ids != pad_id) * positions).amax(dim=1)
    if bool((lengths == 0).any()):
        raise ArgumentError("a sequence in the batch is empty (only padding)", "drop empty texts before batching")
    return lengths


def leading_pads(ids: torch.Tensor, pad_id: int) -> torch.Tensor | None:
    """Each row's count of leading pad ids; None when no row starts with one (or while exporting, as
    for `trailing_lengths`). A row of padding only is refused."""
    if torch.compiler.is_exporting() or torch.jit.is_tracing() or not bool((ids[:, 0] == pad_id).any()):
        return None
    tokens = ids != pad_id
    if not bool(tokens.any(dim=1).all()):
        raise ArgumentError("a sequence in the batch is empty (only padding)", "drop empty texts before batching")
    return tokens.int().argmax(dim=1)


def _roll(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Each row of x [B, T, ...] rotated left along T by its own `shift` (right for negative shifts)."""
    steps = x.shape[1]
    index = (torch.arange(steps, device=x.device)[None] + shift[:, None]) % steps
    return x.gather(1, index.view(*index.shape, *([1] * (x.dim() - 2))).expand(*index.shape, *x.shape[2:]))


class RecurrentNet(LanguageModel, ZooModel):
    """Embedding -> recurrent layers -> (pooling) -> linear head, following the head protocol."""

    def __init__(
        self,
        cell: str | Callable[..., nn.Module],
        *,
        vocab_size: int,
        embed_dim: int,
        embedding: str,
        hidden_size: int,
        num_layers: int,
        bidirectional: bool,
        dropout: float,
        task: str,
        pooling: str,
        num_classes: int | None,
        pad_id: int = 0,
        tokenizer: Any = None,
    ):
        super().__init__()
        _check_options(task=task, embedding=embedding, pooling=pooling, dropout=dropout, bidirectional=bidirectional)
        for name, value in (("vocab_size", vocab_size), ("embed_dim", embed_dim), ("hidden_size", hidden_size), ("num_layers", num_layers)):
            if not isinstance(value, int) or value < 1:
                raise ArgumentError(f"{name} must be a positive integer, got {value!r}")
        factory = CELLS[cell] if isinstance(cell, str) else cell
        self.cell = cell if isinstance(cell, str) else cell.__name__
        self.task, self.pooling, self.pad_id, self.tokenizer = task, pooling, pad_id, tokenizer
        self.num_layers, self.hidden_size = num_layers, hidden_size
        self.directions = 2 if bidirectional else 1
        self.embedding = nn.Embedding(vocab_size, embed_dim) if embedding == "learned" else OneHot(vocab_size)
        inputs = embed_dim if embedding == "learned" else vocab_size
        # torch applies `dropout` between stacked layers only (it warns when there is one layer).
        between = dropout if num_layers > 1 else 0.0
        self.rnn = factory(inputs, hidden_size, num_layers=num_layers, bidirectional=bidirectional, dropout=between)
        self.pool = AttentionPool(hidden_size * self.directions) if task == "sequence-classification" and pooling == "attention" else None
        self.drop = nn.Dropout(dropout)
        self.num_features = hidden_size * self.directions
        self.num_classes = vocab_size if num_classes is None and task == "language-modeling" else num_classes
        if self.num_classes is None:
            raise ArgumentError(f"task {task!r} needs num_classes (the number of classes or tags)")
        self.head = self.make_head(self.num_classes)

    def make_head(self, num_classes: int) -> nn.Module:
        return nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()

    # -- forward -----------------------------------------------------------------------------------
    def run(self, ids: torch.Tensor, *, in_place: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(every step's output [B, T, D·H], each sequence's final state [B, D·H], lengths or None).

        A left-padded batch (lstm-text's tokenizer pads on the left) is read as if padded on the right;
        `in_place` puts each step's output back at its input's position, and without it they stay where
        the right-padded read left them (pooling does not care where the steps sit; `lengths` describe
        that layout).
        """
        if ids.dim() != 2 or ids.dtype not in (torch.long, torch.int, torch.int32):
            raise ArgumentError(f"expected token ids, a LongTensor [batch, time]; got {tuple(ids.shape)} {ids.dtype}")
        lead = leading_pads(ids, self.pad_id)
        if lead is None:
            return self._read(ids)
        out, last, lengths = self._read(_roll(ids, lead))
        return (_roll(out, -lead) if in_place else out), last, lengths

    def _read(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """`run` of a batch with no padding on the left."""
        lengths = trailing_lengths(ids, self.pad_id)
        x = self.embedding(ids)
        if lengths is None:
            out, state = self.rnn(x)
        elif isinstance(self.rnn, nn.RNNBase):
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            out, state = self.rnn(packed)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
        else:
            out, state = self.rnn(x, lengths.cpu())
        h_n = state[0] if isinstance(state, tuple) else state  # an LSTM also returns its cell state
        batch = ids.shape[0]
        last = h_n.view(self.num_layers, self.directions, batch, self.hidden_size)[-1]
        return out, last.transpose(0, 1).reshape(batch, self.num_features), lengths

    def forward_features(self, ids: torch.Tensor) -> torch.Tensor:
        """Per-position features [B, T, D·H] (language modelling, tagging) or pooled ones [B, D·H]."""
        if self.task != "sequence-classification":
            return self.drop(self.run(ids)[0])
        out, last, lengths = self.run(ids, in_place=False)  # pooled: where the steps sit does not matter
        if self.pooling == "last":
            return self.drop(last)
        mask = None if lengths is None else torch.arange(ids.shape[1], device=ids.device)[None] < lengths[:, None]
        if self.pooling == "attention":
            return self.drop(self.pool(out, mask))
        if mask is None:
            return self.drop(out.mean(dim=1))
        return self.drop((out * mask[..., None]).sum(dim=1) / lengths[:, None])

    # -- language modelling ------------------------------------------------------------------------
    def position_logits(self, ids: torch.Tensor) -> torch.Tensor:
        self._require_task("language-modeling")
        return self(ids)

    def next_token_logits(self, ids: torch.Tensor) -> torch.Tensor:
        logits = self.position_logits(ids)
        lengths = trailing_lengths(ids, self.pad_id)
        if lengths is None:
            return logits[:, -1]
        return logits[torch.arange(ids.shape[0], device=ids.device), lengths - 1]

    def _require_task(self, task: str) -> None:
        if self.task != task:
            raise ArgumentError(f"this {self.cell} was built for {self.task}, not {task}", f"build it with task={task!r}")

    # -- fine-tuning -------------------------------------------------------------------------------
    def freeze_groups(self) -> list[tuple[str, list[nn.Parameter]]]:
        """embedding, rnn.l0 … rnn.l{n-1} (both directions of a layer together), pool, head; empty groups left out."""
        layers: list[list[nn.Parameter]] = [[] for _ in range(self.num_layers)]
        for name, param in self.rnn.named_parameters():
            layers[int(_LAYER.search(name).group(1))].append(param)  # type: ignore[union-attr]
        groups = [("embedding", list(self.embedding.parameters()))]
        groups += [(f"rnn.l{i}", params) for i, params in enumerate(layers)]
        groups += [("pool", list(self.pool.parameters()) if self.pool is not None else []), ("head", list(self.head.parameters()))]
        return [(name, params) for name, params in groups if params or name == "head"]


def _check_options(*, task: str, embedding: str, pooling: str, dropout: float, bidirectional: bool) -> None:
    for name, value, allowed in (("task", task, TASKS), ("embedding", embedding, EMBEDDINGS), ("pooling", pooling, POOLINGS)):
        if value not in allowed:
            raise ArgumentError(f"unknown {name} {value!r}", f"use one of: {', '.join(allowed)}")
    if not 0.0 <= dropout < 1.0:
        raise ArgumentError(f"dropout must be in [0, 1), got {dropout}")
    if task == "language-modeling" and bidirectional:
        raise ArgumentError(
            "a bidirectional network cannot be a language model: its backward half reads the tokens it must predict",
            "use task='sequence-tagging' or 'sequence-classification', or bidirectional=False",
        )


def recurrent_builder(cell: str | Callable[..., nn.Module]) -> Callable[..., RecurrentNet]:
    """The builder of one cell type; every cell takes the same arguments.

    Args:
        cell: a name in CELLS, or a plugin's own recurrent module class, called like nn.LSTM
            (input size, hidden size, num_layers=, bidirectional=, dropout=) and returning, batch
            first, (output, h_n) or (output, (h_n, c_n)); it takes `lengths` as a second argument
            when it is not an nn.RNNBase (see zoo_rnn.scratch.ScratchRecurrent).
    """
    name = cell if isinstance(cell, str) else cell.__name__

    def build(
        *,
        vocab_size: int = 128,
        embed_dim: int = 64,
        embedding: str = "learned",
        hidden_size: int = 128,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        task: str = "language-modeling",
        pooling: str = "last",
        num_classes: int | None = None,
        vocab: str | None = None,
    ) -> RecurrentNet:
        tokenizer = load_tokenizer(vocab) if vocab is not None else None
        vocab_size = len(tokenizer) if tokenizer is not None else vocab_size
        return RecurrentNet(
            cell,
            vocab_size=vocab_size,
            embed_dim=embed_dim,
            embedding=embedding,
            hidden_size=hidden_size,
            num_layers=num_layers,
            bidirectional=bidirectional,
            dropout=dropout,
            task=task,
            pooling=pooling,
            num_classes=num_classes,
            pad_id=tokenizer.pad_id if tokenizer is not None else 0,
            tokenizer=tokenizer,
        )

    build.__name__ = build.__qualname__ = name.replace("-", "_")
    build.__doc__ = f"""A {name} network over token ids.

    Args:
        vocab_size: the number of token ids (taken from `vocab` when it is given).
        embed_dim: the learned embedding's width.
        embedding: "learned" (nn.Embedding) or "onehot" (nothing to learn).
        hidden_size: the recurrent state's width.
        num_layers: stacked recurrent layers.
        bidirectional: also read right to left (not for language modelling).
        dropout: between stacked layers and before the head.
        task: language-modeling, sequence-classification or sequence-tagging.
        pooling: for classification: the last state, the mean, or attention over the steps.
        num_classes: classes or tags (language modelling: the vocabulary size).
        vocab: a vocab.json path or "package:relative/path"; the model keeps it as `tokenizer`.
    """
    return build


rnn = recurrent_builder("rnn")
lstm = recurrent_builder("lstm")
gru = recurrent_builder("gru")
rnn_scratch = recurrent_builder("rnn-scratch")
lstm_scratch = recurrent_builder("lstm-scratch")
