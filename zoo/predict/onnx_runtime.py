"""An ONNX export run by onnxruntime, standing in for a zoo model: `zoo predict --runtime onnx`."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch


class OnnxRunner:
    """An onnxruntime CPU session that takes and returns torch tensors.

    With `lanes` above 1, a batch is cut into that many parts that run at once, each on its own
    thread of this process (a session runs concurrent calls): single-threaded runs side by side keep
    cores busy where one run's threads wait for each other, and leave room to what decodes the next
    batch (lite0 on 2 cores, zoo predict --output: 162-172 images/s with 1 thread × 4 lanes against
    148-152 with 2 threads × 1)."""

    def __init__(self, path: str | Path, threads: int | None = None, lanes: int = 1):
        import onnxruntime as ort

        self.path, self.threads, self.lanes = Path(path), threads, lanes
        self.pool: Any = None
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        # Idle threads sleep instead of spinning: the cores go to whatever decodes the next batch
        # meanwhile (zoo predict --output: 157 against 150 images/s for lite0 on 2 cores; alone no slower).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.lanes > 1 and len(x) > 1:
            return self._in_lanes(x)
        outputs = self.session.run(None, {self.input_name: x.detach().cpu().numpy()})
        return [torch.from_numpy(o) for o in outputs]

    def _in_lanes(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self.pool = ThreadPoolExecutor(self.lanes, thread_name_prefix="zoo-onnx-lane")
        parts = list(self.pool.map(lambda part: self.session.run(None, {self.input_name: part.numpy()}),
                                   x.detach().cpu().chunk(self.lanes)))
        return [torch.cat([torch.from_numpy(part[i]) for part in parts]) for i in range(len(parts[0]))]


class OnnxModel:
    """An exported ONNX file that stands in for a zoo model: `model(x)`, `.eval()`, `.zoo` (labels,
    preprocessing) and, for text models, `.tokenizer`."""

    def __init__(self, path: Path, info: Any, tokenizer: Any = None, threads: int | None = None, task: str | None = None):
        self.path = path
        self.zoo = info
        self.tokenizer = tokenizer
        self.task = task  # the task its config or sidecar names (zoo.tasks looks it up)
        self.runner = OnnxRunner(path, threads)

    def eval(self) -> OnnxModel:
        return self

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        rank = len(self.runner.session.get_inputs()[0].shape)
        if x.dim() > rank:  # a model that flattens its picture itself (an MLP) was exported on the features
            x = x.flatten(rank - 1)
        pad = getattr(self.tokenizer, "pad_id", None)
        if pad is None or not bool((x == pad).any()):
            return self.runner(x)[0]
        # The graph computes unpadded sequences (eager models pack padded ones): one text at a time.
        return torch.cat([self.runner(_unpadded(row, pad)[None])[0] for row in x])


def _unpadded(ids: torch.Tensor, pad: int) -> torch.Tensor:
    """A row of token ids without the padding on either end."""
    kept = (ids != pad).nonzero().flatten()
    return ids[int(kept[0]) : int(kept[-1]) + 1] if len(kept) else ids[:1]


def load_onnx_model(name: str | Path, threads: int | None = None) -> OnnxModel:
    """The ONNX export of a model directory (`DIR/model.onnx`, preprocessing and labels from config.json),
    or an `.onnx` file with the sidecar `zoo export` wrote next to it.

    Raises:
        ArgumentError: no such file, no exported model.onnx in the directory, or no sidecar.
    """
    from zoo.errors import ArgumentError
    from zoo.exporting import check_files, read_sidecar, unreadable
    from zoo.heads import model_info
    from zoo.modeldir import is_model_dir, read_config

    path = Path(name)
    if is_model_dir(path):
        config, file = read_config(path), path / "model.onnx"
        if not file.is_file():
            raise ArgumentError(f"{path} holds no model.onnx", f"run `zoo export {path}` first")
    elif path.is_file():
        file, sidecar = path, path.with_name(path.name + ".json")
        if not sidecar.is_file():
            raise ArgumentError(f"{path} has no sidecar {sidecar.name} (labels, preprocessing)",
                                "export it with `zoo export`, or pass the model directory")
        config = read_sidecar(sidecar)
    else:
        raise ArgumentError(f"--runtime onnx runs an exported file, and {name} is neither a model directory nor a file",
                            "pass a model directory holding model.onnx, or an .onnx file")
    info = model_info(
        str(config.get("name") or config.get("model") or path.name),
        str(config.get("architecture")),
        labels=config.get("labels"),
        preprocess=dict(config.get("preprocess") or {}),
        source=str(file),
    )
    tokenizer = _tokenizer(path, config)
    try:
        model = OnnxModel(file, info, tokenizer, threads, task=config.get("task") if isinstance(config.get("task"), str) else None)
    except Exception as exc:  # onnxruntime's own error types: a damaged file, or not ONNX at all
        raise unreadable(file, "onnx", exc) from exc
    sidecar = file.with_name(file.name + ".json")
    if not sidecar.is_file():
        raise ArgumentError(f"{file} has no sidecar {sidecar.name}: its export was interrupted", f"run `zoo export {path}` again")
    check_files(file, sidecar, read_sidecar(sidecar))
    return model


def _tokenizer(path: Path, config: Mapping[str, Any]) -> Any:
    """A model directory's vocabulary, for a text classifier (None for other models)."""
    from zoo.errors import ArgumentError

    from zoo.modeldir import vocab_reference

    vocab = vocab_reference(path, config) if path.is_dir() else None  # a sidecar never names a vocabulary
    if not vocab:
        return None
    from zoo.data.tokenizers import load_tokenizer

    tokenizer = load_tokenizer(vocab)
    if config.get("num_classes") in (None, len(tokenizer)):
        raise ArgumentError(
            f"{path} is a language model: --runtime onnx runs classifiers",
            "continue texts with the eager model: drop --runtime onnx",
        )
    return tokenizer
