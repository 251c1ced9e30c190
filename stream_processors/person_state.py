"""One viewer's emotion state: scored face frames in, one summary per movie second out.

`PersonState.update(frame)` smooths the frame, measures it against the viewer's baseline and accumulates it into
the open second (a viewer absent longer than `recalibrate_after_gap_s` is calibrated again); each closed second
gets its reaction (reaction.py), judged on the mean of its own frames against the baseline. It returns the
summaries the frame completed: the open second plus a not-visible one per missing second (at most
`max_gap_seconds`). `flush()` closes the open second. Frames at or before the last accepted frame, or inside an
already emitted second, are dropped and counted; so is a frame that jumps more than `max_jump_s` ahead until
`jump_confirm_frames` frames in a row have jumped with it. State round-trips through JSON-safe dicts (`to_dict` /
`from_dict`) for the Faust table.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from schemas.emotions import EMOTIONS, NUM_EMOTIONS
from stream_processors.affect import valence_arousal
from stream_processors.attention import is_attending, majority_attending
from stream_processors.baseline import NeutralBaseline
from stream_processors.config import StateConfig
from stream_processors.intensity import emotion_excess, emotion_intensities, overall_intensity
from stream_processors.reaction import NO_REACTION, ReactionDetector
from stream_processors.smoothing import EmaSmoother

ID_FIELDS = ("person_key", "screening_id", "theater_id", "camera_id", "seat_id", "model_version")
_PROB_SUM_TOLERANCE = 1e-3


def _plain(fields: dict[str, Any]) -> dict[str, Any]:
    """Copy of a dataclass's fields with numpy arrays turned into lists (JSON-safe)."""
    return {name: value.tolist() if isinstance(value, np.ndarray) else value for name, value in fields.items()}


@dataclass(frozen=True, eq=False)
class ScoredFrame:
    """One face frame as scored by the emotion engine; probs in EMOTIONS order."""

    person_key: str
    movie_ts: float
    captured_us: int
    probs: np.ndarray
    yaw_deg: float = math.nan
    pitch_deg: float = math.nan
    screening_id: str = ""
    theater_id: str = ""
    camera_id: str = ""
    seat_id: str = ""
    model_version: str = ""

    def __post_init__(self) -> None:
        probs = np.asarray(self.probs, dtype=np.float32)
        if probs.shape != (NUM_EMOTIONS,):
            raise ValueError(f"probs must have shape ({NUM_EMOTIONS},), got {probs.shape}")
        if not np.isfinite(probs).all() or (probs < 0).any() or abs(float(probs.sum()) - 1) > _PROB_SUM_TOLERANCE:
            raise ValueError(f"probs must be finite, non-negative and sum to 1, got {probs.tolist()}")
        if not math.isfinite(self.movie_ts):
            raise ValueError(f"movie_ts must be finite, got {self.movie_ts!r}")
        object.__setattr__(self, "probs", probs)


@dataclass(frozen=True, eq=False)
class SecondSummary:
    """One viewer's movie second. Score fields are None when the viewer was not visible."""

    person_key: str
    screening_id: str
    theater_id: str
    camera_id: str
    seat_id: str
    model_version: str
    movie_second: int
    captured_us: int  # last frame of the second; estimated from the last frame when not visible
    frames: int
    visible: bool
    attending: bool
    baseline_ready: bool
    probs: np.ndarray | None = None  # raw mean of the second's frames
    smoothed: np.ndarray | None = None  # smoother output at the second's last frame
    dominant: str | None = None  # argmax of smoothed
    reaction: str = NO_REACTION  # against the viewer's own baseline; neutral = no reaction (and when not visible)
    intensities: np.ndarray | None = None  # per emotion, against the baseline
    intensity: float | None = None  # strongest non-neutral intensity
    valence: float | None = None
    arousal: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict: arrays become lists of floats."""
        return _plain(self.__dict__)


@dataclass
class _OpenSecond:
    """Accumulator of the second that is still receiving frames."""

    second: int
    frames: int = 0
    attending_frames: int = 0
    probs_sum: np.ndarray = field(default_factory=lambda: np.zeros(NUM_EMOTIONS))
    captured_us: int = 0
    smoothed: np.ndarray = field(default_factory=lambda: np.zeros(NUM_EMOTIONS))
    baseline: np.ndarray = field(default_factory=lambda: np.zeros(NUM_EMOTIONS))
    baseline_ready: bool = False

    def to_dict(self) -> dict[str, Any]:
        return _plain(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "_OpenSecond":
        arrays = ("probs_sum", "smoothed", "baseline")
        return cls(**{k: np.asarray(v, dtype=np.float64) if k in arrays else v for k, v in data.items()})


class PersonState:
    """Per-person smoother + baseline + open-second accumulator; see the module docstring."""

    def __init__(self, config: StateConfig) -> None:
        self._config = config
        self._smoother = EmaSmoother(config)
        self._baseline = NeutralBaseline(config)
        self._reaction = ReactionDetector(config)
        self._open: _OpenSecond | None = None
        self._ids: dict[str, str] | None = None  # ids of the last accepted frame
        self._last_ts: float | None = None
        self._last_captured_us: int | None = None
        self._last_emitted: int | None = None
        self._dropped = 0
        self._jumped = 0  # frames in a row so far that jumped more than max_jump_s ahead

    @property
    def dropped_frames(self) -> int:
        """Out-of-order or duplicate frames ignored so far."""
        return self._dropped

    @property
    def baseline_ready(self) -> bool:
        return self._baseline.ready

    def update(self, frame: ScoredFrame) -> list[SecondSummary]:
        """Feed one frame; returns the summaries it completed (usually none, one at a second boundary)."""
        if self._ids is not None and frame.person_key != self._ids["person_key"]:
            owner = self._ids["person_key"]
            raise ValueError(f"frame for person {frame.person_key!r} fed to the state of {owner!r}")
        second = math.floor(frame.movie_ts / self._config.second_s)
        if self._is_stale(frame.movie_ts, second) or self._is_unconfirmed_jump(frame.movie_ts):
            self._dropped += 1
            return []
        emitted: list[SecondSummary] = []
        if self._open is not None and second > self._open.second:
            emitted.append(self._close())
        if self._open is None:
            emitted.extend(self._not_visible_until(second))
            self._open = _OpenSecond(second=second)
        if self._last_ts is not None and frame.movie_ts - self._last_ts > self._config.recalibrate_after_gap_s:
            self._baseline.reset()
        smoothed = self._smoother.update(frame.movie_ts, frame.probs)
        baseline = self._baseline.update(frame.movie_ts, smoothed)
        self._add(frame, smoothed, baseline)
        return emitted

    def flush(self) -> list[SecondSummary]:
        """Close the open second (end of screening); empty when no second is open."""
        return [] if self._open is None else [self._close()]

    def _is_stale(self, movie_ts: float, second: int) -> bool:
        late_frame = self._last_ts is not None and movie_ts <= self._last_ts
        late_second = self._last_emitted is not None and second <= self._last_emitted
        return late_frame or late_second

    def _is_unconfirmed_jump(self, movie_ts: float) -> bool:
        if self._last_ts is None or movie_ts - self._last_ts <= self._config.max_jump_s:
            self._jumped = 0
            return False
        self._jumped += 1
        if self._jumped < self._config.jump_confirm_frames:
            return True
        self._jumped = 0
        return False

    def _add(self, frame: ScoredFrame, smoothed: np.ndarray, baseline: np.ndarray) -> None:
        acc = self._open
        acc.frames += 1
        acc.attending_frames += int(is_attending(frame.yaw_deg, frame.pitch_deg, self._config))
        acc.probs_sum += frame.probs
        acc.captured_us = frame.captured_us
        acc.smoothed, acc.baseline, acc.baseline_ready = smoothed, baseline, self._baseline.ready
        self._ids = {name: getattr(frame, name) for name in ID_FIELDS}
        self._last_ts, self._last_captured_us = frame.movie_ts, frame.captured_us

    def _close(self) -> SecondSummary:
        acc, self._open = self._open, None
        self._last_emitted = acc.second
        intensities = emotion_intensities(acc.smoothed, acc.baseline)
        valence, arousal = valence_arousal(acc.smoothed)
        probs = acc.probs_sum / acc.frames
        return SecondSummary(
            **self._ids,
            movie_second=acc.second,
            captured_us=acc.captured_us,
            frames=acc.frames,
            visible=True,
            attending=majority_attending(acc.attending_frames, acc.frames),
            baseline_ready=acc.baseline_ready,
            probs=probs,
            smoothed=acc.smoothed,
            dominant=EMOTIONS[int(np.argmax(acc.smoothed))],
            reaction=self._reaction.update(emotion_excess(probs, acc.baseline), acc.baseline_ready),
            intensities=intensities,
            intensity=overall_intensity(intensities),
            valence=valence,
            arousal=arousal,
        )

    def _not_visible_until(self, second: int) -> list[SecondSummary]:
        """Not-visible summaries from the last emitted second up to `second`, capped at max_gap_seconds."""
        if self._last_emitted is None:
            return []
        first = self._last_emitted + 1
        missing = range(first, min(second, first + self._config.max_gap_seconds))
        summaries = [
            SecondSummary(
                **self._ids,
                movie_second=s,
                # Wall clock at the end of the missing second, assuming the film plays in real time.
                captured_us=self._last_captured_us + round(((s + 1) * self._config.second_s - self._last_ts) * 1e6),
                frames=0,
                visible=False,
                attending=False,
                baseline_ready=self._baseline.ready,
            )
            for s in missing
        ]
        if summaries:
            self._last_emitted = summaries[-1].movie_second
            self._reaction.reset()
        return summaries

    _PLAIN = ("ids", "last_ts", "last_captured_us", "last_emitted", "dropped", "jumped")

    def to_dict(self) -> dict[str, Any]:
        return {"smoother": self._smoother.to_dict(), "baseline": self._baseline.to_dict(),
                "reaction": self._reaction.to_dict(), "open": None if self._open is None else self._open.to_dict(),
                **{name: getattr(self, f"_{name}") for name in self._PLAIN}}

    @classmethod
    def from_dict(cls, data: dict[str, Any], config: StateConfig) -> "PersonState":
        state = cls(config)
        state._smoother = EmaSmoother.from_dict(data["smoother"], config)
        state._baseline = NeutralBaseline.from_dict(data["baseline"], config)
        state._reaction = ReactionDetector.from_dict(data.get("reaction"), config)
        state._open = None if data["open"] is None else _OpenSecond.from_dict(data["open"])
        for name in cls._PLAIN:  # only "jumped" may be missing (states stored before it existed); the rest must be
            setattr(state, f"_{name}", data.get(name, 0) if name == "jumped" else data[name])
        return state
