"""State dicts on disk and in models: memory-mapped safetensors, atomic saves, strict fast loading.

The fast path builds the model on the meta device (no allocation, no random init) and assigns
tensors that are views of the memory-mapped file, so a load costs little more than the build.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from zoo.errors import StorageError, StrictLoadError, WeightsIntegrityError, storage_error
from zoo.fsio import loads_json
from zoo.registry import ArchSpec

_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
_MAX_HEADER = 100 << 20  # safetensors' own limit
_SHOWN_KEYS = 8


def read_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file as views of a private (copy-on-write) memory map.

    Raises:
        WeightsIntegrityError: the header is not valid safetensors or points outside the file.
    """
    path = Path(path)
    size = path.stat().st_size
    header, data_start = _read_header(path, size)
    storage = torch.UntypedStorage.from_file(str(path), shared=False, nbytes=size)
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype, shape, (start, end) = _tensor_info(path, name, info, size - data_start)
        itemsize = torch.empty((), dtype=dtype).element_size()
        offset = data_start + start
        if offset % itemsize:  # unaligned: rare writers; safetensors' own reader copies such files
            from safetensors.torch import load_file

            return load_file(str(path))
        tensors[name] = torch.empty(0, dtype=dtype).set_(storage, offset // itemsize, shape)
    return tensors


def _read_header(path: Path, size: int) -> tuple[dict[str, Any], int]:
    with open(path, "rb") as f:
        prefix = f.read(8)
        length = int.from_bytes(prefix, "little") if len(prefix) == 8 else 0
        if not 0 < length <= min(_MAX_HEADER, size - 8):
            _bad(path, "its header length is out of range")
        try:
            header = loads_json(f.read(length))
        except ValueError:
            _bad(path, "its header is not JSON")
    if not isinstance(header, dict):
        _bad(path, "its header is not a JSON object")
    return header, 8 + length


def _tensor_info(path: Path, name: str, info: Any, data_size: int) -> tuple[torch.dtype, list[int], tuple[int, int]]:
    try:
        dtype = _DTYPES[info["dtype"]]
        shape = [int(d) for d in info["shape"]]
        start, end = (int(o) for o in info["data_offsets"])
    except (KeyError, TypeError, ValueError):
        _bad(path, f"tensor {name!r} has a malformed or unsupported entry")
    numel = 1
    for dim in shape:
        numel *= dim
    if not 0 <= start <= end <= data_size or end - start != numel * torch.empty((), dtype=dtype).element_size():
        _bad(path, f"tensor {name!r} points outside the file")
    return dtype, shape, (start, end)


def _bad(path: Path, why: str) -> None:
    raise WeightsIntegrityError(
        f"{path} is not a valid safetensors file: {why}", "delete it (`zoo cache rm NAME`) and fetch it again"
    )


def converted_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata a weights converter returned, kept in its converted file (``zoo.<key>`` entries).

    Raises:
        WeightsIntegrityError: the header is not valid safetensors, or an entry is not JSON.
    """
    path = Path(path)
    header, _ = _read_header(path, path.stat().st_size)
    found = {}
    for key, text in (header.get("__metadata__") or {}).items():
        if key.startswith("zoo."):
            try:
                found[key[len("zoo."):]] = loads_json(text)
            except (TypeError, ValueError):
                _bad(path, f"its metadata entry {key!r} is not JSON")
    return found


def save_safetensors(tensors: Mapping[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """Write tensors to `path` atomically (temporary file in the same folder, then a rename).

    The same tensors and metadata always give the same bytes: safetensors writes the metadata in
    hash-map order, which differs from process to process, so the header is rewritten sorted.
    """
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    seen: set[int] = set()
    plain = {}
    for name, tensor in tensors.items():
        tensor = tensor.detach().to("cpu").contiguous()
        if tensor.data_ptr() in seen and tensor.numel():  # safetensors refuses tensors sharing memory
            tensor = tensor.clone()
        seen.add(tensor.data_ptr())
        plain[name] = tensor
    from zoo.fsio import atomic_path

    with atomic_path(path) as tmp:
        try:
            save_file(plain, str(tmp), metadata=metadata)
        except Exception as exc:
            error = _write_error(exc, path, plain)
            if error is None:
                raise
            raise error from exc
        if metadata and len(metadata) > 1:
            _sort_metadata(tmp)


def _sort_metadata(path: Path) -> None:
    """Rewrite the header of a file safetensors just wrote with its metadata keys sorted, in place:
    the same entries in another order serialise to the same length."""
    with open(path, "r+b") as f:
        length = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(length))
        header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
        text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        if len(text) > length:  # safetensors escaped something json does not: keep its own header
            return
        f.seek(8)
        f.write(text.ljust(length))


def _write_error(exc: Exception, path: Path, tensors: Mapping[str, torch.Tensor]) -> StorageError | None:
    """A failed save as a StorageError naming the file and the bytes it needed, when the OS said why.

    safetensors reports OS failures as SafetensorError text ("No space left on device (os error 28)").
    """
    found = re.search(r"\(os error (\d+)\)", str(exc))
    if not isinstance(exc, OSError) and found is None:
        return None
    os_error = exc if isinstance(exc, OSError) else OSError(int(found[1]), os.strerror(int(found[1])))
    return storage_error(os_error, path=path, needed=sum(t.numel() * t.element_size() for t in tensors.values()))


# In-place initialisers: on a meta tensor they change no shape, only data that does not exist.
_INIT_OPS = frozenset(
    {name for name in dir(torch.nn.init) if name.endswith("_") and not name.startswith("_")}
    | {"normal_", "uniform_", "zero_", "fill_", "erfinv_", "mul_", "add_", "sub_", "div_", "clamp_", "copy_"}
    | {"exponential_", "bernoulli_", "random_"}
)


class SkipInitOnMeta(TorchFunctionMode):
    """Skip weight initialisers on meta tensors: the weights are about to be assigned anyway, and
    torch runs meta initialisers through slow Python reference code (half of convnext_tiny's build)."""

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if getattr(func, "__name__", "") in _INIT_OPS:
            target = args[0] if args else kwargs.get("tensor")
            if isinstance(target, torch.Tensor) and target.is_meta:
                return target
        return func(*args, **kwargs)


@dataclass
class LoadReport:
    """Which keys of the file were dropped with the old head, and which head keys are new."""

    dropped: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[str]]:
        return {"dropped": self.dropped, "new": self.new}


def build_loaded(
    arch: ArchSpec,
    arch_args: Mapping[str, Any],
    state: Mapping[str, torch.Tensor],
    *,
    file: str,
    num_classes: int | None = None,
) -> tuple[nn.Module, LoadReport]:
    """Build `arch` with `arch_args` (which match the file), load `state` strictly, then swap the head.

    Args:
        arch: the architecture.
        arch_args: its arguments as the weights were trained, including their num_classes.
        state: the tensors to load.
        file: the file's name, for error messages.
        num_classes: the wanted number of outputs; a different count gets a fresh head.

    Returns:
        The model in eval mode, and the report of the head keys dropped and created.

    Raises:
        StrictLoadError: a key is missing or unexpected, or a shape differs.
    """
    from zoo.build import build_model

    with SkipInitOnMeta():
        model = build_model(arch, device="meta", **arch_args)
    _load_strict(model, state, file)
    if any(t.is_meta for t in (*model.parameters(), *model.buffers())):
        # Non-persistent buffers are not in the file: build the ordinary way (ASSETS: swin).
        model = build_model(arch, **arch_args)
        _load_strict(model, state, file, assign=False)
    report = LoadReport()
    if num_classes is not None and num_classes != arch_args.get("num_classes"):
        report.dropped = head_keys(model)
        model.reset_classifier(num_classes)
        report.new = head_keys(model)
    return model.eval(), report


def _load_strict(model: nn.Module, state: Mapping[str, torch.Tensor], file: str, *, assign: bool = True) -> None:
    try:
        result = model.load_state_dict(state, strict=False, assign=assign)
    except RuntimeError as exc:  # shape mismatches are raised even when strict=False
        detail = str(exc).split("\n\t", 1)[-1].replace("\n\t", "; ")
        raise StrictLoadError(f"{file} does not fit {type(model).__name__}: {detail}", _REMEDY) from None
    problems = []
    if result.missing_keys:
        problems.append(f"missing keys {_show(result.missing_keys)}")
    if result.unexpected_keys:
        problems.append(f"unexpected keys {_show(result.unexpected_keys)}")
    if problems:
        raise StrictLoadError(f"{file} does not fit {type(model).__name__}: {'; '.join(problems)}", _REMEDY)


_REMEDY = "check that the weights belong to this architecture and arguments, or convert them with the right converter"


def _show(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOWN_KEYS])
    return shown + (f" and {len(keys) - _SHOWN_KEYS} more" if len(keys) > _SHOWN_KEYS else "")


def head_keys(model: nn.Module) -> list[str]:
    """The state-dict keys of the model's classifier (`get_classifier()`)."""
    classifier = model.get_classifier()
    for prefix, module in model.named_modules():
        if module is classifier:
            return [f"{prefix}.{key}" if prefix else key for key in classifier.state_dict()]
    return []
