"""`zoo predict`: run a model on inputs and print the top-k answers (image classification here)."""
from __future__ import annotations

import click

from zoo.cli.output import emit_json, emit_table, json_option


@click.command("predict")
@click.argument("model")
@click.argument("inputs", nargs=-1, required=True)
@click.option("--top-k", "-k", "top_k", default=5, show_default=True, type=click.IntRange(min=1), help="Classes per input.")
@click.option(
    "--runtime", type=click.Choice(["torch", "onnx"]), default="torch", show_default=True,
    help="onnx: run the exported model.onnx of a model directory (or an .onnx file) in onnxruntime.",
)
@json_option
def predict_command(model: str, inputs: tuple[str, ...], top_k: int, runtime: str, json_: bool) -> None:
    """Classify INPUTS with MODEL (a name, a model directory or hf://org/repo).

    Images may be PNG or JPEG in any mode (L, RGB, RGBA, CMYK, P); each model's own preprocessing
    and labels are used.

    \b
    Examples:
      zoo predict tf_efficientnet_lite0.in1k cat.png
      zoo predict ./out photo1.jpg photo2.jpg --top-k 3 --json
      zoo predict ./out photo.jpg --runtime onnx      # after `zoo export ./out`
    """
    import zoo
    from zoo.images import classify_images

    if runtime == "onnx":
        from zoo.exporters.onnx_format import load_onnx_model

        loaded = load_onnx_model(model)
    else:
        loaded = zoo.load(model)
    results = classify_images(loaded, inputs, top_k=top_k)
    if json_:
        emit_json(results)
        return
    emit_table(
        ("INPUT", "RANK", "LABEL", "PROBABILITY"),
        [(r["input"], p["rank"], p["label"], f"{p['probability']:.4f}") for r in results for p in r["predictions"]],
    )


COMMANDS = [predict_command]
