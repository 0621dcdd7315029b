"""The language-modeling task's `zoo predict`: a text's likeliest continuations, or a sampled one
(``--generate N``), and their table rows. `zoo.tasks.builtin` names `predict` and `rows`."""
from __future__ import annotations

import json
from typing import Any, Iterator, Mapping, Sequence

from zoo.errors import ArgumentError


def predict(model: Any, inputs: list[str], options: Mapping[str, Any]) -> Iterator[list[dict[str, Any]]]:
    """`zoo predict` for a language model: each text's continuations, `batch_size` texts at a time.

    Args:
        model: a language model with a vocabulary.
        inputs: the texts.
        options: ``top_k`` (continuations per text), ``batch_size``, and ``generate`` (None, or
            tokens to sample after each text instead) with its ``temperature`` and ``seed``.

    Yields:
        A list per batch: `continue_texts`'s records, or with ``generate`` `generate_texts`'s.

    Raises:
        ArgumentError: the model carries no vocabulary, or does not predict the next token.
    """
    from zoo.tasks.classification import require_tokenizer

    require_tokenizer(model)
    size = int(options.get("batch_size") or 32)
    generate = options.get("generate")
    for start in range(0, len(inputs), size):
        chunk = inputs[start : start + size]
        if generate is None:
            yield continue_texts(model, chunk, top_k=int(options.get("top_k") or 5))
        else:
            yield generate_texts(model, chunk, int(generate), temperature=float(options.get("temperature", 0.7)),
                                 seed=int(options.get("seed", 0)))


def rows(prediction: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """A text's table rows: rank, the continuation (quoted, so that its spaces show) and its probability."""
    return [
        (c["rank"], json.dumps(c["text"], ensure_ascii=False), f"{c['probability']:.4f}") for c in prediction["continuations"]
    ]


def continue_texts(model: Any, prompts: Sequence[str], top_k: int = 5) -> list[dict[str, Any]]:
    """The `top_k` likeliest continuations of each prompt (each next token completed to the end of its word).

    Returns:
        One ``{"input", "continuations": [{"rank", "text", "probability"}]}`` per prompt.
    """
    _require_language_model(model)
    return [
        {
            "input": prompt,
            "continuations": [
                {"rank": rank + 1, "text": text, "probability": round(probability, 6)}
                for rank, (text, probability) in enumerate(model.continuations(prompt, k=top_k))
            ],
        }
        for prompt in prompts
    ]


def generate_texts(
    model: Any, prompts: Sequence[str], max_new_tokens: int, temperature: float = 0.7, top_k: int | None = None, seed: int = 0
) -> list[dict[str, Any]]:
    """A sampled continuation of each prompt (deterministic for a seed).

    Returns:
        One ``{"input", "generated", "temperature", "top_k", "seed"}`` per prompt.
    """
    _require_language_model(model)
    return [
        {
            "input": prompt,
            "generated": model.generate(prompt, max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, seed=seed),
            "temperature": temperature,
            "top_k": top_k,
            "seed": seed,
        }
        for prompt in prompts
    ]


def _require_language_model(model: Any) -> None:
    from zoo.heads import is_language_model

    if not is_language_model(model):
        raise ArgumentError(
            "this model does not predict the next token, so it cannot continue a text",
            "use a language model such as lstm-text; a text classifier answers without --generate",
        )
