"""NeutralBaseline: calibration window, minimum frames, slow adaptation on resting frames only."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from stream_processors.baseline import NeutralBaseline
from stream_processors.config import POPULATION_BASELINE, StateConfig
from tests.test_person_state import FPS, expression

CONFIG = StateConfig(calibration_s=10.0, calibration_min_frames=20)
RESTING = expression("neutral", 0.8)


def feed(baseline: NeutralBaseline, start: float, seconds: float, make, fps: int = FPS) -> list[np.ndarray]:
    """Feed frames at `fps` over [start, start + seconds); returns the fed probs."""
    fed = []
    for k in range(round(seconds * fps)):
        probs = make()
        baseline.update(start + k / fps, probs)
        fed.append(probs)
    return fed


def calibrated(config: StateConfig = CONFIG, probs: np.ndarray = RESTING) -> NeutralBaseline:
    baseline = NeutralBaseline(config)
    feed(baseline, 0.0, 10.0, lambda: probs)
    baseline.update(10.0, probs)
    assert baseline.ready
    return baseline


def test_window_starts_at_first_visible_frame_and_averages_its_frames():
    rng = np.random.default_rng(0)
    baseline = NeutralBaseline(StateConfig(calibration_s=10.0, calibration_min_frames=20, calibration_max_intensity=1.0))
    window = []
    for k in range(50):  # first frame at 3 s, so the window is [3, 13)
        probs = expression("sadness", 0.5, rng)
        out = baseline.update(3.0 + k / FPS, probs)
        window.append(probs)
        assert not baseline.ready
        np.testing.assert_array_equal(out, POPULATION_BASELINE)
    out = baseline.update(13.0, expression("happiness", 0.9))
    assert baseline.ready
    np.testing.assert_allclose(out, np.mean(window, axis=0), rtol=1e-6)


def test_explicit_segment_uses_only_frames_inside_it():
    rng = np.random.default_rng(1)
    baseline = NeutralBaseline(StateConfig(calibration_segment=(5.0, 8.0), calibration_min_frames=10,
                                          calibration_max_intensity=1.0))
    feed(baseline, 0.0, 5.0, lambda: expression("happiness", 0.9, rng))
    segment = feed(baseline, 5.0, 3.0, lambda: expression("sadness", 0.6, rng))
    assert not baseline.ready
    out = baseline.update(8.0, expression("anger", 0.9, rng))
    np.testing.assert_allclose(out, np.mean(segment, axis=0), rtol=1e-6)


def test_window_with_too_few_frames_is_replaced_by_a_new_window():
    baseline = NeutralBaseline(CONFIG)
    feed(baseline, 0.0, 10.0, lambda: expression("happiness", 0.9), fps=1)  # 10 frames < 20
    second_window = feed(baseline, 10.0, 10.0, lambda: RESTING)
    assert not baseline.ready
    out = baseline.update(20.0, RESTING)
    assert baseline.ready
    np.testing.assert_allclose(out, np.mean(second_window, axis=0), rtol=1e-6)


def test_brief_strong_reaction_does_not_move_the_baseline():
    baseline = calibrated()
    before = baseline.value
    feed(baseline, 10.2, 3.0, lambda: expression("happiness", 0.9))
    feed(baseline, 13.2, 5.0, lambda: RESTING)
    np.testing.assert_allclose(baseline.value, before, atol=1e-12)


def test_sustained_resting_shift_adapts_with_the_long_time_constant():
    baseline = calibrated(StateConfig(calibration_s=10.0, calibration_min_frames=20, baseline_tau_s=600.0))
    start = baseline.value
    drifted = expression("neutral", 0.7)  # a mildly different resting face, still "resting"
    feed(baseline, 10.2, 600.0, lambda: drifted)
    expected = drifted + (start - drifted) * math.exp(-1.0)
    np.testing.assert_allclose(baseline.value, expected, rtol=1e-5)


def test_a_long_gap_is_credited_as_at_most_one_step():
    baseline = calibrated()
    start = baseline.value
    drifted = expression("neutral", 0.7)
    baseline.update(110.0, drifted)  # 100 s after the last frame
    alpha = 1 - math.exp(-CONFIG.baseline_max_step_s / CONFIG.baseline_tau_s)
    np.testing.assert_allclose(baseline.value, start + alpha * (drifted - start), rtol=1e-6)


@pytest.mark.parametrize("frames_before_save", [0, 12, 60])
def test_state_round_trips_through_json(frames_before_save):
    rng = np.random.default_rng(2)
    frames = [(k / FPS, expression("neutral", 0.75, rng)) for k in range(90)]
    original = NeutralBaseline(CONFIG)
    for t, probs in frames[:frames_before_save]:
        original.update(t, probs)
    restored = NeutralBaseline.from_dict(json.loads(json.dumps(original.to_dict())), CONFIG)
    assert restored.ready == original.ready
    for t, probs in frames[frames_before_save:]:
        np.testing.assert_array_equal(restored.update(t, probs), original.update(t, probs))


def test_time_going_backwards_is_an_error():
    baseline = NeutralBaseline(CONFIG)
    baseline.update(2.0, RESTING)
    with pytest.raises(ValueError, match="must increase"):
        baseline.update(1.5, RESTING)


def test_a_resting_face_that_reads_sad_is_calibrated_at_once():
    sad = expression("sadness", 0.9)
    baseline = NeutralBaseline(CONFIG)
    feed(baseline, 0.0, 10.0, lambda: sad)
    baseline.update(10.0, sad)
    assert baseline.ready


def test_calibration_skips_a_viewer_laughing_through_the_first_seconds():
    """Frames far from any resting face (against the population baseline) do not calibrate: the viewer who laughs
    through the first 12 s is calibrated on the neutral face that follows, not on the laughter."""
    rng = np.random.default_rng(3)
    baseline = NeutralBaseline(CONFIG)
    feed(baseline, 0.0, 12.0, lambda: expression("happiness", 0.95, rng))
    assert not baseline.ready
    resting = feed(baseline, 12.0, 8.0, lambda: expression("neutral", 0.8, rng))  # the window is [10, 20)
    out = baseline.update(20.0, RESTING)
    assert baseline.ready
    np.testing.assert_allclose(out, np.mean(resting, axis=0), rtol=1e-6)


def test_a_face_that_never_rests_is_taken_as_resting_after_the_patience():
    """A face that reads surprised for 30 s on end is that viewer's resting face: after calibration_patience_s every
    frame counts, so the baseline becomes that face rather than the population's (which would report surprise all
    screening)."""
    config = StateConfig(calibration_s=10.0, calibration_min_frames=20, calibration_patience_s=30.0)
    baseline = NeutralBaseline(config)
    surprised = expression("surprise", 0.9)
    feed(baseline, 0.0, 30.0, lambda: surprised)
    assert not baseline.ready
    feed(baseline, 30.0, 10.0, lambda: surprised)
    baseline.update(40.0, surprised)
    assert baseline.ready
    np.testing.assert_allclose(baseline.value, surprised, rtol=1e-6)


def test_reset_calibrates_again_from_the_next_frame():
    baseline = calibrated()
    baseline.reset()
    assert not baseline.ready
    other = expression("surprise", 0.3)
    np.testing.assert_array_equal(baseline.update(20.0, other), POPULATION_BASELINE)
    feed(baseline, 20.2, 9.8, lambda: other)
    baseline.update(31.0, other)
    assert baseline.ready
    np.testing.assert_allclose(baseline.value, other, rtol=1e-6)


def test_state_saved_before_patience_existed_restores():
    data = calibrated().to_dict()
    del data["first_t"]
    assert NeutralBaseline.from_dict(json.loads(json.dumps(data)), CONFIG).ready
