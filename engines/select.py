"""Pick and load an emotion engine: TensorRT where it can run, else ONNX Runtime.

`MOVIEMOTION_ENGINE` (auto, onnxruntime, tensorrt) replaces backend="auto". With "auto", a
missing TensorRT or GPU is no error: the ONNX Runtime engine is used and the reason is logged
once per process. Asking for "tensorrt" explicitly where it cannot run raises `EngineUnavailable`.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from engines.engine import EmotionEngine
from engines.model_meta import DEFAULT_MODEL

log = logging.getLogger(__name__)

BACKENDS = ("auto", "onnxruntime", "tensorrt")
ENV_VAR = "MOVIEMOTION_ENGINE"
_logged_fallbacks: set[str] = set()


class EngineUnavailable(RuntimeError):
    """The requested backend cannot run on this machine."""


def resolve_backend(backend: str = "auto") -> str:
    """The backend to load: `backend`, or $MOVIEMOTION_ENGINE when `backend` is "auto"; then
    "auto" becomes tensorrt or onnxruntime depending on what this machine can run."""
    from engines.tensorrt_engine import unavailable_reason

    if backend == "auto":
        backend = os.environ.get(ENV_VAR, "").strip().lower() or "auto"
    if backend not in BACKENDS:
        raise ValueError(f"unknown engine backend {backend!r} (choose from {', '.join(BACKENDS)}; check ${ENV_VAR})")
    if backend != "auto":
        return backend
    reason = unavailable_reason()
    if reason is None:
        return "tensorrt"
    if reason not in _logged_fallbacks:
        _logged_fallbacks.add(reason)
        log.info("TensorRT not used (%s); falling back to ONNX Runtime", reason)
    return "onnxruntime"


def load_engine(
    backend: str = "auto",
    model_path: Path | str = DEFAULT_MODEL,
    *,
    threads: int = 2,
    precision: str = "fp16",
    max_batch: int = 256,
    cache_dir: Path | str | None = None,
    lanes: int = 1,
) -> EmotionEngine:
    """Load the model on the chosen backend. `threads` and `lanes` are for ONNX Runtime: `lanes` > 1 gives a
    `ParallelEngine` of that many sessions of `threads` threads each, scoring chunks of `max_batch` at once.
    `precision` (fp32, fp16, int8) and `cache_dir` (plan cache) are for TensorRT."""
    chosen = resolve_backend(backend)
    if chosen == "tensorrt":
        from engines.tensorrt_engine import TensorRTEngine, unavailable_reason

        reason = unavailable_reason()
        if reason:
            raise EngineUnavailable(f"TensorRT backend requested but {reason}")
        return TensorRTEngine(model_path, precision=precision, max_batch=max_batch, cache_dir=cache_dir)
    from engines.onnx_engine import OnnxRuntimeEngine

    if lanes < 1:
        raise ValueError(f"lanes must be >= 1, got {lanes}")
    if lanes == 1:
        return OnnxRuntimeEngine(model_path, threads=threads, max_batch=max_batch)
    from engines.parallel import ParallelEngine

    return ParallelEngine([OnnxRuntimeEngine(model_path, threads=threads, max_batch=max_batch) for _ in range(lanes)])
