"""Cached features: run the frozen backbone once, keep its output, train the head on it.

A model following the head protocol computes `logits = classifier(pre_logits(x))`, where
`pre_logits` is everything before the classifier (for timm models, `forward_head(...,
pre_logits=True)`: pooling included). With the backbone frozen and no random augmentation,
`pre_logits` gives the same tensor every epoch, so it is computed once and stored in ZOO_HOME,
keyed by the backbone's weights, the preprocessing and the data's fingerprint.
"""
from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import torch
from torch import nn

from zoo.cache import zoo_home

FEATURES_VERSION = 1


def pre_logits(model: nn.Module, x: Any) -> torch.Tensor:
    """What the classifier sees: the features, pooled by the model's own head when it pools."""
    features = model.forward_features(x)
    if "pre_logits" in inspect.signature(model.forward_head).parameters:
        return model.forward_head(features, pre_logits=True)
    return features


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on a GPU; nothing on the CPU (bf16 matmuls there are slower, and less exact)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def compute_features(
    model: nn.Module,
    batches: Iterable[tuple[Any, torch.Tensor]],
    device: torch.device,
    total: int,
    progress: Callable[[int, int], None] | None = None,
    forward: Callable[[Any], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run `pre_logits` over every batch in eval mode: (features as float32 on the CPU, targets).

    Args:
        model: the model, already on `device` (channels_last for image models).
        batches: (inputs, targets) batches, in a fixed order.
        device: where the model runs.
        total: the number of samples, for progress.
        progress: called with (samples done, total) after each batch.
        forward: what computes `pre_logits` of a batch (default: the eager model; see
            zoo.finetuning.feature_runtime for ONNX Runtime).
    """
    model.eval()
    chunks, targets, done = [], [], 0
    with torch.inference_mode(), autocast(device):
        for inputs, target in batches:
            inputs = to_device(inputs, device)
            chunks.append((forward(inputs) if forward is not None else pre_logits(model, inputs)).float().cpu())
            targets.append(torch.as_tensor(target))
            done += len(targets[-1])
            if progress is not None:
                progress(done, total)
    return torch.cat(chunks), torch.cat(targets)


def to_device(inputs: Any, device: torch.device) -> Any:
    """Move a batch's inputs (a tensor, or a tuple of them) to `device`; images as channels_last."""
    if isinstance(inputs, (tuple, list)):
        return type(inputs)(to_device(t, device) for t in inputs)
    inputs = inputs.to(device, non_blocking=True)
    return inputs.contiguous(memory_format=torch.channels_last) if inputs.dim() == 4 else inputs


def cache_key(*, backbone: str, model_id: str, preprocess: Any, data: str, device: torch.device) -> str:
    """The name of a feature file: everything that changes the features goes in."""
    parts = {
        "version": FEATURES_VERSION,
        "backbone": backbone,
        "model": model_id,
        "preprocess": preprocess,
        "data": data,
        "precision": "bf16" if device.type == "cuda" else "fp32",
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def features_dir() -> Path:
    return zoo_home() / "features"


def load_cached(key: str) -> dict[str, torch.Tensor] | None:
    """The tensors stored under `key`, or None when there are none or they fail their checksum.

    A file that is unreadable or whose tensors no longer hash to the checksum stored with them
    is never used: it is deleted (a warning says so) and the features are computed again.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = features_dir() / f"{key}.safetensors"
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), "pt") as f:
            expected = (f.metadata() or {}).get(_CHECKSUM)
        tensors = load_file(path)
    except Exception:  # safetensors raises its own error types for a damaged file
        tensors, expected = {}, None
    if expected is not None and tensor_digest(tensors) == expected:
        return tensors
    warnings.warn(
        f"the cached features {path} are damaged or were changed (checksum mismatch); computing them again", stacklevel=2
    )
    path.unlink(missing_ok=True)
    return None


def store_cached(key: str, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> Path:
    """Write the tensors under `key`, atomically, with a checksum of their contents."""
    from safetensors.torch import save_file

    from zoo.fsio import atomic_path

    path = features_dir() / f"{key}.safetensors"
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={**metadata, _CHECKSUM: tensor_digest(tensors)})
    return path


_CHECKSUM = "zoo_sha256"


def tensor_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """A sha256 over tensors' names, dtypes, shapes and bytes, in name order: the identity of
    weights that have no recorded hash, and the checksum of a feature file."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name]
        digest.update(f"{name}\0{tensor.dtype}\0{list(tensor.shape)}\0".encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
