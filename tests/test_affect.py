"""Valence/arousal: probability-weighted mean of fixed circumplex points."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from schemas.emotions import EMOTION_INDEX, EMOTIONS
from stream_processors.affect import CIRCUMPLEX, valence_arousal


def pure(emotion: str) -> np.ndarray:
    return np.eye(len(EMOTIONS))[EMOTION_INDEX[emotion]]


def test_table_has_one_point_per_emotion_inside_the_unit_square():
    assert CIRCUMPLEX.shape == (len(EMOTIONS), 2)
    assert np.abs(CIRCUMPLEX).max() <= 1


def test_pure_emotions_land_in_their_circumplex_quadrants():
    assert valence_arousal(pure("neutral")) == (0.0, 0.0)
    valence, arousal = valence_arousal(pure("happiness"))
    assert valence > 0.5 and arousal > 0
    valence, arousal = valence_arousal(pure("sadness"))
    assert valence < -0.5 and arousal < 0
    for emotion in ("anger", "fear", "disgust", "contempt"):
        assert valence_arousal(pure(emotion))[0] < 0, emotion
    for emotion in ("surprise", "fear", "anger"):
        assert valence_arousal(pure(emotion))[1] > 0.5, emotion


def test_mixture_is_the_weighted_mean_of_its_points():
    probs = 0.5 * pure("happiness") + 0.3 * pure("sadness") + 0.2 * pure("neutral")
    happy, sad = valence_arousal(pure("happiness")), valence_arousal(pure("sadness"))
    expected = [0.5 * h + 0.3 * s for h, s in zip(happy, sad)]
    assert valence_arousal(probs) == pytest.approx(expected)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=8, max_size=8).filter(lambda w: sum(w) > 1e-3))
def test_any_probability_vector_maps_into_minus_one_one(weights):
    probs = np.asarray(weights) / sum(weights)
    valence, arousal = valence_arousal(probs)
    assert -1 <= valence <= 1 and -1 <= arousal <= 1
