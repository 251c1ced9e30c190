"""What an emotion model file says about itself (ONNX `metadata_props`), and input scaling.

Every engine reads class order, input size, input scale and version from the model file
through this module, never from constants; a file that lacks them is refused with `ModelError`.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from schemas.emotions import EMOTIONS

# `01`: x / 255; `pm1`: x / 127.5 - 1; `raw`: x as float.
INPUT_SCALES = ("01", "pm1", "raw")
REQUIRED_KEYS = ("classes", "input_size", "input_scale", "model_version")


class ModelError(Exception):
    """A model file is missing, unreadable, or does not describe itself correctly."""


@dataclass(frozen=True)
class ModelMetadata:
    """Self-description of a model: class order, square input side, pixel scale, version."""

    classes: tuple[str, ...]
    input_size: int
    input_scale: str
    model_version: str

    def to_props(self) -> dict[str, str]:
        """The ONNX `metadata_props` entries that encode this metadata."""
        return {
            "classes": ",".join(self.classes),
            "input_size": str(self.input_size),
            "input_scale": self.input_scale,
            "model_version": self.model_version,
        }

    def with_version(self, model_version: str) -> "ModelMetadata":
        return ModelMetadata(self.classes, self.input_size, self.input_scale, model_version)


def metadata_from_props(props: Mapping[str, str], source: str) -> ModelMetadata:
    """Parse and validate `metadata_props`; `source` names the file in error messages."""
    missing = [key for key in REQUIRED_KEYS if not props.get(key)]
    if missing:
        raise ModelError(f"{source}: model metadata lacks {', '.join(missing)} (metadata_props)")
    classes = tuple(name.strip() for name in props["classes"].split(","))
    if classes != EMOTIONS:
        raise ModelError(f"{source}: classes {','.join(classes)} differ from the fixed order {','.join(EMOTIONS)}")
    try:
        size = int(props["input_size"])
    except ValueError:
        raise ModelError(f"{source}: input_size {props['input_size']!r} is not an integer") from None
    if size < 8:
        raise ModelError(f"{source}: input_size {size} is too small (>= 8)")
    scale = props["input_scale"]
    if scale not in INPUT_SCALES:
        raise ModelError(f"{source}: input_scale {scale!r} is not one of {', '.join(INPUT_SCALES)}")
    return ModelMetadata(classes, size, scale, props["model_version"])


def read_metadata(path: Path | str) -> ModelMetadata:
    """Read a model file's metadata; `ModelError` if the file is missing, corrupt or undescribed."""
    import onnx
    from google.protobuf.message import DecodeError

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, OSError) as exc:
        raise ModelError(f"{path}: not a readable ONNX model ({exc})") from None
    if not model.graph.node:
        raise ModelError(f"{path}: not a readable ONNX model (empty graph)")
    return metadata_from_props({p.key: p.value for p in model.metadata_props}, str(path))


def write_metadata(path: Path | str, metadata: ModelMetadata) -> None:
    """Replace a model file's metadata_props with `metadata` (used by export and quantization)."""
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in metadata.to_props().items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))


def scale_input(batch: np.ndarray, scale: str, out: np.ndarray | None = None) -> np.ndarray:
    """uint8 (N, H, W) -> float32 (N, 1, H, W) in the model's scale; writes into `out` if given."""
    if scale not in INPUT_SCALES:
        raise ValueError(f"input scale {scale!r} is not one of {', '.join(INPUT_SCALES)}")
    n, h, w = batch.shape
    if out is None:
        out = np.empty((n, 1, h, w), dtype=np.float32)
    view = out.reshape(n, h, w)
    if scale == "01":
        np.multiply(batch, np.float32(1 / 255), out=view)
    elif scale == "pm1":
        np.multiply(batch, np.float32(1 / 127.5), out=view)
        view -= np.float32(1.0)
    else:
        view[...] = batch
    return out
