"""Text in, text out, for any zoo language model: sampling, the likeliest next tokens, scoring.

A model gets these by inheriting `LanguageModel` and giving `next_token_logits(ids) -> [batch,
vocab]` and `position_logits(ids) -> [batch, time, vocab]` (position t predicts token t + 1), plus a
`tokenizer`.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

from zoo.errors import ArgumentError


class LanguageModel:
    """generate / next_tokens / continuations / score, on top of a model's next-token logits."""

    tokenizer = None
    num_classes: int
    # Stopping points when completing a word: a space, a line end, or punctuation.
    WORD_END = frozenset(" \n\t.,;:!?\"'()[]{}")

    def next_token_logits(self, ids: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def position_logits(self, ids: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # -- checks ------------------------------------------------------------------------------------
    def _vocabulary(self):
        tokenizer = self.tokenizer
        if tokenizer is None:
            raise ArgumentError("this model has no vocabulary, so it cannot read or write text", "build it with vocab=...")
        if self.num_classes != len(tokenizer):
            raise ArgumentError(
                f"this model's head has {self.num_classes} outputs, not one per token of its {len(tokenizer)}-token vocabulary",
                "use a language model (its head predicts the next token)",
            )
        return tokenizer

    def _prompt(self, prompt: str) -> list[int]:
        if not isinstance(prompt, str):
            raise ArgumentError(f"the prompt must be a string, got {type(prompt).__name__}")
        return self._vocabulary().encode(prompt, bos=True)

    def _probabilities(self, ids: list[int]) -> torch.Tensor:
        """The next token's distribution after `ids`; padding and the unknown token are never predictions."""
        device = next(self.parameters()).device  # type: ignore[attr-defined]
        logits = self.next_token_logits(torch.tensor([ids], device=device))[0].float()
        tokenizer = self._vocabulary()
        logits[[tokenizer.pad_id, tokenizer.unk_id]] = float("-inf")
        return logits.softmax(-1)

    # -- the API -----------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self,
        prompt: str = "",
        max_new_tokens: int = 100,
        temperature: float = 1.0,
        top_k: int | None = None,
        seed: int | None = None,
    ) -> str:
        """Sample a continuation of `prompt`, token by token.

        Args:
            prompt: the text to continue ("" starts a new text).
            max_new_tokens: how many tokens to add.
            temperature: divides the logits; 0 always takes the likeliest token (greedy).
            top_k: sample among the k likeliest tokens only (None: all).
            seed: the same seed gives the same text; None draws a fresh one.

        Returns:
            The continuation (without the prompt).
        """
        if not isinstance(max_new_tokens, int) or max_new_tokens < 0:
            raise ArgumentError(f"max_new_tokens must be a non-negative integer, got {max_new_tokens!r}")
        if temperature < 0:
            raise ArgumentError(f"temperature must be >= 0, got {temperature}")
        if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
            raise ArgumentError(f"top_k must be a positive integer or None, got {top_k!r}")
        ids = self._prompt(prompt)
        start = len(ids)
        generator = torch.Generator().manual_seed(seed if seed is not None else int(torch.seed() % 2**63))
        was_training = self.training  # type: ignore[attr-defined]
        self.eval()  # type: ignore[attr-defined]
        try:
            for _ in range(max_new_tokens):
                ids.append(self._sample(self._probabilities(ids).cpu(), temperature, top_k, generator))
        finally:
            self.train(was_training)  # type: ignore[attr-defined]
        return self._vocabulary().decode(ids[start:])

    @staticmethod
    def _sample(probs: torch.Tensor, temperature: float, top_k: int | None, generator: torch.Generator) -> int:
        if temperature == 0:
            return int(probs.argmax())
        logits = probs.clamp_min(1e-30).log() / temperature
        if top_k is not None and top_k < logits.numel():
            cutoff = logits.topk(top_k).values[-1]
            logits = logits.masked_fill(logits < cutoff, float("-inf"))
        return int(torch.multinomial(logits.softmax(-1), 1, generator=generator))

    @torch.no_grad()
    def next_tokens(self, prompt: str, k: int = 5) -> list[tuple[str, float]]:
        """The `k` likeliest next tokens after `prompt`, as (text, probability), likeliest first."""
        if not isinstance(k, int) or k < 1:
            raise ArgumentError(f"k must be a positive integer, got {k!r}")
        tokenizer = self._vocabulary()
        self.eval()  # type: ignore[attr-defined]
        probs = self._probabilities(self._prompt(prompt))
        values, indices = probs.topk(min(k, probs.numel()))
        return [(tokenizer.decode([int(i)]), float(v)) for v, i in zip(values, indices)]

    @torch.no_grad()
    def continuations(self, prompt: str, k: int = 5, max_tokens: int = 20) -> list[tuple[str, float]]:
        """The `k` likeliest next tokens, each completed greedily to the end of the word it starts or
        continues (a space or a line end first: to the end of the next word). A word vocabulary's
        tokens are whole words already.

        Returns:
            (continuation, probability of the whole continuation), likeliest first.
        """
        results = []
        char_level = self._vocabulary().kind == "char"
        for first, p_first in self.next_tokens(prompt, k):
            text, probability = first, p_first
            while char_level and len(text) < max_tokens and not self._ends_a_word(text):
                probs = self._probabilities(self._prompt(prompt + text))
                best = int(probs.argmax())
                text += self._vocabulary().decode([best])
                probability *= float(probs[best])
            results.append((text, probability))
        return sorted(results, key=lambda r: -r[1])

    def _ends_a_word(self, text: str) -> bool:
        return text[-1] in self.WORD_END and any(c not in self.WORD_END for c in text)

    @torch.no_grad()
    def score(self, text: str) -> float:
        """The mean negative log-likelihood of `text`, in nats per token (per character for a
        character vocabulary); each token is predicted from the ones before it, the first from bos."""
        ids = self._prompt(text)
        if len(ids) < 2:
            raise ArgumentError("the text is too short to score", "give at least one token after the first")
        self.eval()  # type: ignore[attr-defined]
        return float(self.token_nll(torch.tensor(ids)).mean())

    def token_nll(self, ids: torch.Tensor) -> torch.Tensor:
        """-log p(ids[t + 1] | ids[: t + 1]) for every t, from one pass over the sequence."""
        device = next(self.parameters()).device  # type: ignore[attr-defined]
        logits = self.position_logits(ids[None].to(device))[0, :-1].float()
        return F.cross_entropy(logits, ids[1:].to(device), reduction="none")
