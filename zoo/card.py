"""The model card (README.md) of a model directory, in the Hub's model-card conventions.

The YAML front matter carries ``library_name`` (the library that loads the directory: ``timm`` for
a timm architecture, else ``zoo``), ``pipeline_tag``, ``license``, ``base_model`` (the Hub repo of the
base weights), ``tags`` and the evaluation results as ``model-index`` (no ``datasets``: zoo trains
on local folders, which are not Hub data sets); the body has the results and how to load the model
with zoo (and timm). ``huggingface_hub.ModelCard.load`` parses it. No torch import at module level.
"""
from __future__ import annotations

from pathlib import PurePath
from typing import Any, Mapping

# The metrics of a split: `val_accuracy` is the accuracy on the validation split.
SPLITS = {"val_": "validation", "test_": "test"}
SHOWN_LABELS = 20  # the card's body names this many classes at most (config.json has them all)


def pipeline_tag(model: Any, input_kind: str | None = None) -> str:
    """What the Hub calls the task of a model's head: text-generation (a language model),
    text-classification (another text model), image-classification (an architecture that takes
    images, or a model whose preprocessing reads them) or tabular-classification (a feature vector).

    Args:
        model: a model zoo built or loaded (``model.zoo``).
        input_kind: what its architecture takes (`InputSpec.kind`), when known.

    Returns:
        The pipeline tag.
    """
    from zoo.heads import is_language_model, text_tokenizer

    if is_language_model(model):
        return "text-generation"
    if text_tokenizer(model) is not None:
        return "text-classification"
    image = input_kind == "image" or "input_size" in model.zoo.preprocess
    return "image-classification" if image else "tabular-classification"


def card_text(
    config: Mapping[str, Any],
    *,
    task: str,
    library: str | None = None,
    library_architecture: str | None = None,
    license: str | None = None,
    description: str | None = None,
) -> str:
    """The README.md of a model directory.

    Args:
        config: zoo's fields of the directory's config.json (as `zoo.modeldir.read_config` returns them).
        task: the model's pipeline tag (`pipeline_tag`).
        library: the other library that loads the directory (``"timm"``), or None: zoo alone.
        library_architecture: that library's name for the architecture (for its usage snippet).
        license: the licence of the weights (default: that of the base weights, when known).
        description: a paragraph for the card (default: one naming the architecture).

    Returns:
        The card: YAML front matter, then Markdown.
    """
    from huggingface_hub import ModelCardData

    results = eval_results(config, task)
    base = _base_weights(config)
    license = license or (base.license if base else None)
    repos = [s.repo for s in base.sources if s.kind == "hf"] if base else []
    data = ModelCardData(
        library_name=library or "zoo",
        pipeline_tag=task,
        license=license.lower() if license else None,
        base_model=repos[0] if repos else None,
        tags=list(dict.fromkeys([task, *([library] if library else []), "zoo", config["architecture"]])),
        model_name=config.get("name") if results else None,  # the model-index's name
        eval_results=results or None,
    )
    body = [f"# {config['name']}", "", description or f"A `{config['architecture']}` model saved by zoo.", ""]
    if config.get("base_weights"):
        body += [f"Base weights: `{config['base_weights']['id']}`.", ""]
    if labels := config.get("labels"):
        more = f", ... ({len(labels)} in all)" if len(labels) > SHOWN_LABELS else ""
        body += ["Classes: " + ", ".join(f"`{label}`" for label in labels[:SHOWN_LABELS]) + more + ".", ""]
    if config.get("metrics"):
        body += ["## Results", "", *[f"- {k}: {v}" for k, v in config["metrics"].items()], ""]
    body += _usage(library, library_architecture)
    return "---\n" + data.to_yaml() + "\n---\n\n" + "\n".join(body)


def eval_results(config: Mapping[str, Any], task: str) -> list[Any]:
    """The evaluation results of the card's model-index: each real-valued metric of a split
    (``val_accuracy`` -> accuracy on the validation split), on the data it was trained with.
    Counts (``val_size``), the base model's figures (``*_before``) and metrics without a known
    data set stay out (they are listed in the card's body and in config.json).

    Args:
        config: zoo's fields of config.json.
        task: the model's pipeline tag.

    Returns:
        ``huggingface_hub.EvalResult`` items (empty: nothing to report).
    """
    from huggingface_hub import EvalResult

    data = (config.get("training") or {}).get("data") or {}
    if not isinstance(data, Mapping) or not data.get("path"):
        return []
    results = []
    for name, value in (config.get("metrics") or {}).items():
        prefix = next((p for p in SPLITS if name.startswith(p)), None)
        if prefix is None or not isinstance(value, float) or name.endswith("_before"):
            continue
        results.append(
            EvalResult(
                task_type=task,
                dataset_type=str(data.get("format") or "custom"),
                dataset_name=PurePath(str(data["path"])).name or "data",  # "." or "/" have no name
                dataset_split=SPLITS[prefix],
                metric_type=name.removeprefix(prefix),
                metric_name=name,
                metric_value=value,
            )
        )
    return results


def _usage(library: str | None, library_architecture: str | None) -> list[str]:
    lines = ["## Use", "", "With zoo:", "", "```python", "import zoo", "", 'model = zoo.load("hf://org/repo")  # or a local folder: zoo.load("path/to/dir")', "```", ""]
    if library == "timm":
        lines += [
            f"With timm (the directory is a timm repo too; architecture `{library_architecture}`):",
            "",
            "```python",
            "import timm",
            "from timm.data import create_transform, resolve_data_config",
            "",
            'model = timm.create_model("hf-hub:org/repo", pretrained=True).eval()  # or "local-dir:path/to/dir"',
            "transform = create_transform(**resolve_data_config({}, model=model))",
            "```",
            "",
        ]
    return lines


def _base_weights(config: Mapping[str, Any]) -> Any:
    base = config.get("base_weights") or {}
    if not base.get("id"):
        return None
    from zoo.registry import default_registry

    return default_registry().weights.get(base["id"])
