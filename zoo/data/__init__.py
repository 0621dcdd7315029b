"""Training data for fine-tuning: the formats plugins register, and the built-in readers.

Light on import: the readers (PIL, torch) load when a format reads its data.
"""
from zoo.data.formats import DataFormat, ReadOptions, TrainingData, data_formats, find_format, read_data

__all__ = ["DataFormat", "ReadOptions", "TrainingData", "data_formats", "find_format", "read_data"]
