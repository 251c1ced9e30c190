"""Tunables of the per-person emotion state (smoothing, baseline, attention, per-second summaries).

One frozen dataclass, validated on construction; every stateful class in this package takes it.
Defaults assume about 5 face frames per second per viewer. See docs/emotion-metrics.md.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from schemas.emotions import EMOTIONS, NUM_EMOTIONS

# Resting expression assumed while a viewer's own baseline calibrates (EMOTIONS order): a typical classifier on
# neutral faces. Re-estimate it from the deployed engine's output on past screenings' calibration segments.
POPULATION_BASELINE: tuple[float, ...] = (0.70, 0.05, 0.03, 0.12, 0.04, 0.01, 0.01, 0.04)


@dataclass(frozen=True)
class StateConfig:
    second_s: float = 1.0  # length of one summary "second" of movie time
    smoothing_tau_s: float = 1.0  # EMA time constant of the expression smoother
    smoothing_reset_gap_s: float = 2.0  # a frame gap longer than this restarts the smoother
    calibration_s: float = 10.0  # baseline window length, from the person's first visible frame
    calibration_segment: tuple[float, float] | None = None  # explicit [start, end) movie time instead
    calibration_min_frames: int = 20  # frames a window needs, else a new window starts
    # Calibration skips frames with a transient expression above calibration_max_intensity against the population
    # baseline (no calibrating on laughter; a resting face that reads sad, angry or contemptuous counts) ...
    calibration_transient_emotions: tuple[str, ...] = ("happiness", "surprise", "fear")
    calibration_max_intensity: float = 0.5
    # ... until this much movie time after the first window opened: a face that never rests is the resting face.
    calibration_patience_s: float = 30.0
    recalibrate_after_gap_s: float = 30.0  # a viewer absent longer than this is calibrated again (maybe a new person)
    baseline_tau_s: float = 600.0  # time constant of the calibrated baseline's slow adaptation
    baseline_rest_intensity: float = 0.15  # only frames with overall intensity <= this adapt it
    baseline_max_step_s: float = 1.0  # longest frame gap credited to one adaptation step
    population_baseline: tuple[float, ...] = POPULATION_BASELINE
    max_yaw_deg: float = 30.0  # |yaw| above this = not attending
    max_pitch_deg: float = 25.0  # |pitch| above this = not attending
    max_gap_seconds: int = 30  # most not-visible seconds emitted for one gap in a person's frames
    # A frame more than max_jump_s of movie time after the viewer's last one is believed only when the next
    # jump_confirm_frames - 1 frames jump with it; a lone frame with a wild clock is dropped, not allowed to
    # close every later second of the viewer's timeline.
    max_jump_s: float = 300.0
    jump_confirm_frames: int = 3
    # Reactions (stream_processors/reaction.py; calibrated in docs/emotion-metrics.md):
    reaction_threshold: float = 0.10  # onset: the leading non-neutral probability above the viewer's own baseline
    reaction_margin: float = 0.02  # onset: its lead over the runner-up emotion
    reaction_release: float = 0.6  # an ongoing reaction lasts while its excess stays at or above this x the threshold
    reaction_onset_seconds: int = 2  # seconds in a row an onset must lead before it is reported
    reaction_calibrating_threshold: float = 0.30  # onset threshold against the population baseline (not calibrated)

    def __post_init__(self) -> None:
        positive = ("second_s", "smoothing_tau_s", "smoothing_reset_gap_s", "calibration_s",
                    "baseline_tau_s", "baseline_max_step_s", "max_yaw_deg", "max_pitch_deg",
                    "calibration_patience_s", "recalibrate_after_gap_s", "max_jump_s")
        for name in positive:
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"StateConfig.{name} must be a finite number > 0, got {value!r}")
        at_least = {"calibration_min_frames": 1, "max_gap_seconds": 0, "jump_confirm_frames": 1,
                    "reaction_onset_seconds": 1}
        for name, low in at_least.items():
            if getattr(self, name) < low:
                raise ValueError(f"StateConfig.{name} must be >= {low}, got {getattr(self, name)!r}")
        for name in ("baseline_rest_intensity", "calibration_max_intensity", "reaction_margin"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"StateConfig.{name} must be in [0, 1], got {getattr(self, name)!r}")
        for name in ("reaction_threshold", "reaction_calibrating_threshold", "reaction_release"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"StateConfig.{name} must be in (0, 1], got {getattr(self, name)!r}")
        if self.calibration_segment is not None:
            start, end = self.calibration_segment
            if not (math.isfinite(start) and math.isfinite(end) and start < end):
                raise ValueError(f"StateConfig.calibration_segment must be [start, end) with start < end, "
                                 f"got {self.calibration_segment!r}")
        unknown = set(self.calibration_transient_emotions) - set(EMOTIONS)
        if unknown:
            raise ValueError(f"StateConfig.calibration_transient_emotions has unknown emotions {sorted(unknown)}")
        base = self.population_baseline
        if len(base) != NUM_EMOTIONS or min(base) < 0 or abs(sum(base) - 1) > 1e-6:
            raise ValueError(f"StateConfig.population_baseline must be {NUM_EMOTIONS} non-negative "
                             f"probabilities summing to 1, got {base!r}")
