"""The built-in export formats: ONNX, TorchScript, pt2 (torch.export) and the safetensors model directory.

`zoo.exporters.plugin` registers them; each format module imports torch (and onnx) only when used.
"""
