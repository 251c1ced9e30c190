"""A viewer's neutral baseline: their resting expression as a probability vector.

Calibrating: the mean of the resting frames inside a window, [first frame, +calibration_s) of movie time or the
explicit `calibration_segment`. Resting: no transient expression (`calibration_transient_emotions`) above
`calibration_max_intensity` against the population baseline, until `calibration_patience_s` after the first window
opened (then every frame counts: a face that never rests is that viewer's resting face). A window closing with
fewer than `calibration_min_frames` frames is replaced by a fresh one. Until ready, `update` returns the population
baseline; `reset()` calibrates again (a long absence). Ready: the baseline follows the viewer slowly
(`baseline_tau_s`), only on resting frames (overall intensity <= `baseline_rest_intensity`).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from schemas.emotions import EMOTION_INDEX
from stream_processors.config import StateConfig
from stream_processors.intensity import emotion_intensities, overall_intensity
from stream_processors.smoothing import blend, ema_alpha


class NeutralBaseline:
    """`update(t, probs)` feeds one frame (times strictly increasing) and returns the baseline in effect for it."""

    def __init__(self, config: StateConfig) -> None:
        self._config = config
        self._window: tuple[float, float] | None = None
        self._count = 0
        self._sum = np.zeros(len(config.population_baseline))
        self._value: np.ndarray | None = None  # set once calibrated
        self._last_t: float | None = None
        self._first_t: float | None = None  # when the first calibration window opened
        self._transient = [EMOTION_INDEX[name] for name in config.calibration_transient_emotions]

    @property
    def ready(self) -> bool:
        return self._value is not None

    @property
    def value(self) -> np.ndarray:
        """The person's baseline once calibrated, else the population baseline."""
        if self._value is None:
            return np.asarray(self._config.population_baseline, dtype=np.float64)
        return self._value.copy()

    def reset(self) -> None:
        """Forget the calibrated baseline and calibrate again from the next frame."""
        self._window, self._value, self._first_t = None, None, None
        self._count, self._sum = 0, np.zeros_like(self._sum)

    def update(self, t: float, probs: np.ndarray) -> np.ndarray:
        probs = np.asarray(probs, dtype=np.float64)
        if self._last_t is not None and t <= self._last_t:
            raise ValueError(f"baseline times must increase: got t={t} after t={self._last_t}")
        if self.ready:
            self._adapt(t, probs)
        else:
            self._calibrate(t, probs)
        self._last_t = t
        return self.value

    def _calibrate(self, t: float, probs: np.ndarray) -> None:
        if self._window is None:
            self._window = self._config.calibration_segment or (t, t + self._config.calibration_s)
            self._first_t = t
        start, end = self._window
        if t >= end:
            if self._count >= self._config.calibration_min_frames:
                self._value = self._sum / self._count
                return
            self._window = (t, t + self._config.calibration_s)
            self._count, self._sum = 0, np.zeros_like(self._sum)
            start = t
        if t >= start and self._counts_as_resting(t, probs):
            self._count += 1
            self._sum += probs

    def _counts_as_resting(self, t: float, probs: np.ndarray) -> bool:
        if t - self._first_t >= self._config.calibration_patience_s:
            return True
        population = np.asarray(self._config.population_baseline, dtype=np.float64)
        return float(emotion_intensities(probs, population)[self._transient].max()) <= self._config.calibration_max_intensity

    def _adapt(self, t: float, probs: np.ndarray) -> None:
        if overall_intensity(emotion_intensities(probs, self._value)) > self._config.baseline_rest_intensity:
            return
        dt = min(t - self._last_t, self._config.baseline_max_step_s)
        self._value = blend(self._value, probs, ema_alpha(dt, self._config.baseline_tau_s))

    def to_dict(self) -> dict[str, Any]:
        return {"window": self._window and list(self._window), "count": self._count, "sum": self._sum.tolist(),
                "value": None if self._value is None else self._value.tolist(), "last_t": self._last_t,
                "first_t": self._first_t}

    @classmethod
    def from_dict(cls, data: dict[str, Any], config: StateConfig) -> "NeutralBaseline":
        baseline, window = cls(config), data["window"]
        baseline._window, baseline._count = window and tuple(window), int(data["count"])
        baseline._last_t = data["last_t"]
        baseline._sum = np.asarray(data["sum"], dtype=np.float64)
        baseline._value = None if data["value"] is None else np.asarray(data["value"], dtype=np.float64)
        baseline._first_t = data.get("first_t", window[0] if window else None)  # states stored before it existed
        return baseline
