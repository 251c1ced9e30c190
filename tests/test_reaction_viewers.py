"""Reactions of whole viewers through PersonState: the edge cases of docs/emotion-metrics.md ("Reactions")."""
from __future__ import annotations

import numpy as np

from stream_processors.config import StateConfig
from stream_processors.person_state import PersonState
from tests.test_person_state import FPS, expression, run, scored, script

CONFIG = StateConfig()


def reactions(summaries, start: int, stop: int) -> list[str]:
    return [s.reaction for s in summaries if start <= s.movie_second < stop]


def test_resting_sad_face_is_no_reaction_and_a_real_reaction_is():
    rng = np.random.default_rng(0)
    summaries = run(PersonState(CONFIG), script([("sadness", 15), ("happiness", 6), ("sadness", 6)], rng))
    assert set(reactions(summaries, 11, 15)) == {"neutral"}  # calibrated on their own (sad) resting face
    assert set(reactions(summaries, 16, 21)) == {"happiness"}
    assert set(reactions(summaries, 23, 27)) == {"neutral"}
    assert {s.dominant for s in summaries if 23 <= s.movie_second < 27} == {"sadness"}  # the raw label says sad


def test_viewer_laughing_through_calibration():
    """Laughter before any resting face is reported against the population baseline, calibration waits for the
    neutral face, and afterwards reactions are measured against it."""
    rng = np.random.default_rng(1)
    summaries = run(PersonState(CONFIG), script([("happiness", 12), ("neutral", 12), ("surprise", 6), ("neutral", 6)], rng))
    assert all(not s.baseline_ready for s in summaries if s.movie_second < 12)
    assert set(reactions(summaries, 1, 12)) == {"happiness"}
    assert all(s.baseline_ready for s in summaries if s.movie_second >= 23)
    assert set(reactions(summaries, 14, 24)) == {"neutral"}
    assert set(reactions(summaries, 25, 30)) == {"surprise"}
    assert set(reactions(summaries, 32, 36)) == {"neutral"}


def gap_then(frames_before, gap_s: float, segments, rng):
    start = frames_before[-1].movie_ts + gap_s
    return frames_before + script(segments, rng, start_s=start)


def test_viewer_who_leaves_briefly_keeps_their_baseline():
    rng = np.random.default_rng(2)
    frames = gap_then(script([("sadness", 12), ("happiness", 4)], rng), 20.0, [("sadness", 4), ("surprise", 4)], rng)
    summaries = run(PersonState(CONFIG), frames)
    back = [s for s in summaries if s.visible and s.movie_second >= 36]
    assert back and all(s.baseline_ready for s in back)
    assert [s.reaction for s in summaries if not s.visible] == ["neutral"] * 19
    assert set(reactions(back, 36, 39)) == {"neutral"}  # sad = their resting face
    assert set(reactions(back, 41, 44)) == {"surprise"}


def test_seat_whose_person_changes_after_a_long_absence_is_calibrated_again():
    """The first person rests neutral; after a 60 s absence a second person who rests sad sits down. Without
    recalibration the newcomer would read as sad for the rest of the screening."""
    rng = np.random.default_rng(3)
    frames = gap_then(script([("neutral", 12)], rng), 60.0, [("sadness", 30)], rng)
    summaries = run(PersonState(CONFIG), frames)
    newcomer = [s for s in summaries if s.visible and s.movie_second >= 72]
    assert not newcomer[0].baseline_ready and newcomer[-1].baseline_ready
    assert set(reactions(newcomer, 84, 102)) == {"neutral"}
    # The same seat with recalibration switched off (gap threshold longer than the absence) reports sadness.
    stuck = run(PersonState(StateConfig(recalibrate_after_gap_s=120.0)), frames)
    assert set(reactions(stuck, 84, 102)) == {"sadness"}


def test_before_the_baseline_is_ready_only_strong_expressions_are_reactions():
    mild, strong = expression("surprise", 0.25), expression("surprise", 0.9)
    frames = [scored(k / FPS, mild) for k in range(3 * FPS)] + [scored(3 + k / FPS, strong) for k in range(3 * FPS)]
    summaries = run(PersonState(CONFIG), frames)
    assert all(not s.baseline_ready for s in summaries)
    # the onset needs reaction_onset_seconds (2) seconds in a row
    assert [s.reaction for s in summaries] == ["neutral", "neutral", "neutral", "neutral", "surprise", "surprise"]


def test_screening_shorter_than_the_calibration_window():
    rng = np.random.default_rng(4)
    state = PersonState(CONFIG)
    summaries = run(state, script([("neutral", 3), ("happiness", 3)], rng)) + state.flush()
    assert [s.movie_second for s in summaries] == list(range(6))
    assert not any(s.baseline_ready for s in summaries)
    assert reactions(summaries, 0, 3) == ["neutral"] * 3
    assert reactions(summaries, 4, 6) == ["happiness"] * 2


def test_a_reaction_ends_with_the_expression():
    """The reaction is judged on the second's own frames: the first neutral second after a laugh is no reaction (the
    smoother, which carries about a third of the previous second, kept it for two more seconds)."""
    rng = np.random.default_rng(5)
    summaries = run(PersonState(CONFIG), script([("neutral", 12), ("happiness", 5), ("neutral", 5)], rng))
    assert reactions(summaries, 12, 17) == ["neutral"] + ["happiness"] * 4  # onset: 2 seconds in a row
    assert reactions(summaries, 17, 22) == ["neutral"] * 5
