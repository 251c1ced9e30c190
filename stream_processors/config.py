"""Tunables of the per-person emotion state (smoothing, baseline, attention, per-second summaries).

One frozen dataclass, validated on construction; every stateful class in this package takes it.
Defaults assume about 5 face frames per second per viewer. See docs/emotion-metrics.md.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from engines.emotions import NUM_EMOTIONS

# Resting expression assumed for a viewer whose own baseline is still calibrating, in EMOTIONS
# order. A typical emotion classifier on neutral faces: mostly neutral, some sadness/contempt.
# Re-estimate it from the deployed engine's output on the calibration segments of past screenings.
POPULATION_BASELINE: tuple[float, ...] = (0.70, 0.05, 0.03, 0.12, 0.04, 0.01, 0.01, 0.04)


@dataclass(frozen=True)
class StateConfig:
    second_s: float = 1.0  # length of one summary "second" of movie time
    smoothing_tau_s: float = 1.0  # EMA time constant of the expression smoother
    smoothing_reset_gap_s: float = 2.0  # a frame gap longer than this restarts the smoother
    calibration_s: float = 10.0  # baseline window length, from the person's first visible frame
    calibration_segment: tuple[float, float] | None = None  # explicit [start, end) movie time instead
    calibration_min_frames: int = 20  # frames a window needs, else a new window starts
    baseline_tau_s: float = 600.0  # time constant of the calibrated baseline's slow adaptation
    baseline_rest_intensity: float = 0.15  # only frames with overall intensity <= this adapt it
    baseline_max_step_s: float = 1.0  # longest frame gap credited to one adaptation step
    population_baseline: tuple[float, ...] = POPULATION_BASELINE
    max_yaw_deg: float = 30.0  # |yaw| above this = not attending
    max_pitch_deg: float = 25.0  # |pitch| above this = not attending
    max_gap_seconds: int = 30  # most not-visible seconds emitted for one gap in a person's frames

    def __post_init__(self) -> None:
        positive = ("second_s", "smoothing_tau_s", "smoothing_reset_gap_s", "calibration_s",
                    "baseline_tau_s", "baseline_max_step_s", "max_yaw_deg", "max_pitch_deg")
        for name in positive:
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"StateConfig.{name} must be a finite number > 0, got {value!r}")
        if self.calibration_min_frames < 1:
            raise ValueError("StateConfig.calibration_min_frames must be >= 1")
        if self.max_gap_seconds < 0:
            raise ValueError("StateConfig.max_gap_seconds must be >= 0")
        if not 0 <= self.baseline_rest_intensity <= 1:
            raise ValueError("StateConfig.baseline_rest_intensity must be in [0, 1]")
        if self.calibration_segment is not None:
            start, end = self.calibration_segment
            if not (math.isfinite(start) and math.isfinite(end) and start < end):
                raise ValueError(f"StateConfig.calibration_segment must be [start, end) with start < end, "
                                 f"got {self.calibration_segment!r}")
        base = self.population_baseline
        if len(base) != NUM_EMOTIONS or min(base) < 0 or abs(sum(base) - 1) > 1e-6:
            raise ValueError(f"StateConfig.population_baseline must be {NUM_EMOTIONS} non-negative "
                             f"probabilities summing to 1, got {base!r}")
