"""Prediction: image and text models' answers (top-k classes, continuations, samples), many image
files' answers written to one CSV or JSONL file (files.py), and an ONNX export run by onnxruntime
standing in for a model. Training data lives in zoo.data; this package
reads its inputs with zoo.data's image reader and tokenizers, and nothing in zoo.data imports it."""
