"""The ONNX Runtime engine on the shipped model: output contract, input validation, model files."""
from __future__ import annotations

import threading

import numpy as np
import onnx
import pytest

from schemas.emotions import EMOTIONS
from engines.ferplus import majority_labels
from engines.model_meta import ModelError, read_metadata, scale_input, write_metadata
from engines.onnx_engine import OnnxRuntimeEngine


@pytest.mark.parametrize("n", [1, 2, 7, 64, 255, 256, 257, 600])
def test_probabilities_for_batch_sizes(onnx_engine, public_test_faces, n):
    faces = public_test_faces.pixels[:n]
    probs = onnx_engine.infer(faces)
    assert probs.shape == (n, len(EMOTIONS)) and probs.dtype == np.float32
    assert np.all(probs >= 0) and np.all(probs <= 1)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    # A face's scores do not depend on what else is in the batch (or on chunking past max_batch).
    single = np.concatenate([onnx_engine.infer(faces[i : i + 1]) for i in (0, n - 1)])
    np.testing.assert_allclose(probs[[0, n - 1]], single, atol=1e-5)


def test_recognises_emotions_far_above_chance(onnx_engine, public_test_faces):
    labels = majority_labels(public_test_faces.votes)
    keep = labels >= 0
    accuracy = (onnx_engine.infer(public_test_faces.pixels[keep]).argmax(1) == labels[keep]).mean()
    assert accuracy > 0.6, f"PublicTest majority accuracy {accuracy:.3f}"


def test_engine_describes_itself_from_the_file(onnx_engine, shipped_model):
    assert onnx_engine.backend == "onnxruntime"
    assert onnx_engine.metadata == read_metadata(shipped_model)
    assert onnx_engine.metadata.classes == EMOTIONS
    assert onnx_engine.model_version == onnx_engine.metadata.model_version != ""
    assert onnx_engine.max_batch == 256
    assert "CPUExecutionProvider" in onnx_engine.providers


@pytest.mark.parametrize(
    "batch, message",
    [
        (np.zeros((2, 48, 48), np.float32), "dtype must be uint8"),
        (np.zeros((2, 48, 47), np.uint8), r"shape must be \(N, 48, 48\)"),
        (np.zeros((48, 48), np.uint8), "shape must be"),
        (np.zeros((2, 1, 48, 48), np.uint8), "shape must be"),
        (np.zeros((0, 48, 48), np.uint8), "empty"),
        ([[0] * 48] * 48, "numpy array"),
    ],
)
def test_bad_batches_are_refused(onnx_engine, batch, message):
    with pytest.raises(ValueError, match=message):
        onnx_engine.infer(batch)


def test_concurrent_callers_get_their_own_results(onnx_engine, public_test_faces):
    chunks = [public_test_faces.pixels[i * 50 : (i + 1) * 50 + i] for i in range(6)]
    expected = [onnx_engine.infer(c) for c in chunks]
    results: dict[int, np.ndarray] = {}

    def work(i: int) -> None:
        for _ in range(5):
            results[i] = onnx_engine.infer(chunks[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(chunks))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for i, want in enumerate(expected):
        np.testing.assert_array_equal(results[i], want)


def test_scale_input_follows_the_named_scale():
    batch = np.array([[[0, 51, 255]]], dtype=np.uint8)
    np.testing.assert_allclose(scale_input(batch, "01")[0, 0], [[0.0, 0.2, 1.0]], atol=1e-6)
    np.testing.assert_allclose(scale_input(batch, "pm1")[0, 0], [[-1.0, 51 / 127.5 - 1, 1.0]], atol=1e-6)
    np.testing.assert_array_equal(scale_input(batch, "raw")[0, 0], [[0.0, 51.0, 255.0]])
    assert scale_input(batch, "01").shape == (1, 1, 1, 3)
    with pytest.raises(ValueError, match="input scale"):
        scale_input(batch, "x/42")


def _with_props(src, dst, **changes):
    """Copy of `src` with metadata_props entries changed (None removes the entry)."""
    model = onnx.load(str(src))
    props = {p.key: p.value for p in model.metadata_props} | changes
    del model.metadata_props[:]
    for key, value in props.items():
        if value is not None:
            model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(dst))
    return dst


def test_engine_scales_input_as_the_file_says(onnx_engine, shipped_model, public_test_faces, tmp_path):
    relabelled = _with_props(shipped_model, tmp_path / "m.onnx", input_scale="01")
    other = OnnxRuntimeEngine(relabelled)
    faces = public_test_faces.pixels[:32]
    expected = OnnxRuntimeEngine(shipped_model).infer(faces)
    assert other.metadata.input_scale == "01"
    assert not np.allclose(other.infer(faces), expected, atol=1e-3)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"classes": None, "input_size": None}, "lacks classes, input_size"),
        ({"model_version": None}, "lacks model_version"),
        ({"classes": ",".join(reversed(EMOTIONS))}, "differ from the fixed order"),
        ({"input_size": "forty-eight"}, "not an integer"),
        ({"input_scale": "x/255"}, "input_scale 'x/255' is not one of"),
    ],
)
def test_badly_described_model_files_are_refused(shipped_model, tmp_path, changes, message):
    path = _with_props(shipped_model, tmp_path / "bad.onnx", **changes)
    for load in (read_metadata, OnnxRuntimeEngine):
        with pytest.raises(ModelError, match=message):
            load(path)


def test_metadata_that_contradicts_the_graph_is_refused(shipped_model, tmp_path):
    path = _with_props(shipped_model, tmp_path / "bad.onnx", input_size="64")
    with pytest.raises(ModelError, match=r"input shape .* does not match \(N, 1, 64, 64\)"):
        OnnxRuntimeEngine(path)


def test_model_without_metadata_is_refused(shipped_model, tmp_path):
    model = onnx.load(str(shipped_model))
    del model.metadata_props[:]
    onnx.save(model, str(tmp_path / "bare.onnx"))
    for load in (read_metadata, OnnxRuntimeEngine):
        with pytest.raises(ModelError, match="lacks classes, input_size, input_scale, model_version"):
            load(tmp_path / "bare.onnx")


@pytest.mark.parametrize("content", [b"", b"not an onnx model at all", "truncated"])
def test_corrupt_model_files_are_refused(shipped_model, tmp_path, content):
    path = tmp_path / "corrupt.onnx"
    path.write_bytes(shipped_model.read_bytes()[:5000] if content == "truncated" else content)
    for load in (read_metadata, OnnxRuntimeEngine):
        with pytest.raises(ModelError, match="corrupt.onnx"):
            load(path)


def test_missing_model_file_is_refused(tmp_path):
    for load in (read_metadata, OnnxRuntimeEngine):
        with pytest.raises(ModelError, match="model file not found"):
            load(tmp_path / "absent.onnx")


def test_metadata_round_trips_through_a_file(shipped_model, tmp_path):
    path = tmp_path / "copy.onnx"
    path.write_bytes(shipped_model.read_bytes())
    meta = read_metadata(path).with_version("9.9.9-test")
    write_metadata(path, meta)
    assert read_metadata(path) == meta
    assert OnnxRuntimeEngine(path).model_version == "9.9.9-test"
