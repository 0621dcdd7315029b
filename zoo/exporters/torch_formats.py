"""PyTorch's own formats: TorchScript (torch.jit.trace) and pt2 (torch.export).

pt2 keeps the batch dynamic (the example batch is 2: torch.export specialises a size-1 dimension).
torch.export unrolls recurrent layers over time, which fixes the sequence length: the exporter
then tries again with only the batch dynamic and reports the length it fixed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from zoo.export import ExportRequest
from zoo.exporters.onnx_format import quiet


def export_torchscript(request: ExportRequest) -> dict[str, Any]:
    """Trace the model with the example and save it; the parity check proves other shapes work."""
    with quiet(), torch.no_grad():
        traced = torch.jit.trace(request.model, request.example, check_trace=False)
        torch.jit.save(traced, str(request.path))
    return {"method": "torch.jit.trace"}


def load_torchscript(path: Path) -> Any:
    """Read a TorchScript file back."""
    with quiet():
        return torch.jit.load(str(path), map_location="cpu")


def export_pt2(request: ExportRequest) -> dict[str, Any]:
    """torch.export the model with dynamic batch and sequence length (when it allows), and save it."""
    dims = {axis: torch.export.Dim(name, min=1) for axis, name in request.input_dims.items()}
    notes: dict[str, Any] = {}
    try:
        program = _export(request, dims)
    except Exception as exc:
        seq_axes = [axis for axis, name in request.input_dims.items() if name == "seq"]
        if not seq_axes:
            raise
        for axis in seq_axes:
            del dims[axis]
        program = _export(request, dims)
        notes["fixed"] = {"seq": int(request.example.shape[seq_axes[0]])}
        notes["why_fixed"] = f"torch.export could not keep the sequence length dynamic: {str(exc).strip().splitlines()[0]}"
    torch.export.save(program, str(request.path))
    return notes


def _export(request: ExportRequest, dims: dict[int, Any]) -> Any:
    with quiet(), torch.no_grad():
        return torch.export.export(request.model, (request.example,), dynamic_shapes=(dims,) if dims else None)


def load_pt2(path: Path) -> Any:
    """Read a pt2 file back as a callable module."""
    with quiet():
        return torch.export.load(str(path)).module()
