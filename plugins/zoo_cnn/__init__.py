"""Built-in plugin: classic CNNs written in the project (LeNet-5, a small VGG). Metadata only here."""
from __future__ import annotations

from zoo import ArchSpec, InputSpec, hookimpl
from zoo.registry import TransformSpec


@hookimpl
def register_architectures(register):
    register(
        ArchSpec(
            name="lenet5",
            family="cnn",
            build="zoo_cnn.model:lenet5",
            tasks=("image-classification",),
            input=InputSpec("image", (1, 32, 32)),
            defaults={"in_chans": 1, "img_size": 32, "num_classes": 10, "activation": "tanh"},
            choices={"activation": ("tanh", "relu")},
            num_params=61706,
            description="LeNet-5 (LeCun et al., 1998): two 5×5 conv + pool stages, then fully connected 120 → 84 → classes",
        )
    )
    register(
        ArchSpec(
            name="vgg-mini",
            family="cnn",
            build="zoo_cnn.model:vgg_mini",
            tasks=("image-classification",),
            input=InputSpec("image", (3, 32, 32)),
            defaults={
                "in_chans": 3,
                "num_classes": 10,
                "widths": (32, 64, 128),
                "convs_per_stage": 2,
                "batch_norm": False,
                "dropout": 0.0,
            },
            choices={"batch_norm": (False, True)},
            num_params=288298,
            description="A small VGG: stages of 3×3 conv → ReLU pairs and a max pool, global average pooling, linear head",
        )
    )


@hookimpl
def register_transforms(register):
    register(
        TransformSpec(
            name="digits",
            build="zoo_cnn.digits:digit_transform",
            description="any picture of one digit -> scikit-learn's 8×8 digits form, at the model's input size",
        )
    )
