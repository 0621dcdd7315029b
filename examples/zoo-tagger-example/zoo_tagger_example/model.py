"""The GRU tagger: token ids [B, T] -> tag scores [B, T, C]. A forward GRU, so padding after a
sentence never changes the scores of its tokens."""
from __future__ import annotations

import zlib

import torch
from torch import nn

from zoo.heads import ZooModel
from zoo_tagger_example import VOCAB_SIZE

PAD_ID = 0


def token_ids(text: str) -> list[int]:
    """A sentence's word ids: each lower-cased word hashed into 1..VOCAB_SIZE-1 (0 is padding)."""
    return [1 + zlib.crc32(word.lower().encode("utf-8")) % (VOCAB_SIZE - 1) for word in text.split()]


def pad(rows: list[list[int]], value: int) -> torch.Tensor:
    """Rows of different lengths as one [B, T] tensor, filled with `value` after each row."""
    width = max(1, max((len(r) for r in rows), default=1))
    return torch.tensor([r + [value] * (width - len(r)) for r in rows], dtype=torch.long)


class GRUTagger(ZooModel):
    group_names = ("embed", "rnn", "head")

    def __init__(self, num_classes: int = 3, vocab_size: int = VOCAB_SIZE, embed_dim: int = 16, hidden_size: int = 32):
        super().__init__()
        self.pad_id = PAD_ID
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD_ID)
        self.rnn = nn.GRU(embed_dim, hidden_size, batch_first=True)
        self.num_features, self.num_classes = hidden_size, num_classes
        self.head = self.make_head(num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.rnn(self.embed(x))[0]

    def make_head(self, num_classes: int) -> nn.Module:
        return nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()


def gru_tagger(num_classes: int = 3, vocab_size: int = VOCAB_SIZE, embed_dim: int = 16, hidden_size: int = 32) -> GRUTagger:
    return GRUTagger(num_classes, vocab_size, embed_dim, hidden_size)
