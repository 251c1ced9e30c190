"""The TensorRT engine (TensorRT 10+ Python API, NVIDIA cuda-python for memory and streams).

Builds a serialized engine from the same ONNX model file (explicit batch, one optimization
profile min 1 / opt 64 / max 256) in FP32, FP16, or INT8 by explicit quantization: a strongly typed
network from a Q/DQ ONNX file, either given or made from the float file by `engines.quantize`
(symmetric int8; for the shipped model with the activation ranges of the shipped INT8 file, which were
calibrated on the first 512 FER+ PublicTest faces). Implicit calibration
(`IInt8EntropyCalibrator2`) is deprecated since TensorRT 10.1 and is not used. The plan is cached keyed
by model sha256 + precision + TensorRT version + GPU name; inference uses page-locked host buffers
and async copies on one CUDA stream. A QOperator INT8 file (ONNX Runtime's) is refused: TensorRT
cannot parse QLinearConv.

`tensorrt` and `cuda` are imported lazily, so this module imports (and `unavailable_reason`
answers) on machines without them; `engines.select` falls back to ONNX Runtime there.
"""
from __future__ import annotations

import ctypes
import hashlib
import logging
import re
from pathlib import Path

import numpy as np

from engines.engine import EmotionEngine
from engines.model_files import DEFAULT_MODEL, INT8_MODEL
from engines.model_meta import ModelError, ModelMetadata, read_metadata, scale_input

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8")
PROFILE_MIN, PROFILE_OPT, PROFILE_MAX = 1, 64, 256
FER_CACHE = Path(__file__).resolve().parents[1] / ".cache"
WORKSPACE_BYTES = 1 << 30


def _cudart():
    """cuda-python's runtime module (`cuda.bindings.runtime`; `cuda.cudart` on cuda-python < 12.6)."""
    try:
        from cuda.bindings import runtime
    except ImportError:
        from cuda import cudart as runtime
    return runtime


def cuda_call(result: tuple):
    """Unpack a cuda-python `(err, *values)` tuple; raise RuntimeError on a CUDA error."""
    cudart = _cudart()
    err, values = result[0], result[1:]
    if err != cudart.cudaError_t.cudaSuccess:
        raise RuntimeError(f"CUDA error {err.name if hasattr(err, 'name') else err}")
    return values[0] if len(values) == 1 else values or None


def unavailable_reason() -> str | None:
    """None when TensorRT can run here; else why not (no tensorrt, no cuda-python, no GPU)."""
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return "the tensorrt package is not installed"
    try:
        cudart = _cudart()
    except ImportError:
        return "cuda-python is not installed"
    err, count = cudart.cudaGetDeviceCount()
    if err != cudart.cudaError_t.cudaSuccess or count < 1:
        return f"no CUDA GPU is visible ({getattr(err, 'name', err)})"
    return None


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def plan_path(cache_dir: Path, model_sha256: str, precision: str, trt_version: str, gpu_name: str) -> Path:
    """Where the plan for this model, precision, TensorRT version and GPU lives in the cache."""
    gpu = re.sub(r"[^A-Za-z0-9]+", "-", gpu_name).strip("-").lower()
    return Path(cache_dir) / f"{model_sha256[:16]}-{precision}-trt{trt_version}-{gpu}.plan"


def gpu_name(device: int = 0) -> str:
    name = cuda_call(_cudart().cudaGetDeviceProperties(device)).name
    return name.decode(errors="replace").rstrip("\x00") if isinstance(name, bytes) else str(name)


class PinnedArray:
    """A page-locked host array and a device buffer of the same size."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        cudart = _cudart()
        self.nbytes = int(np.prod(shape)) * 4
        self.host_ptr = cuda_call(cudart.cudaMallocHost(self.nbytes))
        self.device_ptr = cuda_call(cudart.cudaMalloc(self.nbytes))
        pointer = ctypes.cast(self.host_ptr, ctypes.POINTER(ctypes.c_float))
        self.host = np.ctypeslib.as_array(pointer, shape)

    def to_device(self, nbytes: int, stream) -> None:
        cudart = _cudart()
        kind = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        cuda_call(cudart.cudaMemcpyAsync(self.device_ptr, self.host_ptr, nbytes, kind, stream))

    def to_host(self, nbytes: int, stream) -> None:
        cudart = _cudart()
        kind = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        cuda_call(cudart.cudaMemcpyAsync(self.host_ptr, self.device_ptr, nbytes, kind, stream))

    def free(self) -> None:
        cudart = _cudart()
        cuda_call(cudart.cudaFree(self.device_ptr))
        cuda_call(cudart.cudaFreeHost(self.host_ptr))


def model_kind(model_path: Path) -> str:
    """"float", "qdq" (QuantizeLinear/DequantizeLinear: explicit quantization) or "qoperator" (ONNX Runtime's
    QLinearConv & co., which TensorRT cannot parse)."""
    from engines.quantize import QOPERATOR_OPS, is_qdq, op_counts

    if set(op_counts(model_path)) & QOPERATOR_OPS:
        return "qoperator"
    return "qdq" if is_qdq(model_path) else "float"


def default_precision(model_path: Path) -> str:
    """int8 for a Q/DQ file (its precision is in the graph), fp16 for a float one."""
    return "int8" if model_kind(Path(model_path)) == "qdq" else "fp16"


def check_source(model_path: Path, precision: str) -> str:
    """What TensorRT builds `model_path` at `precision` from: "float" (FP32/FP16 builder flags), "qdq" (the file is
    already Q/DQ) or "quantize" (float file at int8: a Q/DQ copy is made first). ModelError / ValueError if it
    cannot: a QOperator file, or a Q/DQ file asked for fp32/fp16."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    kind = model_kind(model_path)
    if kind == "qoperator":
        raise ModelError(
            f"{model_path}: an ONNX Runtime QOperator INT8 model (QLinearConv) cannot run on TensorRT; "
            "give TensorRT the float model with precision int8 (or a Q/DQ file from `python -m engines.quantize --format qdq-tensorrt`)"
        )
    if kind == "qdq":
        if precision != "int8":
            raise ValueError(f"{model_path} is a Q/DQ (INT8) model: it builds only at precision int8, not {precision}")
        check_tensorrt_qdq(model_path)
        return "qdq"
    return "quantize" if precision == "int8" else "float"


def check_tensorrt_qdq(model_path: Path) -> None:
    """ModelError unless every Q/DQ pair is int8 with zero point 0 (TensorRT quantizes symmetrically only)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(model_path), load_external_data=False)
    constants = {init.name: init for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        name = node.input[2] if len(node.input) > 2 else ""
        if not name:
            if node.op_type == "QuantizeLinear":  # no zero point: ONNX quantizes to uint8
                problem = "no zero point (uint8 output)"
            else:
                continue
        elif name not in constants:
            problem = "a zero point that is not a constant"
        else:
            values = numpy_helper.to_array(constants[name])
            if values.dtype == np.int8 and not values.any():
                continue
            problem = f"a {values.dtype} zero point{' that is not 0' if values.any() else ''}"
        raise ModelError(
            f"{model_path}: {node.op_type} {node.name!r} has {problem}; TensorRT needs symmetric int8 Q/DQ "
            "(`python -m engines.quantize --format qdq-tensorrt`)"
        )


def qdq_model(model_path: Path, cache_dir: Path) -> Path:
    """A Q/DQ (TensorRT recipe) copy of the float model, kept in the plan cache by the float file's hash.

    For the shipped float file its activation ranges are those of the shipped INT8 file (calibrated on the first
    512 PublicTest faces), read back from it: no data needed on the GPU box. For another float file they are
    calibrated on those faces (the FER+ cache or ../shared must be there)."""
    from engines.quantize import CALIBRATION_FACES, activation_ranges, calibration_faces, quantize_model

    out = Path(cache_dir) / f"{file_sha256(model_path)[:16]}-qdq-tensorrt.onnx"
    if out.is_file():
        return out
    tmp = out.with_suffix(".tmp.onnx")
    float_version = read_metadata(model_path).model_version
    if INT8_MODEL.is_file() and read_metadata(INT8_MODEL).model_version == float_version + "-int8":
        quantize_model(model_path, tmp, None, "qdq-tensorrt", ranges=activation_ranges(INT8_MODEL, model_path))
    else:
        try:
            faces = calibration_faces(FER_CACHE, CALIBRATION_FACES)
        except FileNotFoundError as exc:
            raise ModelError(
                f"TensorRT INT8 needs a Q/DQ model: none given and no FER+ faces to calibrate one ({exc}); make one "
                "with `python -m engines.quantize --format qdq-tensorrt --out FILE` and load that file"
            ) from None
        quantize_model(model_path, tmp, faces, "qdq-tensorrt")
    tmp.replace(out)
    return out


def build_plan(model_path: Path, metadata: ModelMetadata, precision: str, cache_dir: Path) -> bytes:
    """Parse the ONNX file and build a serialized engine for batch sizes 1..PROFILE_MAX.

    fp32 / fp16: the float file, with the FP16 builder flag for fp16. int8: explicit quantization, the current
    way since TensorRT 10.1 deprecated implicit calibration: a strongly typed network parsed from a Q/DQ file (the
    file itself, or a copy quantized here), no precision flags; layers without Q/DQ run in FP32."""
    import tensorrt as trt

    source = check_source(model_path, precision)
    if source == "quantize":
        model_path = qdq_model(model_path, cache_dir)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    strongly_typed = source != "float"
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if strongly_typed else 0
    network = builder.create_network(flags)  # explicit batch: the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(model_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelError(f"{model_path}: TensorRT cannot parse the model: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    size, name = metadata.input_size, network.get_input(0).name
    profile = builder.create_optimization_profile()
    profile.set_shape(name, (PROFILE_MIN, 1, size, size), (PROFILE_OPT, 1, size, size), (PROFILE_MAX, 1, size, size))
    config.add_optimization_profile(profile)
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise RuntimeError(f"TensorRT failed to build a {precision} engine from {model_path}")
    return bytes(plan)


class TensorRTEngine(EmotionEngine):
    """Emotion model on TensorRT; the plan is built once per model/precision/TensorRT/GPU and cached."""

    backend = "tensorrt"

    def __init__(
        self,
        model_path: Path | str = DEFAULT_MODEL,
        precision: str = "fp16",
        max_batch: int = PROFILE_MAX,
        cache_dir: Path | str | None = None,
    ) -> None:
        import tensorrt as trt

        if not 1 <= max_batch <= PROFILE_MAX:
            raise ValueError(f"max_batch must be in 1..{PROFILE_MAX}, got {max_batch}")
        reason = unavailable_reason()
        if reason:
            raise RuntimeError(f"TensorRT cannot run here: {reason}")
        self.model_path = Path(model_path)
        super().__init__(read_metadata(self.model_path), max_batch)
        self.source = check_source(self.model_path, precision)
        self.precision = precision
        if not cache_dir:
            raise ValueError("TensorRT needs a plan cache directory (the worker's: <state dir>/tensorrt)")
        cache_dir = Path(cache_dir)
        cache_dir.mkdir(parents=True, exist_ok=True)
        # "int8-qdq": never reuse a plan cached by the implicit-calibration INT8 of earlier versions.
        tag = "int8-qdq" if precision == "int8" else precision
        self.plan_path = plan_path(cache_dir, file_sha256(self.model_path), tag, trt.__version__, gpu_name())
        if not self.plan_path.is_file():
            log.info("building TensorRT %s engine for %s (cached at %s)", precision, self.model_path, self.plan_path)
            plan = build_plan(self.model_path, self.metadata, precision, cache_dir)
            tmp = self.plan_path.with_suffix(".tmp")
            tmp.write_bytes(plan)
            tmp.replace(self.plan_path)
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self._engine = self._runtime.deserialize_cuda_engine(self.plan_path.read_bytes())
        if self._engine is None:
            raise ModelError(f"{self.plan_path}: TensorRT cannot deserialize the cached plan (delete it to rebuild)")
        self._context = self._engine.create_execution_context()
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        inputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(f"{self.model_path}: expected one input and one output tensor, got {names}")
        self._input, self._output = inputs[0], outputs[0]
        size, classes = self.metadata.input_size, len(self.metadata.classes)
        self._in = PinnedArray((max_batch, 1, size, size))
        self._out = PinnedArray((max_batch, classes))
        self._context.set_tensor_address(self._input, int(self._in.device_ptr))
        self._context.set_tensor_address(self._output, int(self._out.device_ptr))
        self._stream = cuda_call(_cudart().cudaStreamCreate())

    def _run(self, batch: np.ndarray) -> np.ndarray:
        n, size = len(batch), self.metadata.input_size
        scale_input(batch, self.metadata.input_scale, out=self._in.host[:n])
        self._context.set_input_shape(self._input, (n, 1, size, size))
        self._in.to_device(n * size * size * 4, self._stream)
        if not self._context.execute_async_v3(int(self._stream)):
            raise RuntimeError("TensorRT execution failed")
        self._out.to_host(n * len(self.metadata.classes) * 4, self._stream)
        cuda_call(_cudart().cudaStreamSynchronize(self._stream))
        return self._out.host[:n]

    def close(self) -> None:
        if getattr(self, "_stream", None) is None:
            return
        cuda_call(_cudart().cudaStreamSynchronize(self._stream))
        self._in.free()
        self._out.free()
        cuda_call(_cudart().cudaStreamDestroy(self._stream))
        self._stream = None
        self._context = self._engine = None
