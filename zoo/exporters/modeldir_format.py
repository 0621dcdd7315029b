"""The safetensors format: a zoo model directory (config.json, model.safetensors, README.md)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from zoo.exporting import ExportRequest


def export_model_dir(request: ExportRequest) -> dict[str, Any]:
    """Write the model as a model directory at `request.path`."""
    from zoo.modeldir import save_model_dir

    save_model_dir(request.model, request.path)
    return {}


def load_model_dir(path: Path) -> Any:
    """Load the directory back as an eager model, in eval mode."""
    from zoo.loading import load_model_dir as load

    return load(path).eval()
