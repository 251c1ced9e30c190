"""`ParallelEngine` (engines/parallel.py) on the shipped model: the worker's engine (`load_scoring_engine`) is one,
it scores like a single engine, and its lanes really score at the same time."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from engines.model_meta import read_metadata, write_metadata
from engines.onnx_engine import OnnxRuntimeEngine
from engines.parallel import ParallelEngine
from engines.select import load_engine
from engines.select import shipped_model as shipped_model_for
from schemas.settings import load_settings
from stream_processors.scoring import load_scoring_engine


@pytest.fixture(scope="module")
def worker_settings():
    return load_settings(engine_backend="onnxruntime")


@pytest.fixture(scope="module")
def worker_engine(worker_settings):
    """The worker's own engine, as the Faust app loads it."""
    engine = load_scoring_engine(worker_settings)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def one_engine(worker_settings):
    """One 2-thread engine of the shipped file the worker runs (its model precision picks it)."""
    return OnnxRuntimeEngine(shipped_model_for(worker_settings.model_precision), threads=2)


@pytest.mark.parametrize("n", [1, 2, 63, 64, 65, 200, 256, 600])
def test_scores_row_for_row_like_one_engine(worker_engine, one_engine, public_test_faces, n):
    faces = public_test_faces.pixels[:n]
    np.testing.assert_allclose(worker_engine.infer(faces), one_engine.infer(faces), atol=1e-5)


def test_the_worker_engine_is_lanes_of_the_shipped_model(worker_engine, worker_settings, one_engine, onnx_engine):
    assert worker_settings.engine_lanes == 2 and worker_settings.engine_batch == 64  # the defaults
    assert isinstance(worker_engine, ParallelEngine)
    assert len(worker_engine.lanes) == 2 and worker_engine.chunk == 64
    assert worker_engine.backend == "onnxruntime"
    assert worker_engine.metadata == one_engine.metadata
    assert worker_engine.model_version == onnx_engine.model_version + "-int8"  # the default precision: the INT8 file
    assert worker_engine.max_batch >= worker_settings.max_batch  # a worker micro-batch is shared out in one round


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
