"""Texts in, classes out: a text classifier's top-k, through its task (a language model's
continuations and samples are `zoo.tasks.language`'s)."""
from __future__ import annotations

from typing import Any, Sequence

from zoo.heads import text_tokenizer


def is_text_model(model: Any) -> bool:
    """Whether the model reads text (a `TextModel` with a tokenizer)."""
    return text_tokenizer(model) is not None


def classify_texts(model: Any, texts: Sequence[str], top_k: int = 5, batch_size: int = 32) -> list[dict[str, Any]]:
    """Top-k classes of each text, with the model's labels (`zoo.predict.decoded.predict_task`).

    Args:
        batch_size: texts the model sees at once (memory grows with it, not with `texts`).

    Returns:
        One ``{"input", "predictions": [{"rank", "index", "label", "probability"}]}`` per text.
    """
    from zoo.predict.decoded import predict_task
    from zoo.tasks import task_of

    return predict_task(model, task_of(model), texts, top_k, batch_size)
