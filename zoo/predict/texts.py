"""Texts in, answers out: a language model's likely continuations or samples, a text classifier's top-k."""
from __future__ import annotations

from typing import Any, Sequence

from zoo.errors import ArgumentError
from zoo.heads import is_language_model, text_tokenizer


def is_text_model(model: Any) -> bool:
    """Whether the model reads text (a `TextModel` with a tokenizer)."""
    return text_tokenizer(model) is not None


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


def classify_texts(model: Any, texts: Sequence[str], top_k: int = 5, batch_size: int = 32) -> list[dict[str, Any]]:
    """Top-k classes of each text, with the model's labels.

    Args:
        batch_size: texts the model sees at once (memory grows with it, not with `texts`).

    Returns:
        One ``{"input", "predictions": [{"rank", "index", "label", "probability"}]}`` per text.
    """
    import torch

    from zoo.predict.images import ranked

    labels = getattr(getattr(model, "zoo", None), "labels", None)
    model = model.eval()
    results = []
    for start in range(0, len(texts), batch_size):
        chunk = list(texts[start : start + batch_size])
        ids, _ = model.tokenizer.batch(chunk)
        with torch.inference_mode():
            results += ranked(chunk, model(ids).softmax(dim=-1), labels, top_k)
    return results


def _require_language_model(model: Any) -> None:
    if not is_language_model(model):
        raise ArgumentError(
            "this model does not predict the next token, so it cannot continue a text",
            "use a language model such as lstm-text; a text classifier answers without --generate",
        )
