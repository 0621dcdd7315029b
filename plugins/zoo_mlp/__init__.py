"""Built-in plugin: multilayer perceptrons with the usual activations, and the weights it bundles (mlp-digits)."""
from __future__ import annotations

from zoo import ArchSpec, InputSpec, Source, WeightSpec, hookimpl

# The names zoo.heads.ACTIVATIONS maps to modules, kept here as data so listing imports no torch.
ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu", "silu", "softplus")


@hookimpl
def register_architectures(register):
    register(
        ArchSpec(
            name="mlp",
            family="mlp",
            build="zoo_mlp.model:mlp",
            tasks=("tabular-classification", "image-classification"),
            input=InputSpec("features", (64,)),
            defaults={
                "in_features": 64,
                "hidden": (128, 64),
                "num_classes": 10,
                "activation": "relu",
                "dropout": 0.0,
                "batch_norm": False,
            },
            choices={"activation": ACTIVATIONS, "batch_norm": (False, True)},
            num_params=17226,
            description="Multilayer perceptron: Linear → [BatchNorm] → activation → [Dropout] blocks, then a linear head",
        )
    )


@hookimpl
def register_weights(register):
    register(
        WeightSpec(
            id="mlp.digits",
            arch="mlp",
            aliases=("mlp-digits",),
            description="zoo's MLP (64-128-64-10) trained on scikit-learn's 8×8 digits by scripts/train_digits.py",
            sources=(
                Source(
                    "bundled",
                    package="zoo_mlp",
                    path="weights/mlp-digits.safetensors",
                    sha256="60ae775343c83a909f4b5467c00682f63a1804bebb4f7c1592069249c1f92dc7",
                    size=69400,
                ),
            ),
            num_classes=10,
            labels=tuple(str(digit) for digit in range(10)),
            # "digits" is the transform zoo_cnn registers: named, never imported, so this plugin needs no other.
            preprocess={"input_size": [1, 8, 8], "transform": "digits"},
            metrics={"dataset": "sklearn digits, 450 held out (stratified, random_state=0)", "accuracy": 0.9667},
            license="MIT",
            origin="trained by zoo's recipe: python scripts/train_digits.py mlp-digits",
        )
    )
