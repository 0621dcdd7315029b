"""Built-in plugin: the perceptron, with the classic learning rule, and its logistic variant."""
from __future__ import annotations

from zoo import ArchSpec, InputSpec, hookimpl


@hookimpl
def register_architectures(register):
    register(
        ArchSpec(
            name="perceptron",
            family="perceptron",
            build="zoo_perceptron.model:perceptron",
            tasks=("tabular-classification",),
            input=InputSpec("features", (2,)),
            defaults={"in_features": 2, "num_classes": 2},
            num_params=6,
            description="Rosenblatt's single-layer perceptron: step activation, perceptron learning rule",
        )
    )
    register(
        ArchSpec(
            name="perceptron-logistic",
            family="perceptron",
            build="zoo_perceptron.model:logistic",
            tasks=("tabular-classification",),
            input=InputSpec("features", (2,)),
            defaults={"in_features": 2, "num_classes": 2},
            num_params=6,
            description="Single layer with a sigmoid/softmax output, trained by gradient descent",
        )
    )
