"""The built-in tasks' code: a class per input (image, text, tabular classification), the next
token of a language model, and a class per step (a recurrent tagger). `zoo.tasks.builtin` registers them; the finetuning and evaluation
machinery that predates the hook keeps running them as it did."""
from __future__ import annotations

from typing import Any, Sequence


def decode(outputs: Any, labels: Sequence[str] | None, top_k: int) -> list[dict[str, Any]]:
    """Each input's `top_k` classes from scores [batch, classes], as `zoo predict` prints them.

    Returns:
        One ``{"predictions": [{"rank", "index", "label", "probability"}]}`` per input.
    """
    from zoo.predict.images import ranked

    results = ranked([""] * len(outputs), outputs.float().softmax(dim=-1), labels, top_k)
    return [{"predictions": r["predictions"]} for r in results]


def decode_next_token(outputs: Any, labels: Sequence[str] | None, top_k: int) -> list[dict[str, Any]]:
    """A language model's `top_k` next tokens after each input, from scores [batch, time, vocab] (or
    [batch, vocab], a model that scores the next token only)."""
    return decode(outputs[:, -1] if outputs.dim() == 3 else outputs, labels, top_k)


def decode_steps(outputs: Any, labels: Sequence[str] | None, top_k: int) -> list[dict[str, Any]]:
    """A tagger's best class at every step, from scores [batch, time, classes], with its probability."""
    probabilities, best = outputs.float().softmax(-1).max(-1)
    names = list(labels or [])
    return [
        {
            "tags": [names[i] if i < len(names) else str(i) for i in row.tolist()],
            "probabilities": [round(p, 6) for p in probs.tolist()],
        }
        for row, probs in zip(best, probabilities)
    ]


def step_rows(prediction: dict[str, Any]) -> list[tuple[Any, ...]]:
    """A tagger's table row: its tags, space-separated."""
    return [(" ".join(prediction["tags"]),)]


def rows(prediction: dict[str, Any]) -> list[tuple[Any, ...]]:
    """A decoded prediction's table rows: rank, label, probability."""
    return [(p["rank"], p["label"], f"{p['probability']:.4f}") for p in prediction["predictions"]]


class Accuracy:
    """The share of targets whose class scores highest (targets of -100 are not counted)."""

    def __init__(self, labels: Sequence[str] | None = None):
        self.correct = 0
        self.count = 0

    def update(self, outputs: Any, targets: Any) -> None:
        """Count one batch: scores [..., classes] against targets [...]."""
        predicted = outputs.argmax(-1)
        mask = targets != -100
        self.correct += int((predicted[mask] == targets[mask]).sum())
        self.count += int(mask.sum())

    def merge(self, other: Accuracy) -> None:
        """Add another rank's counts (`zoo finetune --nproc`: each rank scores its share)."""
        self.correct += other.correct
        self.count += other.count

    def result(self) -> dict[str, float]:
        """The accuracy over every batch counted (NaN when nothing was)."""
        return {"accuracy": self.correct / self.count if self.count else float("nan")}


def image_inputs(model: Any, data: Any, options: Any) -> Any:
    """The image datasets of a fine-tuning run (`zoo.finetuning.inputs.image_inputs`)."""
    from zoo.finetuning.inputs import image_inputs as images

    return images(model, data, options)


def text_inputs(model: Any, data: Any, options: Any) -> Any:
    """The text datasets of a fine-tuning run: token batches or corpus windows (`zoo.finetuning.text_inputs`)."""
    from zoo.finetuning.text_inputs import text_inputs as texts

    return texts(model, data, options)


def prepare_images(model: Any, paths: list[str]) -> Any:
    """The image files as the model's preprocessing makes them, one batch [N, C, H, W].

    Raises:
        DataError: a file cannot be used (unreadable, not an image, too large to decode safely), named.
    """
    import torch

    from zoo.data.image_files import ImageReader

    read = ImageReader(model.zoo.preprocess)
    return torch.stack([read(path) for path in paths])


def prepare_texts(model: Any, inputs: list[str]) -> Any:
    """The token-id batch of `inputs` (texts), padded by the model's tokenizer.

    Raises:
        ArgumentError: the model carries no vocabulary, so text cannot become its input.
    """
    ids, _ = require_tokenizer(model).batch(list(inputs))
    return ids


def require_tokenizer(model: Any) -> Any:
    """The tokenizer of a model that reads text.

    Raises:
        ArgumentError: the model carries no vocabulary, so text cannot become its input.
    """
    from zoo.heads import text_tokenizer

    tokenizer = text_tokenizer(model)
    if tokenizer is None:
        from zoo.errors import ArgumentError

        name = getattr(getattr(model, "zoo", None), "name", type(model).__name__)
        raise ArgumentError(
            f"{name} reads token ids but carries no vocabulary, so text cannot be turned into its input",
            "build it with a vocabulary (vocab=...), or predict with a model directory `zoo finetune` wrote from text",
        )
    return tokenizer
