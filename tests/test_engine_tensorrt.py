"""The TensorRT engine: plan cache keys and what INT8 builds from (explicit quantization: Q/DQ, never the QOperator
file) everywhere; on a CUDA GPU with tensorrt, agreement with ONNX Runtime (FP16 >= 99.5 %, INT8 >= 98.5 % top-1 on
FER+ PublicTest), INT8 from a given Q/DQ file, plan reuse, batches."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engines.tensorrt_engine import plan_path, unavailable_reason

REPO = Path(__file__).resolve().parents[1]


def test_plan_cache_key_separates_model_precision_version_and_gpu(tmp_path):
    base = plan_path(tmp_path, "ab" * 32, "fp16", "10.7.0", "NVIDIA H100 80GB HBM3")
    assert base.parent == tmp_path and base.suffix == ".plan"
    assert " " not in base.name
    variants = {
        plan_path(tmp_path, "cd" * 32, "fp16", "10.7.0", "NVIDIA H100 80GB HBM3"),
        plan_path(tmp_path, "ab" * 32, "int8", "10.7.0", "NVIDIA H100 80GB HBM3"),
        plan_path(tmp_path, "ab" * 32, "fp16", "10.8.0", "NVIDIA H100 80GB HBM3"),
        plan_path(tmp_path, "ab" * 32, "fp16", "10.7.0", "NVIDIA L4"),
        plan_path(tmp_path, "ab" * 32, "int8-qdq", "10.7.0", "NVIDIA H100 80GB HBM3"),
    }
    assert base not in variants and len(variants) == 5
    # Explicit-quantization INT8 plans never collide with the implicit-calibration ones of earlier versions.
    assert plan_path(tmp_path, "ab" * 32, "int8-qdq", "10.7.0", "L4") != plan_path(tmp_path, "ab" * 32, "int8", "10.7.0", "L4")


@pytest.fixture(scope="module")
def tensorrt_engines(shipped_model, tmp_path_factory):
    """Build (once) FP16 and INT8 engines of the shipped model in a fresh plan cache."""
    pytest.importorskip("tensorrt", reason="TensorRT is not installed (pip install -e '.[tensorrt]' on a CUDA machine)")
    reason = unavailable_reason()
    if reason:
        pytest.skip(f"TensorRT cannot run here: {reason}")
    from engines.tensorrt_engine import TensorRTEngine

    cache = tmp_path_factory.mktemp("trt-plans")
    engines = {p: TensorRTEngine(shipped_model, precision=p, cache_dir=cache) for p in ("fp16", "int8")}
    yield engines, cache
    for engine in engines.values():
        engine.close()


@pytest.mark.tensorrt
@pytest.mark.parametrize("precision, floor", [("fp16", 0.995), ("int8", 0.985)])
def test_top1_agrees_with_onnx_runtime(tensorrt_engines, onnx_engine, public_test_faces, precision, floor):
    engine = tensorrt_engines[0][precision]
    faces = public_test_faces.pixels
    trt_probs, ort_probs = engine.infer(faces), onnx_engine.infer(faces)
    np.testing.assert_allclose(trt_probs.sum(1), 1.0, atol=1e-2)
    agreement = (trt_probs.argmax(1) == ort_probs.argmax(1)).mean()
    assert agreement >= floor, f"{precision} top-1 agreement {agreement:.4f} < {floor}"


@pytest.mark.tensorrt
def test_int8_is_explicit_quantization(tensorrt_engines, shipped_model, onnx_engine, public_test_faces, tmp_path):
    """INT8 from the float file builds from a Q/DQ copy kept in the plan cache (no calibrator); a Q/DQ file given
    directly builds the same way and agrees with ONNX Runtime's float model as closely."""
    from engines.quantize import calibration_faces, quantize_model
    from engines.tensorrt_engine import TensorRTEngine
    from tests.fixtures.engine_faces import FER_CACHE

    engines, cache = tensorrt_engines
    int8 = engines["int8"]
    assert int8.source == "quantize" and "-int8-qdq-" in int8.plan_path.name
    assert list(cache.glob("*-qdq-tensorrt.onnx")), "the Q/DQ copy is cached beside the plans"
    qdq = quantize_model(shipped_model, tmp_path / "qdq.onnx", calibration_faces(FER_CACHE), "qdq-tensorrt")
    faces = public_test_faces.pixels
    with TensorRTEngine(qdq, precision="int8", cache_dir=tmp_path / "plans") as given:
        assert given.source == "qdq" and given.model_version.endswith("-int8")
        probs = given.infer(faces)
    assert (probs.argmax(1) == onnx_engine.infer(faces).argmax(1)).mean() >= 0.985
    assert (probs.argmax(1) == int8.infer(faces).argmax(1)).mean() >= 0.99


@pytest.mark.tensorrt
@pytest.mark.parametrize("n", [1, 3, 64, 256, 300])
def test_batch_sizes(tensorrt_engines, public_test_faces, n):
    engine = tensorrt_engines[0]["fp16"]
    probs = engine.infer(public_test_faces.pixels[:n])
    assert probs.shape == (n, 8) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-2)


@pytest.mark.tensorrt
def test_plan_is_reused_from_cache(tensorrt_engines, shipped_model, public_test_faces):
    from engines.tensorrt_engine import TensorRTEngine

    engines, cache = tensorrt_engines
    plan = engines["fp16"].plan_path
    assert plan.parent == cache and plan.is_file()
    stamp = plan.stat().st_mtime_ns
    with TensorRTEngine(shipped_model, precision="fp16", cache_dir=cache) as again:
        assert again.plan_path == plan
        faces = public_test_faces.pixels[:16]
        np.testing.assert_allclose(again.infer(faces), engines["fp16"].infer(faces), atol=1e-6)
    assert plan.stat().st_mtime_ns == stamp


@pytest.mark.tensorrt
def test_bad_batches_are_refused(tensorrt_engines):
    engine = tensorrt_engines[0]["fp16"]
    with pytest.raises(ValueError, match="dtype must be uint8"):
        engine.infer(np.zeros((2, 48, 48), np.float32))
    with pytest.raises(ValueError, match="empty"):
        engine.infer(np.zeros((0, 48, 48), np.uint8))


def test_int8_builds_from_qdq_and_never_from_qoperator(shipped_model, tmp_path):
    """What TensorRT builds from (checked before tensorrt is imported): the float file at fp16/fp32, a Q/DQ copy of
    it at int8, a symmetric Q/DQ file only at int8; the shipped QOperator INT8 file (ONNX Runtime's) is refused."""
    from engines.model_files import INT8_MODEL
    from engines.model_meta import ModelError
    from engines.quantize import quantize_model
    from engines.tensorrt_engine import check_source, default_precision

    faces = np.load(REPO / "producers" / "sample" / "faces.npz")["faces"]
    qdq = quantize_model(shipped_model, tmp_path / "trt.onnx", faces, "qdq-tensorrt")
    assert [check_source(shipped_model, p) for p in ("fp32", "fp16", "int8")] == ["float", "float", "quantize"]
    assert check_source(qdq, "int8") == "qdq"
    assert (default_precision(shipped_model), default_precision(qdq)) == ("fp16", "int8")
    with pytest.raises(ValueError, match="builds only at precision int8, not fp16"):
        check_source(qdq, "fp16")
    with pytest.raises(ModelError, match="QOperator INT8 model .* cannot run on TensorRT"):
        check_source(INT8_MODEL, "int8")
    asymmetric = quantize_model(shipped_model, tmp_path / "ort-qdq.onnx", faces, "qdq")
    with pytest.raises(ModelError, match="uint8 zero point .*TensorRT needs symmetric int8 Q/DQ"):
        check_source(asymmetric, "int8")
    import onnx
    from onnx import numpy_helper

    shifted = onnx.load(str(qdq))
    zero_point = next(init for init in shifted.graph.initializer if init.name.endswith("zero_point") and init.data_type == onnx.TensorProto.INT8)
    zero_point.CopyFrom(numpy_helper.from_array(np.full(numpy_helper.to_array(zero_point).shape, 3, np.int8), zero_point.name))
    onnx.save(shifted, str(tmp_path / "shifted.onnx"))
    with pytest.raises(ModelError, match="int8 zero point that is not 0"):
        check_source(tmp_path / "shifted.onnx", "int8")
    with pytest.raises(ValueError, match="precision must be one of fp32, fp16, int8"):
        check_source(shipped_model, "int4")
    # INT8 of the shipped float file builds from a Q/DQ copy with the shipped INT8 file's ranges: no FER+ data.
    from engines.tensorrt_engine import qdq_model

    copy = qdq_model(shipped_model, tmp_path / "plans")
    assert copy.parent == tmp_path / "plans" and check_source(copy, "int8") == "qdq"
    assert qdq_model(shipped_model, tmp_path / "plans") == copy  # made once, then reused
