"""PersonState: scored frames in, one summary per person per movie second out.

Also holds the synthetic-viewer helpers (`expression`, `scored`, `run`) the other state tests import.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from schemas.emotions import EMOTION_INDEX, EMOTIONS
from stream_processors.config import StateConfig
from stream_processors.person_state import PersonState, ScoredFrame, SecondSummary

FPS = 5


def expression(emotion: str, strength: float, rng: np.random.Generator | None = None,
               noise: float = 0.25) -> np.ndarray:
    """A probability vector with `strength` on `emotion`, the rest spread evenly, with optional log-noise."""
    probs = np.full(len(EMOTIONS), (1 - strength) / (len(EMOTIONS) - 1))
    probs[EMOTION_INDEX[emotion]] = strength
    if rng is not None:
        probs = probs * np.exp(rng.normal(0.0, noise, len(EMOTIONS)))
    return (probs / probs.sum()).astype(np.float32)


def scored(t: float, probs: np.ndarray, yaw: float = 0.0, pitch: float = 0.0, key: str = "p1") -> ScoredFrame:
    return ScoredFrame(person_key=key, movie_ts=t, captured_us=1_700_000_000_000_000 + round(t * 1e6),
                       probs=probs, yaw_deg=yaw, pitch_deg=pitch, screening_id="s1", theater_id="t1",
                       camera_id="c1", seat_id="A7", model_version="m1")


def run(state: PersonState, frames: list[ScoredFrame]) -> list[SecondSummary]:
    """Feed every frame, then flush; all summaries in emission order."""
    out = [summary for frame in frames for summary in state.update(frame)]
    return out + state.flush()


def script(segments: list[tuple[str, float]], rng: np.random.Generator, start_s: float = 0.0) -> list[ScoredFrame]:
    """Frames at FPS for consecutive (emotion, seconds) segments, strength 0.8 with noise."""
    frames, t0 = [], start_s
    for emotion, seconds in segments:
        frames += [scored(t0 + k / FPS, expression(emotion, 0.8, rng)) for k in range(round(seconds * FPS))]
        t0 += seconds
    return frames


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scripted_neutral_then_happy_dominant_follows_script(seed):
    rng = np.random.default_rng(seed)
    summaries = run(PersonState(StateConfig()), script([("neutral", 10), ("happiness", 5)], rng))

    assert [s.movie_second for s in summaries] == list(range(15))
    assert all(s.visible and s.frames == FPS for s in summaries)
    for s in summaries:
        expected = "neutral" if s.movie_second < 10 else "happiness"
        lagging = s.movie_second == 10 and s.dominant == "neutral"  # at most one second of lag
        assert s.dominant == expected or lagging, (s.movie_second, s.dominant)
    assert [s.baseline_ready for s in summaries] == [False] * 10 + [True] * 5
    assert max(s.intensity for s in summaries[:10]) < 0.15
    assert min(s.intensity for s in summaries[11:]) > 0.5
    assert min(s.valence for s in summaries[11:]) > 0.3 > max(abs(s.valence) for s in summaries[:10])


def test_summary_fields_come_from_the_seconds_frames():
    rng = np.random.default_rng(3)
    frames = script([("surprise", 2)], rng, start_s=4.0)
    first, second = run(PersonState(StateConfig()), frames)

    np.testing.assert_allclose(first.probs, np.mean([f.probs for f in frames[:FPS]], axis=0), rtol=1e-6)
    assert first.captured_us == frames[FPS - 1].captured_us
    assert (first.person_key, first.seat_id, first.camera_id, first.model_version) == ("p1", "A7", "c1", "m1")
    assert second.movie_second == 5 and second.dominant == EMOTIONS[int(np.argmax(second.smoothed))]
    assert second.smoothed.sum() == pytest.approx(1.0)
    assert 0 <= second.intensities.min() and second.intensities.max() <= 1


def test_gap_emits_not_visible_seconds_with_estimated_wall_clock():
    rng = np.random.default_rng(4)
    frames = script([("neutral", 3)], rng) + script([("happiness", 2)], rng, start_s=8.0)
    summaries = run(PersonState(StateConfig()), frames)

    assert [s.movie_second for s in summaries] == list(range(10))
    gap = summaries[3:8]
    assert not any(s.visible or s.attending for s in gap)
    assert all(s.frames == 0 and s.probs is None and s.dominant is None and s.intensity is None for s in gap)
    last = frames[3 * FPS - 1]
    expected_us = [last.captured_us + round((s + 1 - last.movie_ts) * 1e6) for s in range(3, 8)]
    assert [s.captured_us for s in gap] == expected_us
    # The smoother restarted after the gap: the first second back shows only the new expression.
    assert summaries[8].visible and summaries[8].dominant == "happiness" and summaries[8].smoothed[1] > 0.6


def test_gap_is_capped_so_a_viewer_who_left_does_not_flood():
    rng = np.random.default_rng(5)
    frames = script([("neutral", 1)], rng) + script([("neutral", 1)], rng, start_s=500.0)
    summaries = run(PersonState(StateConfig(max_gap_seconds=3)), frames)

    assert [(s.movie_second, s.visible) for s in summaries] == [
        (0, True), (1, False), (2, False), (3, False), (500, True)]


def test_duplicates_and_out_of_order_frames_are_dropped_and_counted():
    state = PersonState(StateConfig())
    probs = expression("neutral", 0.8)
    for t in (1.0, 1.2, 1.2, 1.1, 1.4):
        state.update(scored(t, probs))
    assert state.dropped_frames == 2
    (closed,) = state.flush()
    assert closed.frames == 3
    assert state.update(scored(1.6, probs)) == []  # inside the already emitted second 1
    assert state.dropped_frames == 3
    assert [s.movie_second for s in state.update(scored(2.0, probs)) + state.flush()] == [2]


def test_attending_is_the_majority_of_the_seconds_frames():
    probs = expression("neutral", 0.8)
    poses = [(0, 0), (10, -5), (-29, 24), (45, 0), (0, 40),  # second 0: 3 of 5 attend
             (0, 0), (math.nan, 0), (0, math.nan), (60, 0), (5, 5)]  # second 1: 2 of 5 attend
    frames = [scored(k / FPS, probs, yaw, pitch) for k, (yaw, pitch) in enumerate(poses)]
    summaries = run(PersonState(StateConfig()), frames)
    assert [s.attending for s in summaries] == [True, False]


def test_second_length_is_configurable():
    rng = np.random.default_rng(6)
    frames = script([("neutral", 3)], rng)
    summaries = run(PersonState(StateConfig(second_s=0.5)), frames)
    assert [s.movie_second for s in summaries] == list(range(6))
    assert sum(s.frames for s in summaries) == len(frames)
    assert all(s.frames in (2, 3) for s in summaries)


@pytest.mark.parametrize("split", [0, 7, 23, 50, 51, 62])
def test_state_round_trips_through_json_mid_stream(split):
    rng = np.random.default_rng(7)
    frames = script([("neutral", 10), ("sadness", 2)], rng) + script([("anger", 3)], rng, start_s=15.5)
    frames.insert(30, frames[29])  # a duplicate, so the dropped counter is part of the state
    config = StateConfig()
    uninterrupted = run(PersonState(config), frames)

    first = PersonState(config)
    head = [s for f in frames[:split] for s in first.update(f)]
    restored = PersonState.from_dict(json.loads(json.dumps(first.to_dict())), config)
    resumed = head + run(restored, frames[split:])

    assert [s.to_dict() for s in resumed] == [s.to_dict() for s in uninterrupted]
    assert restored.dropped_frames == 1


def test_flush_closes_the_open_second_once():
    state = PersonState(StateConfig())
    assert state.flush() == []
    state.update(scored(3.3, expression("fear", 0.7)))
    (summary,) = state.flush()
    assert summary.movie_second == 3 and summary.frames == 1 and summary.dominant == "fear"
    assert state.flush() == []


def test_summary_dict_is_json_safe_for_visible_and_missing_seconds():
    frames = [scored(0.0, expression("happiness", 0.9)), scored(3.0, expression("happiness", 0.9))]
    summaries = run(PersonState(StateConfig()), frames)
    decoded = json.loads(json.dumps([s.to_dict() for s in summaries]))
    assert [d["visible"] for d in decoded] == [True, False, False, True]
    assert len(decoded[0]["intensities"]) == len(EMOTIONS) and decoded[1]["intensities"] is None


def test_frames_of_another_person_are_rejected():
    state = PersonState(StateConfig())
    state.update(scored(0.0, expression("neutral", 0.8), key="p1"))
    with pytest.raises(ValueError, match="p2"):
        state.update(scored(0.2, expression("neutral", 0.8), key="p2"))


@pytest.mark.parametrize("probs, movie_ts, message", [
    (np.full(7, 1 / 7), 1.0, "shape"),
    (np.array([np.nan] + [1 / 7] * 7), 1.0, "finite"),
    (np.array([1.2, -0.2] + [0.0] * 6), 1.0, "non-negative"),
    (np.full(8, 0.2), 1.0, "sum to 1"),
    (np.full(8, 1 / 8), math.inf, "movie_ts"),
])
def test_bad_frames_fail_with_one_clear_error(probs, movie_ts, message):
    with pytest.raises(ValueError, match=message):
        ScoredFrame(person_key="p1", movie_ts=movie_ts, captured_us=0, probs=probs)


@pytest.mark.parametrize("changes, field_name", [
    ({"smoothing_tau_s": 0.0}, "smoothing_tau_s"),
    ({"second_s": math.nan}, "second_s"),
    ({"calibration_min_frames": 0}, "calibration_min_frames"),
    ({"max_gap_seconds": -1}, "max_gap_seconds"),
    ({"baseline_rest_intensity": 1.5}, "baseline_rest_intensity"),
    ({"calibration_segment": (8.0, 5.0)}, "calibration_segment"),
    ({"population_baseline": (0.5,) * 8}, "population_baseline"),
])
def test_bad_config_fails_with_one_clear_error(changes, field_name):
    with pytest.raises(ValueError, match=field_name):
        StateConfig(**changes)


def test_one_frame_with_a_wild_movie_time_does_not_erase_the_timeline():
    """A frame claiming a movie time hours ahead (a corrupt or hostile clock) used to open that second and make every
    later, normal frame of the viewer stale: no more per-second events. It is dropped unless frames keep jumping."""
    rng = np.random.default_rng(7)
    state = PersonState(StateConfig())
    frames = script([("neutral", 10)], rng)
    wild = scored(5 * 3600.0, expression("happiness", 0.9))
    summaries = run(state, frames[:25] + [wild] + frames[25:]) + state.flush()
    assert [s.movie_second for s in summaries] == list(range(10))
    assert state.dropped_frames == 1


def test_a_confirmed_jump_is_followed():
    """A viewer whose frames really jump ahead (a long absence, a skipped reel) is followed after jump_confirm_frames
    frames; the frames before confirmation are dropped and counted."""
    rng = np.random.default_rng(8)
    state = PersonState(StateConfig(max_jump_s=300.0, jump_confirm_frames=3))
    later = script([("neutral", 3)], rng, start_s=1000.0)
    summaries = run(state, script([("neutral", 3)], rng) + later) + state.flush()
    assert [s.movie_second for s in summaries if s.visible] == [0, 1, 2, 1000, 1001, 1002]
    assert state.dropped_frames == 2


def test_a_stored_state_missing_a_field_is_refused_but_one_from_before_jump_confirmation_loads():
    state = PersonState(StateConfig())
    state.update(ScoredFrame(person_key="p", movie_ts=0.2, captured_us=1, probs=np.full(8, 0.125)))
    stored = state.to_dict()
    older = {k: v for k, v in stored.items() if k != "jumped"}
    assert PersonState.from_dict(older, StateConfig()).to_dict()["jumped"] == 0
    broken = {k: v for k, v in stored.items() if k != "last_ts"}
    with pytest.raises(KeyError):
        PersonState.from_dict(broken, StateConfig())
