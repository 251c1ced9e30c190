"""`ParallelEngine` (engines/parallel.py) on the shipped model: the worker's engine scores like a single one, its
lanes really score at the same time, and it is what `load_engine(lanes=...)` gives."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from engines.model_meta import read_metadata, write_metadata
from engines.onnx_engine import OnnxRuntimeEngine
from engines.parallel import ParallelEngine
from engines.select import load_engine


@pytest.fixture(scope="module")
def worker_engine(shipped_model):
    """The worker's configuration: two single-thread lanes, chunks of 64."""
    engine = load_engine("onnxruntime", shipped_model, threads=1, lanes=2, max_batch=64)
    yield engine
    engine.close()


@pytest.mark.parametrize("n", [1, 2, 63, 64, 65, 200, 256, 600])
def test_scores_row_for_row_like_one_engine(worker_engine, onnx_engine, public_test_faces, n):
    faces = public_test_faces.pixels[:n]
    np.testing.assert_allclose(worker_engine.infer(faces), onnx_engine.infer(faces), atol=1e-5)


def test_load_engine_builds_lanes_of_single_thread_sessions(worker_engine, onnx_engine):
    assert isinstance(worker_engine, ParallelEngine)
    assert len(worker_engine.lanes) == 2 and worker_engine.chunk == 64
    assert worker_engine.backend == "onnxruntime"
    assert worker_engine.metadata == onnx_engine.metadata
    assert worker_engine.max_batch >= 256  # a worker micro-batch is shared out in one round


def test_lanes_score_at_the_same_time(shipped_model, public_test_faces):
    # Each lane waits at a two-party barrier inside its engine call: that only passes if both are in a call at once.
    meeting = threading.Barrier(2, timeout=30)

    class MeetingLane(OnnxRuntimeEngine):
        def _run(self, batch):
            meeting.wait()
            return super()._run(batch)

    engine = ParallelEngine([MeetingLane(shipped_model, threads=1, max_batch=32) for _ in range(2)])
    try:
        probs = engine.infer(public_test_faces.pixels[:64])  # two chunks of 32, one per lane
    finally:
        engine.close()
    assert probs.shape == (64, 8) and not meeting.broken


def test_a_batch_larger_than_max_batch_is_scored_in_rounds(shipped_model, onnx_engine, public_test_faces):
    engine = ParallelEngine([OnnxRuntimeEngine(shipped_model, threads=1, max_batch=16) for _ in range(2)], max_batch=40)
    faces = public_test_faces.pixels[:100]
    try:
        np.testing.assert_allclose(engine.infer(faces), onnx_engine.infer(faces), atol=1e-5)
    finally:
        engine.close()


def test_lanes_must_hold_one_model(shipped_model, tmp_path):
    other = tmp_path / "other.onnx"
    other.write_bytes(shipped_model.read_bytes())
    write_metadata(other, read_metadata(other).with_version("9.9.9-test"))
    with pytest.raises(ValueError, match="one model"):
        ParallelEngine([OnnxRuntimeEngine(shipped_model, threads=1), OnnxRuntimeEngine(other, threads=1)])
    with pytest.raises(ValueError, match="at least one lane"):
        ParallelEngine([])
    with pytest.raises(ValueError, match="lanes must be >= 1"):
        load_engine("onnxruntime", shipped_model, lanes=0)
