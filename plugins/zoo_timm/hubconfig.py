"""The keys timm reads from a model directory's config.json, so that a directory zoo writes for a
timm architecture is also a timm model repo: ``timm.create_model("local-dir:DIR" | "hf-hub:org/repo",
pretrained=True)`` builds it with zoo's weights, labels and preprocessing.

timm's own writer (the one ``timm.models.push_to_hf_hub`` uses) makes them, so the layout follows the
installed timm: ``architecture``, ``num_classes``, ``num_features``, ``label_names``, ``model_args``
and ``pretrained_cfg`` (input_size, mean, std, interpolation, crop_pct, crop_mode, ...).
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

CROP_MODE = "center"  # what timm's create_transform, and so zoo's image transform, does without a crop_mode


def timm_config(model: Any) -> dict[str, Any]:
    """timm's config.json keys for a timm model zoo built or loaded.

    Args:
        model: a timm model with ``model.zoo`` (its labels and preprocessing go into the config).

    Returns:
        The keys, as timm's ``save_config_for_hf`` writes them; none when the preprocessing names a
        transform a plugin registered (timm could not reproduce it: the directory is zoo's alone).
    """
    from timm.models._hub import save_config_for_hf

    info = model.zoo
    if "transform" in info.preprocess:
        return {}
    extra = {"label_names": list(info.labels)} if info.labels else {}
    preprocess = {k: tuple(v) if isinstance(v, list) else v for k, v in info.preprocess.items()}
    if preprocess:  # zoo's transform crops at the centre unless told otherwise; timm would take the base tag's mode
        preprocess.setdefault("crop_mode", CROP_MODE)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.json"
        save_config_for_hf(model, str(path), model_config=extra, data_config=preprocess or None)
        return json.loads(path.read_text(encoding="utf-8"))
