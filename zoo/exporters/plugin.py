"""Built-in plugin: the export formats zoo ships. Light: names and strings only."""
from __future__ import annotations

from zoo.exporting import Exporter
from zoo.hookspecs import hookimpl


@hookimpl
def register_exporters(register):
    register(
        Exporter(
            name="onnx",
            suffix=".onnx",
            export="zoo.exporters.onnx_format:export_onnx",
            load="zoo.exporters.onnx_format:load_onnx",
            description="ONNX graph with dynamic batch (and sequence length), run by onnxruntime",
            takes_opset=True,
            takes_static=True,
        )
    )
    register(
        Exporter(
            name="torchscript",
            suffix=".pt",
            export="zoo.exporters.torch_formats:export_torchscript",
            load="zoo.exporters.torch_formats:load_torchscript",
            description="TorchScript (torch.jit.trace), loadable with torch.jit.load or from C++",
        )
    )
    register(
        Exporter(
            name="pt2",
            suffix=".pt2",
            export="zoo.exporters.torch_formats:export_pt2",
            load="zoo.exporters.torch_formats:load_pt2",
            description="torch.export ExportedProgram with a dynamic batch, loadable with torch.export.load",
            takes_static=True,
        )
    )
    register(
        Exporter(
            name="safetensors",
            suffix="",
            export="zoo.exporters.modeldir_format:export_model_dir",
            load="zoo.exporters.modeldir_format:load_model_dir",
            description="a zoo model directory: config.json, model.safetensors, README.md (and vocab.json)",
            directory=True,
        )
    )
