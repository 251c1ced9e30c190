"""Expression intensity: how far a viewer's expression sits above their own resting baseline.

Pure functions. Per emotion e, with expression p and baseline b (probability vectors):

    i_e = clip((p_e - b_e) / (1 - b_e), 0, 1)

the share of the headroom above the viewer's resting level that the expression fills.
Overall intensity is the largest i_e over the non-neutral emotions. The excess, max(p_e - b_e, 0),
is what reactions are judged on: unlike i_e it does not magnify the noise of an emotion the viewer
already rests high on (b_e = 0.8 turns a 0.03 wobble into i_e = 0.15). See docs/emotion-metrics.md.
"""
from __future__ import annotations

import numpy as np

from schemas.emotions import EMOTION_INDEX, NUM_EMOTIONS

NEUTRAL = EMOTION_INDEX["neutral"]
_NON_NEUTRAL = np.array([index for index in range(NUM_EMOTIONS) if index != NEUTRAL])
# A baseline already at (nearly) 1 leaves no headroom; cap it so the ratio stays finite.
_MAX_BASELINE = 1.0 - 1e-6


def emotion_intensities(probs: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """Per-emotion intensity in [0, 1], shape (8,), in EMOTIONS order."""
    base = np.minimum(np.asarray(baseline, dtype=np.float64), _MAX_BASELINE)
    excess = (np.asarray(probs, dtype=np.float64) - base) / (1.0 - base)
    return np.clip(excess, 0.0, 1.0)


def overall_intensity(intensities: np.ndarray) -> float:
    """The strongest non-neutral emotion's intensity, in [0, 1]."""
    return float(np.asarray(intensities)[_NON_NEUTRAL].max())


def emotion_excess(probs: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """Per-emotion probability above the baseline, max(p_e - b_e, 0), shape (8,), in EMOTIONS order."""
    excess = np.asarray(probs, dtype=np.float64) - np.asarray(baseline, dtype=np.float64)
    return np.clip(excess, 0.0, 1.0)
