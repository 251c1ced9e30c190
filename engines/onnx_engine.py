"""The ONNX Runtime engine: CPU execution provider, CUDA when onnxruntime-gpu and a GPU are present.

One session per engine, created once; each call scales into a preallocated input buffer and
ONNX Runtime writes into a preallocated output buffer through IO binding (no per-call allocation).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from engines.engine import EmotionEngine
from engines.model_files import DEFAULT_MODEL
from engines.model_meta import ModelError, metadata_from_props, scale_input


def auto_providers() -> list[str]:
    """CUDA first when this onnxruntime build offers it, CPU always."""
    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


class OnnxRuntimeEngine(EmotionEngine):
    """Emotion model on ONNX Runtime."""

    backend = "onnxruntime"

    def __init__(
        self,
        model_path: Path | str = DEFAULT_MODEL,
        threads: int = 2,
        providers: list[str] | None = None,
        max_batch: int = 256,
    ) -> None:
        path = Path(model_path)
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(path), options, providers=providers or auto_providers())
        except Exception as exc:  # onnxruntime raises its own untyped errors for unreadable files
            raise ModelError(f"{path}: ONNX Runtime cannot load the model ({exc})") from None
        metadata = metadata_from_props(self._session.get_modelmeta().custom_metadata_map, str(path))
        super().__init__(metadata, max_batch)
        self.model_path = path
        self.providers: list[str] = self._session.get_providers()
        self._input, self._output = self._check_signature(path)
        size = metadata.input_size
        self._in_buf = np.empty((max_batch, 1, size, size), dtype=np.float32)
        self._out_buf = np.empty((max_batch, len(metadata.classes)), dtype=np.float32)
        self._binding = self._session.io_binding()

    def _check_signature(self, path: Path) -> tuple[str, str]:
        """The model must take (N, 1, S, S) and give (N, len(classes))."""
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(f"{path}: expected one input and one output, got {len(inputs)} and {len(outputs)}")
        size, classes = self.metadata.input_size, len(self.metadata.classes)
        in_shape, out_shape = inputs[0].shape, outputs[0].shape
        if len(in_shape) != 4 or list(in_shape[1:]) != [1, size, size]:
            raise ModelError(f"{path}: input shape {in_shape} does not match (N, 1, {size}, {size})")
        if len(out_shape) != 2 or out_shape[1] != classes:
            raise ModelError(f"{path}: output shape {out_shape} does not match (N, {classes})")
        return inputs[0].name, outputs[0].name

    def infer_scaled(self, x: np.ndarray) -> np.ndarray:
        """Probabilities for input already in the model's scale, float32 (N, 1, S, S): augmented training batches,
        whose values are not uint8 pixels (engines.training.teachers)."""
        return self._session.run([self._output], {self._input: np.ascontiguousarray(x, dtype=np.float32)})[0]

    def _run(self, batch: np.ndarray) -> np.ndarray:
        n = len(batch)
        x = scale_input(batch, self.metadata.input_scale, out=self._in_buf[:n])
        y = self._out_buf[:n]
        self._binding.bind_input(self._input, "cpu", 0, np.float32, list(x.shape), x.ctypes.data)
        self._binding.bind_output(self._output, "cpu", 0, np.float32, list(y.shape), y.ctypes.data)
        self._session.run_with_iobinding(self._binding)
        return y
