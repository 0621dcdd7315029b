"""textgenrnn's character language model (Max Woolf, MIT), in PyTorch: the architecture of `lstm-text`.

    the last `window` (40) characters, left-padded with the pad id
      -> Embedding(465, 100)
      -> LSTM(100, 128) -> LSTM(128, 128)
      -> concatenate [embedding, lstm 1, lstm 2] at every step (356 features: skip connections)
      -> attention-weighted average over the window (one learned weight per feature)
      -> Linear(356, 465): the next character

The model reads a fixed window, always padded to its full length, as it was trained: feeding it
shorter windows without the padding makes it far worse. Calling it on ids [batch, time] gives the
next token's logits after each row ([batch, vocab]); `position_logits` gives them after every
position. Padding on the left (its vocabulary's `padding_side`) never changes a result.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from zoo.data.tokenizers import load_tokenizer
from zoo.errors import ArgumentError
from zoo.heads import ZooModel
from zoo_rnn.generation import LanguageModel
from zoo_rnn.recurrent import AttentionPool

# Windows scored at once: bounds the memory of scoring a long text (a play is ~200k windows).
_CHUNK = 2048


class TextGenLSTM(LanguageModel, ZooModel):
    """Embedding -> stacked LSTMs -> skip-concatenation -> attention pooling -> next-token head."""

    def __init__(
        self,
        vocab_size: int = 465,
        embed_dim: int = 100,
        hidden_size: int = 128,
        num_layers: int = 2,
        window: int = 40,
        num_classes: int | None = None,
        pad_id: int = 0,
        tokenizer: Any = None,
    ):
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("embed_dim", embed_dim), ("hidden_size", hidden_size), ("num_layers", num_layers), ("window", window)):
            if not isinstance(value, int) or value < 1:
                raise ArgumentError(f"{name} must be a positive integer, got {value!r}")
        self.window, self.pad_id, self.tokenizer = window, pad_id, tokenizer
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        sizes = [embed_dim] + [hidden_size] * num_layers
        self.rnn = nn.ModuleList(nn.LSTM(a, b, batch_first=True) for a, b in zip(sizes, sizes[1:]))
        self.num_features = sum(sizes)
        self.attention = AttentionPool(self.num_features)
        self.num_classes = vocab_size if num_classes is None else num_classes
        self.head = self.make_head(self.num_classes)

    def make_head(self, num_classes: int) -> nn.Module:
        return nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()

    def windows(self, ids: torch.Tensor) -> torch.Tensor:
        """The last `window` ids of each row, left-padded with the pad id to the full window."""
        if ids.dim() != 2 or ids.dtype not in (torch.long, torch.int, torch.int32):
            raise ArgumentError(f"expected token ids, a LongTensor [batch, time]; got {tuple(ids.shape)} {ids.dtype}")
        ids = ids[:, -self.window :]
        return F.pad(ids, (self.window - ids.shape[1], 0), value=self.pad_id)

    def forward_features(self, ids: torch.Tensor) -> torch.Tensor:
        """The attention-pooled features [B, 356] of each row's last window."""
        x = self.embedding(self.windows(ids).long())
        steps = [x]
        for layer in self.rnn:
            x, _ = layer(x)
            steps.append(x)
        return self.attention(torch.cat(steps, dim=-1))

    def next_token_logits(self, ids: torch.Tensor) -> torch.Tensor:
        return self(ids)

    def position_windows(self, ids: torch.Tensor) -> torch.Tensor:
        """[B, T] ids -> [B·T, window]: the window ending at each position."""
        padded = F.pad(ids, (self.window - 1, 0), value=self.pad_id)
        return padded.unfold(1, self.window, 1).reshape(-1, self.window)

    def position_logits(self, ids: torch.Tensor) -> torch.Tensor:
        windows = self.position_windows(ids)
        logits = torch.cat([self(chunk) for chunk in windows.split(_CHUNK)])
        return logits.view(ids.shape[0], ids.shape[1], -1)

    def token_nll(self, ids: torch.Tensor) -> torch.Tensor:
        """Per-token NLL, window chunk by window chunk: a long text never holds all its logits at once."""
        device = next(self.parameters()).device
        windows = self.position_windows(ids[None, :-1].to(device))
        targets = ids[1:].to(device)
        return torch.cat(
            [
                F.cross_entropy(self(w).float(), t, reduction="none")
                for w, t in zip(windows.split(_CHUNK), targets.split(_CHUNK))
            ]
        )

    def freeze_groups(self) -> list[tuple[str, list[nn.Parameter]]]:
        """embedding, rnn.0, rnn.1, attention, head."""
        groups = [("embedding", list(self.embedding.parameters()))]
        groups += [(f"rnn.{i}", list(layer.parameters())) for i, layer in enumerate(self.rnn)]
        return groups + [("attention", list(self.attention.parameters())), ("head", list(self.head.parameters()))]


def textgenrnn(
    *,
    vocab_size: int = 465,
    embed_dim: int = 100,
    hidden_size: int = 128,
    num_layers: int = 2,
    window: int = 40,
    num_classes: int | None = None,
    vocab: str | None = None,
) -> TextGenLSTM:
    """textgenrnn's architecture.

    Args:
        vocab_size: the number of token ids (taken from `vocab` when it is given).
        embed_dim: the character embedding's width.
        hidden_size: each LSTM's width.
        num_layers: stacked LSTMs.
        window: the characters the model reads before each prediction.
        num_classes: the head's outputs (None: one per token, the language model).
        vocab: a vocab.json path or "package:relative/path"; the model keeps it as `tokenizer`.
    """
    tokenizer = load_tokenizer(vocab) if vocab is not None else None
    vocab_size = len(tokenizer) if tokenizer is not None else vocab_size
    return TextGenLSTM(
        vocab_size,
        embed_dim,
        hidden_size,
        num_layers,
        window,
        num_classes,
        pad_id=tokenizer.pad_id if tokenizer is not None else 0,
        tokenizer=tokenizer,
    )
