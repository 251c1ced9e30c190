"""Reactions: the pure rule for one second, and the detector's onset, release, switch and calibrating behaviour."""
from __future__ import annotations

import json

import numpy as np
import pytest

from schemas.emotions import EMOTIONS
from stream_processors.config import StateConfig
from stream_processors.reaction import ReactionDetector, leading_emotion

CONFIG = StateConfig(reaction_threshold=0.10, reaction_release=0.6, reaction_margin=0.02,
                     reaction_onset_seconds=1, reaction_calibrating_threshold=0.30)


def excess(**values: float) -> np.ndarray:
    out = np.zeros(len(EMOTIONS))
    for name, value in values.items():
        out[EMOTIONS.index(name)] = value
    return out


@pytest.mark.parametrize(("values", "expected"), [
    ({}, "neutral"),
    ({"happiness": 0.10}, "happiness"),  # at the threshold
    ({"happiness": 0.099}, "neutral"),
    ({"sadness": 0.3, "anger": 0.29}, "neutral"),  # no clear leader: lead 0.01 < margin
    ({"sadness": 0.3, "anger": 0.27}, "sadness"),
    ({"neutral": 0.9}, "neutral"),  # a face more neutral than its baseline is no reaction
    ({"neutral": 0.9, "fear": 0.2}, "fear"),
])
def test_leading_emotion(values, expected):
    assert leading_emotion(excess(**values), threshold=0.10, margin=0.02) == expected


def run(detector: ReactionDetector, seconds: list[dict], ready: bool = True) -> list[str]:
    return [detector.update(excess(**values), ready) for values in seconds]


def test_reaction_lasts_while_above_release_and_ends_below_it():
    labels = run(ReactionDetector(CONFIG), [{"anger": 0.12}, {"anger": 0.07}, {"anger": 0.06}, {"anger": 0.05}, {}])
    assert labels == ["anger", "anger", "anger", "neutral", "neutral"]


def test_onset_seconds_delay_a_reaction_and_drop_a_blip():
    detector = ReactionDetector(StateConfig(reaction_onset_seconds=2))
    labels = run(detector, [{"surprise": 0.5}, {}, {"surprise": 0.5}, {"surprise": 0.5}, {"surprise": 0.5}])
    assert labels == ["neutral", "neutral", "neutral", "surprise", "surprise"]


def test_a_clearly_stronger_emotion_takes_over_an_ongoing_reaction():
    detector = ReactionDetector(CONFIG)
    labels = run(detector, [{"surprise": 0.4}, {"surprise": 0.2, "fear": 0.5}, {"surprise": 0.3, "fear": 0.31}])
    # fear leads surprise by the margin in the second second; in the third neither leads clearly, fear continues.
    assert labels == ["surprise", "fear", "fear"]


def test_an_ongoing_reaction_is_not_taken_over_without_a_clear_leader():
    labels = run(ReactionDetector(CONFIG), [{"happiness": 0.4}, {"happiness": 0.2, "surprise": 0.21}])
    assert labels == ["happiness", "happiness"]


def test_before_the_baseline_is_ready_only_strong_reactions_count():
    detector = ReactionDetector(CONFIG)
    assert run(detector, [{"happiness": 0.25}, {"happiness": 0.35}, {"happiness": 0.2}, {"happiness": 0.1}],
               ready=False) == ["neutral", "happiness", "happiness", "neutral"]


def test_before_the_baseline_is_ready_a_face_that_may_be_resting_is_no_reaction():
    """Sadness, anger, disgust or contempt before calibration may be the viewer's resting face: not reported until
    their baseline says it is more than that. Happiness, surprise and fear are transient: reported."""
    detector = ReactionDetector(CONFIG)
    strong = [{"sadness": 0.8}, {"anger": 0.8}, {"disgust": 0.8}, {"contempt": 0.8}, {"fear": 0.8}]
    assert run(detector, strong, ready=False) == ["neutral"] * 4 + ["fear"]
    assert run(ReactionDetector(CONFIG), [{"sadness": 0.8}], ready=True) == ["sadness"]


def test_reset_ends_the_reaction():
    detector = ReactionDetector(CONFIG)
    run(detector, [{"disgust": 0.5}])
    detector.reset()
    assert detector.active == "neutral"
    assert run(detector, [{"disgust": 0.07}]) == ["neutral"]  # above release, below onset: no carried reaction


def test_state_round_trips_through_json_mid_reaction():
    config = StateConfig(reaction_onset_seconds=2)
    detector = ReactionDetector(config)
    run(detector, [{"fear": 0.5}, {"fear": 0.5}, {"sadness": 0.6}])  # fear active, sadness pending
    restored = ReactionDetector.from_dict(json.loads(json.dumps(detector.to_dict())), config)
    rest = [{"sadness": 0.6}, {"sadness": 0.02}]
    assert run(restored, rest) == run(detector, rest) == ["sadness", "neutral"]
    assert ReactionDetector.from_dict(None, config).active == "neutral"  # states stored before reactions existed


@pytest.mark.parametrize(("changes", "field_name"), [
    ({"reaction_threshold": 0.0}, "reaction_threshold"),
    ({"reaction_release": 1.2}, "reaction_release"),
    ({"reaction_margin": -0.1}, "reaction_margin"),
    ({"reaction_onset_seconds": 0}, "reaction_onset_seconds"),
    ({"reaction_calibrating_threshold": 1.5}, "reaction_calibrating_threshold"),
    ({"calibration_max_intensity": 2.0}, "calibration_max_intensity"),
    ({"recalibrate_after_gap_s": 0.0}, "recalibrate_after_gap_s"),
])
def test_bad_reaction_settings_fail_with_one_clear_error(changes, field_name):
    with pytest.raises(ValueError, match=field_name):
        StateConfig(**changes)
