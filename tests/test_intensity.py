"""Intensity: expression above the viewer's own baseline, per emotion and overall."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from schemas.emotions import EMOTION_INDEX
from stream_processors.config import POPULATION_BASELINE, StateConfig
from stream_processors.intensity import emotion_intensities, overall_intensity
from stream_processors.person_state import PersonState
from tests.test_person_state import run, script

SAD = EMOTION_INDEX["sadness"]
BASE = np.array(POPULATION_BASELINE)


def test_expression_equal_to_baseline_has_zero_intensity():
    np.testing.assert_array_equal(emotion_intensities(BASE, BASE), np.zeros(8))


def test_intensity_is_the_share_of_headroom_above_baseline():
    probs = np.array([0.2, 0.62, 0.03, 0.05, 0.04, 0.01, 0.01, 0.04])
    intensities = emotion_intensities(probs, BASE)
    assert intensities[EMOTION_INDEX["happiness"]] == pytest.approx((0.62 - 0.05) / 0.95)
    assert intensities[SAD] == 0.0  # below the resting level: clipped, not negative
    assert overall_intensity(intensities) == pytest.approx(0.6)


def test_full_expression_is_one_and_neutral_never_counts_overall():
    assert emotion_intensities(np.eye(8)[SAD], BASE)[SAD] == 1.0
    all_neutral = emotion_intensities(np.eye(8)[0], np.full(8, 1 / 8))
    assert all_neutral[0] == 1.0 and overall_intensity(all_neutral) == 0.0


def test_baseline_at_one_stays_finite():
    intensities = emotion_intensities(np.eye(8)[1], np.eye(8)[1])
    assert np.isfinite(intensities).all() and intensities.max() <= 1


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=16, max_size=16).filter(lambda w: min(sum(w[:8]), sum(w[8:])) > 1e-3))
def test_intensities_stay_in_unit_interval(weights):
    probs, base = np.asarray(weights[:8]) / sum(weights[:8]), np.asarray(weights[8:]) / sum(weights[8:])
    intensities = emotion_intensities(probs, base)
    assert (0 <= intensities).all() and (intensities <= 1).all()
    assert 0 <= overall_intensity(intensities) <= 1


@pytest.mark.parametrize("seed", [0, 1])
def test_sad_resting_viewer_scores_low_where_a_neutral_viewer_scores_high(seed):
    rng = np.random.default_rng(seed)
    sad_face = [("sadness", 15)]  # rests sad through calibration, keeps the same face
    sad_rester = run(PersonState(StateConfig()), script(sad_face, rng))
    neutral_rester = run(PersonState(StateConfig()), script([("neutral", 10), ("sadness", 5)], rng))

    sad_after = [s.intensities[SAD] for s in sad_rester[11:]]
    neutral_after = [s.intensities[SAD] for s in neutral_rester[11:]]
    assert all(s.baseline_ready for s in sad_rester[11:] + neutral_rester[11:])
    assert max(sad_after) < 0.15
    assert min(neutral_after) > 0.5
    assert max(s.intensity for s in sad_rester[11:]) < 0.2


def test_calibrating_viewer_is_measured_against_the_population_baseline():
    rng = np.random.default_rng(3)
    summaries = run(PersonState(StateConfig()), script([("anger", 3)], rng))
    for summary in summaries:
        assert not summary.baseline_ready
        np.testing.assert_allclose(summary.intensities, emotion_intensities(summary.smoothed, BASE))
        assert summary.intensity > 0.5
