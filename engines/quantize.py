"""Static INT8 quantization of an emotion model with ONNX Runtime (needs no torch), and a side-by-side report.

    python -m engines.quantize --cache-dir /root/moviemotion-runs/cache
        # the shipped float model -> engines/models/emotion-ferplus-int8.onnx (QOperator), then the report
    python -m engines.quantize --format qdq-tensorrt --out runs/emotion-ferplus-qdq.onnx --no-report

Formats (`--format`):
- `qoperator` (default; the shipped INT8 file, for ONNX Runtime on CPU): QLinearConv / QLinearAdd / QGemm
  operators, per-channel int8 weights, uint8 activations. On a CPU with AVX-512 VNNI or AMX this runs about
  2.6x the float model; on one without VNNI, uint8 x int8 products can saturate (check accuracy there).
- `qdq`: the same quantization written as QuantizeLinear/DequantizeLinear pairs around float operators. ONNX
  Runtime on CPU ran it at about half the float model's speed, so it does not ship; other runtimes read it.
- `qdq-tensorrt`: Q/DQ as TensorRT's explicit quantization takes it: symmetric int8 activations and weights
  (zero point 0), per-channel weights, float biases, only Conv and the residual Add quantized
  (engines/tensorrt_engine.py builds its INT8 engines from this).

Activations are calibrated (min/max) on the first 512 FER+ PublicTest faces, the selection split; PrivateTest
is never read here. The INT8 file keeps the float file's metadata with "-int8" appended to model_version.
The report gives PublicTest accuracy (FER+ majority rule) and speed at batch 64 on 2 threads for both files.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from engines.engine import check_batch
from engines.ferplus import FaceSet, load_splits, majority_labels
from engines.model_files import DEFAULT_MODEL, INT8_MODEL
from engines.model_meta import ModelError, ModelMetadata, read_metadata, scale_input, write_metadata
from engines.onnx_engine import OnnxRuntimeEngine

CALIBRATION_SPLIT = "PublicTest"
CALIBRATION_FACES = 512
CALIBRATION_BATCH = 64
VERSION_SUFFIX = "-int8"
QOPERATOR_OPS = frozenset({"QLinearConv", "QLinearAdd", "QGemm", "QLinearMatMul", "QLinearGlobalAveragePool"})
QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})


@dataclass(frozen=True)
class Recipe:
    """How one output format is quantized. The final Softmax always stays float, so probabilities are exact."""

    quant_format: QuantFormat
    activation_type: QuantType
    weight_type: QuantType
    op_types: tuple[str, ...]
    symmetric: bool  # zero points 0 for activations and weights (TensorRT supports only that)
    quantize_bias: bool = True  # False: biases stay float (TensorRT takes no int32 DequantizeLinear)


RECIPES: dict[str, Recipe] = {
    "qoperator": Recipe(QuantFormat.QOperator, QuantType.QUInt8, QuantType.QInt8,
                        ("Conv", "Relu", "Add", "GlobalAveragePool", "Flatten", "Gemm"), symmetric=False),
    "qdq": Recipe(QuantFormat.QDQ, QuantType.QUInt8, QuantType.QInt8,
                  ("Conv", "Relu", "Add", "GlobalAveragePool", "Flatten", "Gemm"), symmetric=False),
    "qdq-tensorrt": Recipe(QuantFormat.QDQ, QuantType.QInt8, QuantType.QInt8, ("Conv", "Add"), symmetric=True,
                           quantize_bias=False),
}
FORMATS = tuple(RECIPES)


class FaceReader(CalibrationDataReader):
    """Feeds uint8 faces to the calibrator in batches, scaled as the model's metadata says."""

    def __init__(self, faces: np.ndarray, metadata: ModelMetadata, input_name: str) -> None:
        self._batches = iter(
            [
                {input_name: scale_input(faces[i : i + CALIBRATION_BATCH], metadata.input_scale)}
                for i in range(0, len(faces), CALIBRATION_BATCH)
            ]
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def quantize_model(src: Path | str, dst: Path | str, faces: np.ndarray | None, fmt: str = "qoperator", *,
                   ranges: dict[str, tuple[float, float]] | None = None) -> Path:
    """Write an INT8 copy of the float model `src` to `dst` in format `fmt`, calibrated on `faces` uint8 (N, S, S),
    or, with `ranges` (tensor name -> (rmin, rmax), e.g. `activation_ranges` of the shipped INT8 file) and no
    faces, with those activation ranges and no data.

    `ModelError` if `src` is missing, corrupt, undescribed or already quantized, or if `ranges` miss a tensor
    that gets quantized; `ValueError` for bad faces or an unknown format."""
    src, dst = Path(src), Path(dst)
    if fmt not in RECIPES:
        raise ValueError(f"unknown quantization format {fmt!r} (choose from {', '.join(FORMATS)})")
    metadata = read_metadata(src)
    if is_quantized(src):
        raise ModelError(f"{src}: already quantized (model_version {metadata.model_version}); quantize the float model")
    if faces is None and ranges is not None:
        # The calibrator must see one batch; every range it measures is replaced (checked below).
        faces = np.full((1, metadata.input_size, metadata.input_size), 128, np.uint8)
    faces = np.ascontiguousarray(check_batch(faces, metadata.input_size, what="calibration faces"))
    recipe = RECIPES[fmt]
    input_name = onnx.load(str(src)).graph.input[0].name
    extra = {"ActivationSymmetric": recipe.symmetric, "WeightSymmetric": True, "QuantizeBias": recipe.quantize_bias}
    if ranges is not None:
        extra["TensorQuantOverrides"] = {name: [{"rmin": np.float32(lo), "rmax": np.float32(hi)}] for name, (lo, hi) in ranges.items()}
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
        dst.parent.mkdir(parents=True, exist_ok=True)
        quantize_static(
            str(prepared),
            str(dst),
            FaceReader(faces, metadata, input_name),
            quant_format=recipe.quant_format,
            per_channel=True,
            activation_type=recipe.activation_type,
            weight_type=recipe.weight_type,
            op_types_to_quantize=list(recipe.op_types),
            calibrate_method=CalibrationMethod.MinMax,
            extra_options=extra,
        )
    if ranges is not None:
        graph = onnx.load(str(dst)).graph
        weights = {init.name for init in graph.initializer}
        quantized = {n.input[0] for n in graph.node if n.op_type in ("QuantizeLinear", "QLinearConv") and n.input[0] not in weights}
        if missing := sorted(quantized - set(ranges)):
            dst.unlink()
            raise ModelError(f"no activation range for {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    drop_unused_opsets(dst)
    write_metadata(dst, metadata.with_version(metadata.model_version + VERSION_SUFFIX))
    return dst


def drop_unused_opsets(path: Path) -> None:
    """Keep only the opset imports the graph's nodes use (the quantizer declares a dozen unused domains)."""
    model = onnx.load(str(path))
    used = {node.domain for node in model.graph.node} | {""}
    kept = [opset for opset in model.opset_import if opset.domain in used]
    del model.opset_import[:]
    model.opset_import.extend(kept)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def activation_ranges(qoperator_model: Path | str, float_model: Path | str) -> dict[str, tuple[float, float]]:
    """The calibrated (rmin, rmax) of each activation a QOperator INT8 file quantizes, read back from its uint8
    scales and zero points, plus each Relu output of `float_model` whose input has one (clamped at 0: the
    QOperator file folds the Relus away). Lets a Q/DQ file for TensorRT use the shipped file's ranges, no data."""
    from onnx import numpy_helper

    model = onnx.load(str(qoperator_model), load_external_data=False)
    if not set(op_counts(qoperator_model)) & QOPERATOR_OPS:
        raise ModelError(f"{qoperator_model}: not a QOperator INT8 model (no QLinearConv & co.)")
    constants = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    ranges: dict[str, tuple[float, float]] = {}
    for name, scale in constants.items():
        tensor = name.removesuffix("_scale")
        zero_point = constants.get(tensor + "_zero_point")
        if tensor == name or zero_point is None or zero_point.dtype != np.uint8 or scale.size != 1 or zero_point.size != 1:
            continue  # per-channel int8 weight scales, biases, other constants
        step, zero = float(scale.reshape(())), int(zero_point.reshape(()))
        ranges[tensor] = (-zero * step, (255 - zero) * step)
    for node in onnx.load(str(float_model), load_external_data=False).graph.node:
        if node.op_type == "Relu" and node.input[0] in ranges:
            lo, hi = ranges[node.input[0]]
            ranges.setdefault(node.output[0], (max(lo, 0.0), max(hi, 0.0)))
    return ranges


def op_counts(path: Path | str) -> Counter:
    """How many nodes of each operator type the model's graph has."""
    return Counter(node.op_type for node in onnx.load(str(path), load_external_data=False).graph.node)


def is_quantized(path: Path | str) -> bool:
    """True if the graph holds QOperator or Q/DQ operators."""
    return bool(set(op_counts(path)) & (QOPERATOR_OPS | QDQ_OPS))


def is_qdq(path: Path | str) -> bool:
    """True if the graph is in Q/DQ form (QuantizeLinear/DequantizeLinear pairs, no QOperator operators)."""
    ops = set(op_counts(path))
    return QDQ_OPS <= ops and not ops & QOPERATOR_OPS


def calibration_faces(cache_dir: Path | str, count: int = CALIBRATION_FACES) -> np.ndarray:
    """The first `count` aligned faces of PublicTest (the selection split), uint8 (count, 48, 48)."""
    faces = load_splits(Path(cache_dir))[CALIBRATION_SPLIT].pixels
    if not 1 <= count <= len(faces):
        raise ValueError(f"calibration face count must be in 1..{len(faces)}, got {count}")
    return faces[:count]


@dataclass(frozen=True)
class ModelReport:
    path: Path
    model_version: str
    size_mb: float
    majority_accuracy: float
    faces_per_second: float


def majority_accuracy(engine: OnnxRuntimeEngine, faces: FaceSet) -> float:
    """Top-1 accuracy on the faces that have a FER+ majority label."""
    labels = majority_labels(faces.votes)
    keep = labels >= 0
    return float((engine.infer(faces.pixels[keep]).argmax(1) == labels[keep]).mean())


def faces_per_second(engine: OnnxRuntimeEngine, faces: np.ndarray, batch: int = 64, seconds: float = 3.0) -> float:
    """Throughput at a fixed batch size, after one warm-up batch, over about `seconds`."""
    chunk = faces[:batch]
    engine.infer(chunk)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        engine.infer(chunk)
        done += len(chunk)
    return done / (time.perf_counter() - start)


def report(path: Path, test: FaceSet, threads: int = 2) -> ModelReport:
    engine = OnnxRuntimeEngine(path, threads=threads)
    return ModelReport(
        path,
        engine.model_version,
        path.stat().st_size / 1e6,
        majority_accuracy(engine, test),
        faces_per_second(engine, test.pixels),
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="float ONNX model to quantize")
    p.add_argument("--out", type=Path, default=INT8_MODEL, help="INT8 ONNX file to write")
    p.add_argument("--format", dest="fmt", choices=FORMATS, default="qoperator", help="quantized graph format")
    p.add_argument("--cache-dir", type=Path, default=Path(".cache"), help="FER+ aligned-face cache")
    p.add_argument("--calibration-faces", type=int, default=CALIBRATION_FACES, help="first N PublicTest faces")
    p.add_argument("--no-report", action="store_true", help="only write the file (no PublicTest accuracy/speed)")
    args = p.parse_args(argv)
    try:
        out = quantize_model(args.model, args.out, calibration_faces(args.cache_dir, args.calibration_faces), args.fmt)
    except (ModelError, ValueError, FileNotFoundError) as exc:
        p.exit(2, f"error: {exc}\n")
    print(f"wrote {out} ({args.fmt}, {out.stat().st_size / 1e6:.2f} MB, version {read_metadata(out).model_version})")
    if args.no_report:
        return
    test = load_splits(args.cache_dir)["PublicTest"]
    print(f"{'file':<48} {'version':<14} {'MB':>6} {'PublicTest maj. acc':>20} {'faces/s @64, 2 thr':>19}")
    for path in (args.model, out):
        r = report(path, test)
        print(f"{str(r.path)[-48:]:<48} {r.model_version:<14} {r.size_mb:>6.2f} {r.majority_accuracy:>20.4f} {r.faces_per_second:>19.0f}")


if __name__ == "__main__":
    main()
