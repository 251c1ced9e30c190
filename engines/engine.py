"""The emotion engine interface every backend (ONNX Runtime, TensorRT) implements.

`infer` takes aligned gray crops, uint8 (N, S, S) with S the model's `input_size`, and returns
float32 (N, 8) probabilities in the fixed EMOTIONS order (the softmax is part of the model
graph). The base class validates input, splits batches larger than `max_batch`, and serialises
calls (backends reuse their buffers, so one engine runs one batch at a time).
"""
from __future__ import annotations

import threading
from abc import ABC, abstractmethod

import numpy as np

from engines.model_meta import ModelMetadata


def check_batch(batch: object, input_size: int, what: str = "batch") -> np.ndarray:
    """Return `batch` if it is uint8 (N>=1, input_size, input_size); else a ValueError naming why (and `what` it is)."""
    if not isinstance(batch, np.ndarray):
        raise ValueError(f"{what} must be a numpy array, got {type(batch).__name__}")
    if batch.dtype != np.uint8:
        raise ValueError(f"{what} dtype must be uint8, got {batch.dtype}")
    if batch.ndim != 3 or batch.shape[1:] != (input_size, input_size):
        raise ValueError(f"{what} shape must be (N, {input_size}, {input_size}), got {batch.shape}")
    if batch.shape[0] == 0:
        raise ValueError(f"no {what}: the {what} is empty (N=0)")
    return batch


class EmotionEngine(ABC):
    """A loaded emotion model on one backend."""

    backend: str
    metadata: ModelMetadata
    max_batch: int

    def __init__(self, metadata: ModelMetadata, max_batch: int) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.metadata = metadata
        self.max_batch = max_batch
        self._lock = threading.Lock()

    @property
    def model_version(self) -> str:
        return self.metadata.model_version

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities float32 (N, 8) for uint8 crops (N, S, S); chunks of at most `max_batch`."""
        batch = np.ascontiguousarray(check_batch(batch, self.metadata.input_size))
        out = np.empty((len(batch), len(self.metadata.classes)), dtype=np.float32)
        with self._lock:
            for start in range(0, len(batch), self.max_batch):
                stop = min(start + self.max_batch, len(batch))
                out[start:stop] = self._run(batch[start:stop])
        return out

    @abstractmethod
    def _run(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities for a valid batch of 1..max_batch crops (may return a reused buffer)."""

    def close(self) -> None:
        """Release backend resources (device memory, sessions); the default holds none."""

    def __enter__(self) -> "EmotionEngine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
