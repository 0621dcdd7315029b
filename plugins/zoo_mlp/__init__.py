"""Built-in plugin: multilayer perceptrons with the usual activations."""
from __future__ import annotations

from zoo import ArchSpec, InputSpec, hookimpl

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
