"""Built-in plugin: classic CNNs written in the project (LeNet-5, a small VGG), the digits transform and the
weights it bundles (lenet5-digits). Metadata only here."""
from __future__ import annotations

from zoo import ArchSpec, InputSpec, Source, WeightSpec, hookimpl
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
def register_weights(register):
    register(
        WeightSpec(
            id="lenet5.digits",
            arch="lenet5",
            aliases=("lenet5-digits",),
            description="LeNet-5 trained on scikit-learn's digits upsampled to 32×32, by scripts/train_digits.py",
            sources=(
                Source(
                    "bundled",
                    package="zoo_cnn",
                    path="weights/lenet5-digits.safetensors",
                    sha256="a10ced53c9cfd9d7827e4f69759f383236a1348ae68f4bdadcac3148b6b68271",
                    size=247608,
                ),
            ),
            num_classes=10,
            labels=tuple(str(digit) for digit in range(10)),
            preprocess={"input_size": [1, 32, 32], "transform": "digits"},
            metrics={"dataset": "sklearn digits, 450 held out (stratified, random_state=0)", "accuracy": 0.9733},
            license="MIT",
            origin="trained by zoo's recipe: python scripts/train_digits.py lenet5-digits",
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
