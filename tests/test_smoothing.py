"""EmaSmoother: time-correct EMA over irregular frames, reset after gaps, probability output, dict round-trip."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from stream_processors.config import StateConfig
from stream_processors.smoothing import EmaSmoother, ema_alpha

CONFIG = StateConfig(smoothing_tau_s=1.0, smoothing_reset_gap_s=2.0)
NEUTRAL, HAPPY = np.eye(8)[0], np.eye(8)[1]


def test_alpha_is_one_minus_exp_of_elapsed_over_tau():
    assert ema_alpha(0.2, 1.0) == pytest.approx(1 - math.exp(-0.2))
    assert ema_alpha(0.5, 0.5) == pytest.approx(1 - 1 / math.e)
    assert ema_alpha(0.0, 1.0) == 0.0


def test_first_frame_passes_through_unchanged():
    probs = np.array([0.5, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05])
    np.testing.assert_allclose(EmaSmoother(CONFIG).update(3.0, probs), probs)


@pytest.mark.parametrize("times", [
    [0.2, 0.4, 0.6, 0.8, 1.0],  # regular 5 fps
    [0.1, 0.15, 0.7, 1.0],  # irregular, dropped frames
    [1.0],  # one long step
])
def test_step_response_depends_on_elapsed_time_not_frame_count(times):
    smoother = EmaSmoother(CONFIG)
    smoother.update(0.0, NEUTRAL)
    for t in times:
        out = smoother.update(t, HAPPY)
    assert out[1] == pytest.approx(1 - math.exp(-1.0))
    assert out[0] == pytest.approx(math.exp(-1.0))


def test_gap_longer_than_reset_threshold_restarts_from_the_new_frame():
    smoother = EmaSmoother(CONFIG)
    smoother.update(0.0, NEUTRAL)
    np.testing.assert_array_equal(smoother.update(2.5, HAPPY), HAPPY)
    at_threshold = EmaSmoother(CONFIG)
    at_threshold.update(0.0, NEUTRAL)
    assert at_threshold.update(2.0, HAPPY)[1] == pytest.approx(1 - math.exp(-2.0))


@pytest.mark.parametrize("t", [1.0, 0.5])
def test_time_going_backwards_or_standing_still_is_an_error(t):
    smoother = EmaSmoother(CONFIG)
    smoother.update(1.0, NEUTRAL)
    with pytest.raises(ValueError, match="must increase"):
        smoother.update(t, HAPPY)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0.01, 1.5), st.lists(st.floats(0.0, 1.0), min_size=8, max_size=8)),
                min_size=1, max_size=40))
def test_output_stays_a_probability_vector_inside_the_inputs_range(steps):
    smoother, t, seen = EmaSmoother(CONFIG), 0.0, []
    for dt, raw in steps:
        probs = np.asarray(raw) + 1e-3
        probs /= probs.sum()
        t += dt
        seen.append(probs)
        out = smoother.update(t, probs)
        assert out.sum() == pytest.approx(1.0) and (out >= 0).all()
        # A convex blend never leaves the per-emotion range of the inputs it mixed.
        assert (out >= np.min(seen, axis=0) - 1e-9).all() and (out <= np.max(seen, axis=0) + 1e-9).all()


def test_state_round_trips_through_json():
    rng = np.random.default_rng(0)
    frames = [(k * 0.21, rng.dirichlet(np.ones(8))) for k in range(20)]
    original = EmaSmoother(CONFIG)
    assert EmaSmoother.from_dict(json.loads(json.dumps(original.to_dict())), CONFIG).to_dict() == original.to_dict()
    for t, probs in frames[:10]:
        original.update(t, probs)
    restored = EmaSmoother.from_dict(json.loads(json.dumps(original.to_dict())), CONFIG)
    for t, probs in frames[10:]:
        np.testing.assert_array_equal(restored.update(t, probs), original.update(t, probs))
