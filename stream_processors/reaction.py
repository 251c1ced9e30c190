"""A viewer's reaction per second: the non-neutral emotion they show above their own neutral baseline.

`leading_emotion` is the pure rule for one second, on each emotion's excess over the baseline (intensity.py);
`ReactionDetector` keeps the label from flickering (an onset needs `reaction_onset_seconds` in a row; a reaction
lasts while its excess stays at `reaction_release` x the threshold) and, before calibration, counts only transient
expressions (happiness, surprise, fear) above `reaction_calibrating_threshold`: a sad, angry or contemptuous face
may be that viewer's resting face. See docs/emotion-metrics.md.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from schemas.emotions import EMOTION_INDEX, EMOTIONS
from stream_processors.config import StateConfig
from stream_processors.intensity import NEUTRAL

NO_REACTION = EMOTIONS[NEUTRAL]


def leading_emotion(excess: np.ndarray, threshold: float, margin: float) -> str:
    """The non-neutral emotion whose excess over the baseline leads, if it reaches `threshold` and leads the
    runner-up by at least `margin`; else `neutral` (no reaction)."""
    values = np.asarray(excess, dtype=np.float64).copy()
    values[NEUTRAL] = -np.inf
    order = np.argsort(values)[::-1]
    top, runner_up = values[order[0]], values[order[1]]
    if top >= threshold and top - max(runner_up, 0.0) >= margin:
        return EMOTIONS[int(order[0])]
    return NO_REACTION


class ReactionDetector:
    """`update(excess, baseline_ready)` feeds one visible second and returns its reaction;
    `reset()` ends any reaction (the viewer left the camera's view)."""

    def __init__(self, config: StateConfig) -> None:
        self._config = config
        self._active = NO_REACTION  # the reaction being reported
        self._candidate = NO_REACTION  # an onset waiting for its seconds in a row
        self._candidate_seconds = 0
        self._resting_kinds = [EMOTION_INDEX[name] for name in EMOTIONS
                               if name != NO_REACTION and name not in config.calibration_transient_emotions]

    @property
    def active(self) -> str:
        return self._active

    def reset(self) -> None:
        self._active, self._candidate, self._candidate_seconds = NO_REACTION, NO_REACTION, 0

    def update(self, excess: np.ndarray, baseline_ready: bool) -> str:
        config = self._config
        threshold = config.reaction_threshold if baseline_ready else config.reaction_calibrating_threshold
        release = threshold * config.reaction_release
        values = np.asarray(excess, dtype=np.float64)
        if not baseline_ready:
            values = values.copy()
            values[self._resting_kinds] = 0.0
        leader = leading_emotion(values, threshold, config.reaction_margin)
        if self._active != NO_REACTION:
            ongoing = values[EMOTIONS.index(self._active)] >= release
            if ongoing and leader in (NO_REACTION, self._active):
                self._candidate, self._candidate_seconds = NO_REACTION, 0
                return self._active
            if not ongoing:
                self._active = NO_REACTION
        self._count_onset(leader)
        if self._candidate != NO_REACTION and self._candidate_seconds >= config.reaction_onset_seconds:
            self._active = self._candidate
            self._candidate, self._candidate_seconds = NO_REACTION, 0
        return self._active

    def _count_onset(self, leader: str) -> None:
        if leader == NO_REACTION:
            self._candidate, self._candidate_seconds = NO_REACTION, 0
        elif leader == self._candidate:
            self._candidate_seconds += 1
        else:
            self._candidate, self._candidate_seconds = leader, 1

    def to_dict(self) -> dict[str, Any]:
        return {"active": self._active, "candidate": self._candidate, "candidate_seconds": self._candidate_seconds}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, config: StateConfig) -> "ReactionDetector":
        detector = cls(config)
        if data:  # states stored before reactions existed have none: they start with no reaction
            detector._active, detector._candidate = data["active"], data["candidate"]
            detector._candidate_seconds = int(data["candidate_seconds"])
        return detector
