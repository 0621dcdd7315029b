"""Character and word vocabularies: text -> token ids -> padded batches, saved as vocab.json.

A vocabulary is a list of tokens (the id is the position) with named special tokens: `pad`
(fills batches), `unk` (stands for anything unseen; it may be the pad token itself, as in
textgenrnn), and an optional `bos` that starts a text. `aliases` map an input unit to a token
before lookup and back when decoding (textgenrnn's vocabulary has no newline: it ends a line
with its meta token `<s>`). Nothing here imports torch until a batch is made.
"""
from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from zoo.errors import ArgumentError, DataError
from zoo.fsio import loads_json

FORMAT = "zoo-vocab"
VERSION = 1
KINDS = ("char", "word")
PADDING_SIDES = ("right", "left")
PAD, UNK, BOS = "<pad>", "<unk>", "<s>"
# A word is a run of letters/digits/underscores; every other non-space character stands alone.
_WORDS = re.compile(r"\w+|[^\w\s]")


class Tokenizer:
    """A character- or word-level vocabulary with pad/unk (and optional bos) tokens."""

    def __init__(
        self,
        tokens: Sequence[str],
        *,
        kind: str = "char",
        pad: str = PAD,
        unk: str = UNK,
        bos: str | None = None,
        aliases: Mapping[str, str] | None = None,
        lowercase: bool = False,
        padding_side: str = "right",
    ):
        if kind not in KINDS:
            raise DataError(f"unknown vocabulary kind {kind!r}", f"use one of: {', '.join(KINDS)}")
        if padding_side not in PADDING_SIDES:
            raise DataError(f"unknown padding side {padding_side!r}", f"use one of: {', '.join(PADDING_SIDES)}")
        self.tokens = list(tokens)
        self.ids = {token: i for i, token in enumerate(self.tokens)}
        if len(self.ids) != len(self.tokens):
            repeated = sorted(t for t, n in Counter(self.tokens).items() if n > 1)
            raise DataError(f"the vocabulary repeats tokens: {repeated[:5]}", "each token may appear once")
        self.aliases = dict(aliases or {})
        for role, token in (("pad", pad), ("unk", unk), ("bos", bos), *(("alias", t) for t in self.aliases.values())):
            if token is not None and token not in self.ids:
                raise DataError(f"the {role} token {token!r} is not in the vocabulary", "add it to the tokens")
        self.kind, self.pad, self.unk, self.bos = kind, pad, unk, bos
        self.lowercase, self.padding_side = lowercase, padding_side
        self.unaliases = {token: unit for unit, token in self.aliases.items()}

    # -- building ----------------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        texts: Iterable[str],
        *,
        kind: str = "char",
        min_freq: int = 1,
        max_size: int | None = None,
        lowercase: bool = False,
        bos: bool = False,
    ) -> Tokenizer:
        """A vocabulary of the units seen in `texts`: specials first, then by frequency (ties by unit).

        Args:
            texts: the training texts.
            kind: "char" or "word".
            min_freq: units seen fewer times become `<unk>`.
            max_size: the most tokens, specials included.
            lowercase: lower-case text before splitting (word vocabularies usually do).
            bos: add a `<s>` token that starts every encoded text.

        Returns:
            The tokenizer.
        """
        if min_freq < 1 or (max_size is not None and max_size < 3):
            raise ArgumentError(f"min_freq must be >= 1 and max_size >= 3, got {min_freq} and {max_size}")
        specials = [PAD, UNK] + ([BOS] if bos else [])
        probe = cls(specials, kind=kind, lowercase=lowercase)
        counts = Counter(unit for text in texts for unit in probe.split(text))
        ranked = sorted((u for u, n in counts.items() if n >= min_freq and u not in specials), key=lambda u: (-counts[u], u))
        if max_size is not None:
            ranked = ranked[: max_size - len(specials)]
        return cls(specials + ranked, kind=kind, bos=BOS if bos else None, lowercase=lowercase)

    # -- text <-> ids ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def pad_id(self) -> int:
        return self.ids[self.pad]

    @property
    def unk_id(self) -> int:
        return self.ids[self.unk]

    @property
    def bos_id(self) -> int | None:
        return None if self.bos is None else self.ids[self.bos]

    def split(self, text: str) -> list[str]:
        """The units of `text`: characters, or words and punctuation marks."""
        if self.lowercase:
            text = text.lower()
        return list(text) if self.kind == "char" else _WORDS.findall(text)

    def encode(self, text: str, *, bos: bool = False) -> list[int]:
        """Token ids of `text` (unseen units become unk), after `bos` when asked and the vocabulary has one."""
        start = [self.ids[self.bos]] if bos and self.bos is not None else []
        unk = self.unk_id
        return start + [self.ids.get(self.aliases.get(unit, unit), unk) for unit in self.split(text)]

    def decode(self, ids: Iterable[int]) -> str:
        """The text of token ids; aliased tokens turn back into their unit, other pad and bos tokens are dropped."""
        units = [self.unaliases.get(self.tokens[i], self.tokens[i]) for i in map(int, ids)]
        units = [u for u in units if u not in (self.pad, self.bos)]
        return ("" if self.kind == "char" else " ").join(units)

    def batch(self, texts: Sequence[str], *, max_length: int | None = None, bos: bool = False) -> tuple[Any, Any]:
        """Encode texts into one padded batch.

        Args:
            texts: the texts.
            max_length: cut longer texts (keeping their end when padding on the left, their start
                otherwise).
            bos: start each text with the bos token.

        Returns:
            (ids, lengths): a LongTensor [batch, time] padded with `pad_id` on `padding_side`, and
            each text's length in tokens.
        """
        import torch

        encoded = [self.encode(text, bos=bos) for text in texts]
        if max_length is not None:
            encoded = [e[-max_length:] if self.padding_side == "left" else e[:max_length] for e in encoded]
        width = max((len(e) for e in encoded), default=0)
        ids = torch.full((len(encoded), max(width, 1)), self.pad_id, dtype=torch.long)
        for row, e in enumerate(encoded):
            if e:
                start = width - len(e) if self.padding_side == "left" else 0
                ids[row, start : start + len(e)] = torch.tensor(e)
        return ids, torch.tensor([len(e) for e in encoded], dtype=torch.long)

    # -- files -------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "kind": self.kind,
            "specials": {"pad": self.pad, "unk": self.unk, "bos": self.bos},
            "aliases": self.aliases,
            "lowercase": self.lowercase,
            "padding_side": self.padding_side,
            "tokens": self.tokens,
        }

    def save(self, path: str | Path) -> Path:
        """Write the vocabulary as JSON, atomically (`zoo.fsio.write_text`)."""
        from zoo.fsio import write_text

        path = Path(path)
        write_text(path, json.dumps(self.to_dict(), ensure_ascii=False, indent=1))
        return path

    @classmethod
    def from_dict(cls, data: Any, where: str = "vocabulary") -> Tokenizer:
        """A tokenizer from `to_dict`'s data; DataError names what is wrong."""
        if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("version") != VERSION:
            raise DataError(f"{where} is not a {FORMAT} file of version {VERSION}", "write it with Tokenizer.save")
        tokens, specials = data.get("tokens"), data.get("specials") or {}
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise DataError(f"{where}: 'tokens' must be a list of strings")
        return cls(
            tokens,
            kind=data.get("kind", "char"),
            pad=specials.get("pad", PAD),
            unk=specials.get("unk", UNK),
            bos=specials.get("bos"),
            aliases=data.get("aliases") or {},
            lowercase=bool(data.get("lowercase", False)),
            padding_side=data.get("padding_side", "right"),
        )


def load_tokenizer(ref: str | os.PathLike[str]) -> Tokenizer:
    """Read a vocab.json: a file (a path object, or a string holding a '/'), or the plain name of a
    vocabulary a plugin registered (``"lstm-text"``). A ``"package:path"`` string is refused: data
    never names a module.

    Raises:
        DataError: the file is missing or is not a zoo vocabulary.
        RegistryError: a name no plugin registered.
    """
    text, where = _read(ref)
    try:
        data = loads_json(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{where} is not valid JSON: {exc}", "write it with Tokenizer.save") from None
    return Tokenizer.from_dict(data, where)


def _read(ref: str | os.PathLike[str]) -> tuple[str, str]:
    if isinstance(ref, str) and "/" not in ref and os.sep not in ref:
        from importlib.resources import files

        from zoo.registry import VocabSpec, named, registered

        spec = named(registered("register_vocabularies", VocabSpec), ref, "vocabulary")
        ref = Path(str(files(spec.package).joinpath(spec.path)))
    path = Path(ref)
    try:
        return path.read_text(encoding="utf-8"), str(path)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        if isinstance(ref, str) and _PACKAGE_PATH.match(ref):
            raise DataError(
                f"vocabulary {ref!r} is a 'package:path' reference, which zoo no longer imports",
                "name a registered vocabulary (`zoo plugins` lists them) or pass a vocab.json path",
            ) from None
        raise DataError(f"vocabulary {str(ref)!r} not found", "pass a vocab.json path or a registered vocabulary name") from None


_PACKAGE_PATH = re.compile(r"^[A-Za-z_][\w.]*:")
