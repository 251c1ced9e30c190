"""INT8 quantization (engines/quantize.py) without torch: the QOperator file it writes and the shipped INT8 file
keep the model's metadata (version + "-int8") and agree with the float model on real faces; bad input is refused.

Calibration uses the repository's own sample sprite (32 real FER faces, producers/sample/faces.npz); agreement is
checked on those faces and on FER+ PublicTest (from ../shared, as the other engine tests)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from engines.model_files import INT8_MODEL
from engines.model_meta import ModelError, read_metadata
from engines.onnx_engine import OnnxRuntimeEngine
from engines.quantize import (
    CALIBRATION_FACES,
    QOPERATOR_OPS,
    calibration_faces,
    is_qdq,
    is_quantized,
    main,
    op_counts,
    quantize_model,
)
from tests.fixtures.engine_faces import FER_CACHE

SPRITE = Path(__file__).resolve().parents[1] / "producers" / "sample" / "faces.npz"


@pytest.fixture(scope="module")
def sprite_faces() -> np.ndarray:
    """The 32 real FER faces of the sample screening, uint8 (32, 48, 48)."""
    return np.load(SPRITE)["faces"]


@pytest.fixture(scope="module")
def sprite_int8(shipped_model, sprite_faces, tmp_path_factory) -> Path:
    """The shipped float model quantized (QOperator) on the sample sprite's faces."""
    return quantize_model(shipped_model, tmp_path_factory.mktemp("int8") / "int8.onnx", sprite_faces)


def top1_agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float((a.argmax(1) == b.argmax(1)).mean())


def test_torch_is_not_needed():
    import subprocess
    import sys

    # A meta-path hook refuses torch: quantization must import and run its module without it.
    script = (
        "import sys\n"
        "class NoTorch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch' or name.startswith('torch.'): raise ModuleNotFoundError('torch blocked')\n"
        "sys.meta_path.insert(0, NoTorch())\n"
        "import engines.quantize, engines.tensorrt_engine, engines.select\n"
        "print('ok', 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["ok", "False"]


def test_qoperator_file_keeps_metadata_and_agrees_with_float(sprite_int8, shipped_model, onnx_engine, sprite_faces,
                                                              public_test_faces):
    ops = op_counts(sprite_int8)
    assert ops["QLinearConv"] == op_counts(shipped_model)["Conv"] > 0  # every convolution runs in int8
    assert ops["QLinearAdd"] > 0 and "Conv" not in ops and "Softmax" in ops  # probabilities stay float
    assert is_quantized(sprite_int8) and not is_qdq(sprite_int8)
    meta, float_meta = read_metadata(sprite_int8), read_metadata(shipped_model)
    assert meta.model_version == float_meta.model_version + "-int8"
    assert (meta.classes, meta.input_size, meta.input_scale) == (float_meta.classes, float_meta.input_size, float_meta.input_scale)
    assert sprite_int8.stat().st_size < shipped_model.stat().st_size / 2
    engine = OnnxRuntimeEngine(sprite_int8)
    for faces, floor in ((sprite_faces, 0.9), (public_test_faces.pixels[:1000], 0.95)):
        int8_probs, float_probs = engine.infer(faces), onnx_engine.infer(faces)
        np.testing.assert_allclose(int8_probs.sum(1), 1.0, atol=1e-4)
        assert top1_agreement(int8_probs, float_probs) >= floor
        assert np.abs(int8_probs - float_probs).mean() < 0.03


def test_qdq_formats(shipped_model, sprite_faces, tmp_path, onnx_engine):
    from engines.tensorrt_engine import check_tensorrt_qdq

    qdq = quantize_model(shipped_model, tmp_path / "qdq.onnx", sprite_faces, "qdq")
    trt = quantize_model(shipped_model, tmp_path / "trt.onnx", sprite_faces, "qdq-tensorrt")
    for path in (qdq, trt):
        ops = op_counts(path)
        assert is_qdq(path) and ops["QuantizeLinear"] > 0 and ops["Conv"] == op_counts(shipped_model)["Conv"]
        assert not set(ops) & QOPERATOR_OPS
        assert read_metadata(path).model_version.endswith("-int8")
        assert top1_agreement(OnnxRuntimeEngine(path).infer(sprite_faces), onnx_engine.infer(sprite_faces)) >= 0.9
    check_tensorrt_qdq(trt)  # symmetric int8, float biases
    with pytest.raises(ModelError, match="zero point"):
        check_tensorrt_qdq(qdq)  # uint8 activations: ONNX Runtime's, not TensorRT's


def test_shipped_int8_file_is_the_quantized_float_model(shipped_model, onnx_engine, public_test_faces, tmp_path):
    """The shipped file is QOperator, describes itself like the float file, agrees with it on PublicTest, and is
    what `python -m engines.quantize` makes from the float file: the same predictions (identical on the machine
    that made it; another CPU's float kernels may move a calibrated range by a rounding step, so up to 0.5 % of
    top-1 answers and 0.05 in probability may differ there)."""
    assert INT8_MODEL.is_file(), f"shipped INT8 model missing: {INT8_MODEL} (make it with `python -m engines.quantize`)"
    assert op_counts(INT8_MODEL)["QLinearConv"] > 0
    meta, float_meta = read_metadata(INT8_MODEL), read_metadata(shipped_model)
    assert meta == float_meta.with_version(float_meta.model_version + "-int8")
    faces = public_test_faces.pixels
    shipped_probs = OnnxRuntimeEngine(INT8_MODEL).infer(faces)
    assert top1_agreement(shipped_probs, onnx_engine.infer(faces)) >= 0.97
    again = quantize_model(shipped_model, tmp_path / "again.onnx", calibration_faces(FER_CACHE))
    again_probs = OnnxRuntimeEngine(again).infer(faces)
    assert top1_agreement(again_probs, shipped_probs) >= 0.995
    assert np.abs(again_probs - shipped_probs).max() < 0.05


def test_calibration_faces_are_the_first_public_test_faces(public_test_faces):
    faces = calibration_faces(FER_CACHE)
    assert faces.shape == (CALIBRATION_FACES, 48, 48) and faces.dtype == np.uint8
    np.testing.assert_array_equal(faces, public_test_faces.pixels[:CALIBRATION_FACES])
    with pytest.raises(ValueError, match="calibration face count"):
        calibration_faces(FER_CACHE, 0)


@pytest.mark.parametrize("faces, message", [
    (np.zeros((4, 48, 48), np.float32), "must be uint8"),
    (np.zeros((4, 64, 64), np.uint8), r"must be \(N, 48, 48\)"),
    (np.zeros((48, 48), np.uint8), r"must be \(N, 48, 48\)"),
    (np.zeros((0, 48, 48), np.uint8), "no calibration faces"),
    ([[0] * 48] * 48, "must be a numpy array"),
])
def test_bad_calibration_faces_are_refused(shipped_model, tmp_path, faces, message):
    with pytest.raises(ValueError, match=message):
        quantize_model(shipped_model, tmp_path / "out.onnx", faces)
    assert not (tmp_path / "out.onnx").exists()


def test_bad_model_files_are_refused(shipped_model, sprite_faces, tmp_path):
    bare = onnx.load(str(shipped_model))
    del bare.metadata_props[:]
    onnx.save(bare, str(tmp_path / "bare.onnx"))
    (tmp_path / "corrupt.onnx").write_bytes(b"\x08\x07not an onnx model" * 50)
    cases = [
        (tmp_path / "absent.onnx", "model file not found"),
        (tmp_path / "bare.onnx", "metadata lacks"),
        (tmp_path / "corrupt.onnx", "not a readable ONNX model"),
        (INT8_MODEL, "already quantized"),
    ]
    for src, message in cases:
        with pytest.raises(ModelError, match=message):
            quantize_model(src, tmp_path / "out.onnx", sprite_faces)
    with pytest.raises(ValueError, match="unknown quantization format 'qlinear'"):
        quantize_model(shipped_model, tmp_path / "out.onnx", sprite_faces, "qlinear")
    assert not (tmp_path / "out.onnx").exists()


def test_cli_reports_bad_input_clearly(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--model", str(tmp_path / "absent.onnx"), "--out", str(tmp_path / "out.onnx"), "--cache-dir", str(FER_CACHE),
              "--calibration-faces", "8", "--no-report"])
    assert exit_info.value.code == 2
    assert "error: model file not found" in capsys.readouterr().err


def test_int8_engine_refuses_bad_batches():
    engine = OnnxRuntimeEngine(INT8_MODEL)
    for batch, message in ((np.zeros((2, 48, 48), np.float32), "dtype must be uint8"),
                           (np.zeros((2, 64, 64), np.uint8), r"shape must be \(N, 48, 48\)"),
                           (np.zeros((0, 48, 48), np.uint8), "empty")):
        with pytest.raises(ValueError, match=message):
            engine.infer(batch)


def test_tensorrt_qdq_from_the_shipped_ranges_needs_no_data(shipped_model, onnx_engine, public_test_faces, tmp_path):
    """The activation ranges read back from the shipped INT8 file make a symmetric Q/DQ file for TensorRT without
    calibration faces; it agrees with the float model as TensorRT INT8 must (>= 98.5 % top-1 on PublicTest)."""
    from engines.quantize import activation_ranges
    from engines.tensorrt_engine import check_tensorrt_qdq

    ranges = activation_ranges(INT8_MODEL, shipped_model)
    assert "faces" in ranges and all(lo <= 0 <= hi and hi > lo for lo, hi in ranges.values())
    out = quantize_model(shipped_model, tmp_path / "trt.onnx", None, "qdq-tensorrt", ranges=ranges)
    assert is_qdq(out) and read_metadata(out).model_version == read_metadata(INT8_MODEL).model_version
    check_tensorrt_qdq(out)
    faces = public_test_faces.pixels
    assert top1_agreement(OnnxRuntimeEngine(out).infer(faces), onnx_engine.infer(faces)) >= 0.985
    partial = {name: r for name, r in ranges.items() if name != "faces"}
    with pytest.raises(ModelError, match="no activation range for faces"):
        quantize_model(shipped_model, tmp_path / "partial.onnx", None, "qdq-tensorrt", ranges=partial)
    assert not (tmp_path / "partial.onnx").exists()
    with pytest.raises(ModelError, match="not a QOperator INT8 model"):
        activation_ranges(shipped_model, shipped_model)
