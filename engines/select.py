"""Pick and load an emotion engine: TensorRT where it can run, else ONNX Runtime; and which shipped file.

The caller passes the backend and precision (the worker from its settings: `MOVIEMOTION_ENGINE`,
`MOVIEMOTION_MODEL_PRECISION`); nothing here reads the environment. With backend "auto", a missing TensorRT
or GPU is no error: the ONNX Runtime engine is used and the reason is logged once per process. Asking for
"tensorrt" explicitly where it cannot run raises `EngineUnavailable`.

The precision (fp32, fp16, int8; default int8) chooses the model when no file is named:
ONNX Runtime runs the shipped INT8 file (`emotion-ferplus-int8.onnx`, QOperator) for int8 and the float
file otherwise; TensorRT builds from the float file at that precision (int8: explicit quantization from
Q/DQ, engines/tensorrt_engine.py). INT8 is the default: on the CPU it is 2.6x the float model's speed at
the same accuracy (engines/models/MODEL_CARD.md).
"""
from __future__ import annotations

import logging
from pathlib import Path

from engines.engine import EmotionEngine
from engines.model_files import DEFAULT_MODEL, INT8_MODEL

log = logging.getLogger(__name__)

BACKENDS = ("auto", "onnxruntime", "tensorrt")
PRECISIONS = ("fp32", "fp16", "int8")
DEFAULT_PRECISION = "int8"
_logged_fallbacks: set[str] = set()


class EngineUnavailable(RuntimeError):
    """The requested backend cannot run on this machine."""


def resolve_backend(backend: str = "auto") -> str:
    """The backend to load: `backend`, where "auto" becomes tensorrt or onnxruntime depending on what this
    machine can run."""
    from engines.tensorrt_engine import unavailable_reason

    if backend not in BACKENDS:
        raise ValueError(f"unknown engine backend {backend!r} (choose from {', '.join(BACKENDS)})")
    if backend != "auto":
        return backend
    reason = unavailable_reason()
    if reason is None:
        return "tensorrt"
    if reason not in _logged_fallbacks:
        _logged_fallbacks.add(reason)
        log.info("TensorRT not used (%s); falling back to ONNX Runtime", reason)
    return "onnxruntime"


def resolve_precision(precision: str | None = None) -> str:
    """`precision`, or DEFAULT_PRECISION when it is None; ValueError if unknown."""
    if precision is None:
        precision = DEFAULT_PRECISION
    if precision not in PRECISIONS:
        raise ValueError(f"unknown model precision {precision!r} (choose from {', '.join(PRECISIONS)})")
    return precision


def shipped_model(precision: str) -> Path:
    """The shipped file ONNX Runtime runs at `precision`: the INT8 file for int8, the float file otherwise."""
    return INT8_MODEL if resolve_precision(precision) == "int8" else DEFAULT_MODEL


def load_engine(
    backend: str = "auto",
    model_path: Path | str | None = None,
    *,
    threads: int = 2,
    precision: str | None = None,
    max_batch: int = 256,
    cache_dir: Path | str | None = None,
    lanes: int = 1,
) -> EmotionEngine:
    """Load a model on the chosen backend.

    With no `model_path`, `precision` (fp32, fp16, int8; None: int8) picks
    the shipped model: on ONNX Runtime the INT8 file for int8 and the float file otherwise, on TensorRT the float
    file built at that precision. A named file runs as it is on ONNX Runtime; on TensorRT it is built at
    `precision` (None: int8 for a Q/DQ file, else fp16). `threads` and `lanes` are for ONNX Runtime: `lanes` > 1
    gives a `ParallelEngine` of that many sessions of `threads` threads each, scoring chunks of `max_batch` at
    once. `cache_dir` (plan cache, required) is for TensorRT."""
    chosen = resolve_backend(backend)
    if model_path is None or precision is not None:
        precision = resolve_precision(precision)
    if chosen == "tensorrt":
        from engines.tensorrt_engine import TensorRTEngine, default_precision, unavailable_reason

        reason = unavailable_reason()
        if reason:
            raise EngineUnavailable(f"TensorRT backend requested but {reason}")
        path = Path(model_path) if model_path is not None else DEFAULT_MODEL
        return TensorRTEngine(path, precision=precision or default_precision(path), max_batch=max_batch, cache_dir=cache_dir)
    from engines.onnx_engine import OnnxRuntimeEngine

    if lanes < 1:
        raise ValueError(f"lanes must be >= 1, got {lanes}")
    model_path = Path(model_path) if model_path is not None else shipped_model(precision)
    if lanes == 1:
        return OnnxRuntimeEngine(model_path, threads=threads, max_batch=max_batch)
    from engines.parallel import ParallelEngine

    return ParallelEngine([OnnxRuntimeEngine(model_path, threads=threads, max_batch=max_batch) for _ in range(lanes)])
