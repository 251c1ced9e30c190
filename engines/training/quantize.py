"""Static INT8 quantization of the emotion model with ONNX Runtime, and a side-by-side report.

    python -m engines.training.quantize --model engines/models/emotion-ferplus.onnx \\
        --out engines/models/emotion-ferplus-int8.onnx

QDQ format, per-channel weights, activations calibrated on a few hundred FER+ Training faces.
The INT8 file keeps the model's metadata with "-int8" appended to model_version. The report
gives PublicTest accuracy (FER+ majority rule) and speed at batch 64 on 2 threads for both
files, so the lead can pick which one ships.
"""
from __future__ import annotations

import argparse
import tempfile
import time
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

from engines.ferplus import FaceSet, load_splits, majority_labels
from engines.model_meta import DEFAULT_MODEL, ModelMetadata, read_metadata, scale_input, write_metadata
from engines.onnx_engine import OnnxRuntimeEngine

CALIBRATION_FACES = 512
CALIBRATION_BATCH = 64
# Layers worth quantizing; the final Softmax stays float so probabilities stay exact-summing.
QUANTIZED_OPS = ["Conv", "Gemm", "MatMul", "Add", "GlobalAveragePool"]


class FaceReader(CalibrationDataReader):
    """Feeds uint8 faces to the calibrator, scaled as the model's metadata says."""

    def __init__(self, faces: np.ndarray, metadata: ModelMetadata, input_name: str) -> None:
        self._batches = iter(
            [
                {input_name: scale_input(faces[i : i + CALIBRATION_BATCH], metadata.input_scale)}
                for i in range(0, len(faces), CALIBRATION_BATCH)
            ]
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def quantize_model(src: Path, dst: Path, faces: np.ndarray) -> Path:
    """Write an INT8 QDQ copy of `src` to `dst`, calibrated on `faces` uint8 (N, S, S)."""
    metadata = read_metadata(src)
    input_name = onnx.load(str(src)).graph.input[0].name
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
        dst.parent.mkdir(parents=True, exist_ok=True)
        quantize_static(
            str(prepared),
            str(dst),
            FaceReader(faces, metadata, input_name),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=QUANTIZED_OPS,
            calibrate_method=CalibrationMethod.MinMax,
        )
    write_metadata(dst, metadata.with_version(metadata.model_version + "-int8"))
    return dst


def calibration_faces(cache_dir: Path, count: int = CALIBRATION_FACES, seed: int = 0) -> np.ndarray:
    """`count` Training faces drawn at random (fixed seed)."""
    train = load_splits(cache_dir)["Training"].pixels
    return train[np.random.default_rng(seed).choice(len(train), count, replace=False)]


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
    p.add_argument("--out", type=Path, default=DEFAULT_MODEL.with_name(DEFAULT_MODEL.stem + "-int8.onnx"))
    p.add_argument("--cache-dir", type=Path, default=Path(".cache"), help="FER+ aligned-face cache")
    p.add_argument("--calibration-faces", type=int, default=CALIBRATION_FACES)
    args = p.parse_args(argv)
    quantize_model(args.model, args.out, calibration_faces(args.cache_dir, args.calibration_faces))
    test = load_splits(args.cache_dir)["PublicTest"]
    print(f"{'file':<60} {'version':<24} {'MB':>6} {'PublicTest maj. acc':>20} {'faces/s @64, 2 thr':>19}")
    for path in (args.model, args.out):
        r = report(path, test)
        print(f"{str(r.path):<60} {r.model_version:<24} {r.size_mb:>6.2f} {r.majority_accuracy:>20.4f} {r.faces_per_second:>19.0f}")


if __name__ == "__main__":
    main()
