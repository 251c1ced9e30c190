"""Where the shipped emotion model files are: the float ONNX model and its INT8 (QOperator) copy.

The bottom of `engines/`: it imports nothing from the package, so the engines, their selection and the
quantizer can all name these files without importing each other.
"""
from __future__ import annotations

from pathlib import Path

DEFAULT_MODEL = Path(__file__).parent / "models" / "emotion-ferplus.onnx"
INT8_MODEL = DEFAULT_MODEL.with_name(DEFAULT_MODEL.stem + "-int8.onnx")
