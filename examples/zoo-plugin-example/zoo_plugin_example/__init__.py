"""An example zoo plugin: registers `tinycnn` and a `zoo tinycnn-demo` command. No torch import here."""
from __future__ import annotations

import click

import zoo


@zoo.hookimpl
def register_architectures(register):
    register(
        zoo.ArchSpec(
            name="tinycnn",
            family="cnn",
            build="zoo_plugin_example.tiny:tinycnn",
            tasks=("image-classification",),
            input=zoo.InputSpec("image", (1, 28, 28)),
            defaults={"num_classes": 10, "width": 8},
            num_params=1418,
            description="Two 3×3 convolutions and global pooling: a plugin author's example",
        )
    )


@zoo.hookimpl
def register_commands(cli):
    @cli.command("tinycnn-demo")
    def tinycnn_demo():
        """Build tinycnn and print its output shape for one 28×28 image."""
        import torch

        model = zoo.load("tinycnn")
        click.echo(tuple(model(torch.zeros(1, 1, 28, 28)).shape))
