"""Valence and arousal from emotion probabilities: the probability-weighted mean of fixed (valence, arousal) points
in [-1, 1]^2 on the affective circumplex, after Russell (1980); neutral is the origin. docs/emotion-metrics.md
says where each point comes from.
"""
from __future__ import annotations

import numpy as np

from schemas.emotions import EMOTIONS

# (valence, arousal) per emotion, keyed by name so the table cannot drift from EMOTIONS order.
_POINTS: dict[str, tuple[float, float]] = {
    "neutral": (0.0, 0.0),
    "happiness": (0.80, 0.35),
    "surprise": (0.25, 0.85),
    "sadness": (-0.70, -0.40),
    "anger": (-0.60, 0.65),
    "disgust": (-0.65, 0.30),
    "fear": (-0.45, 0.80),
    "contempt": (-0.50, 0.10),
}
CIRCUMPLEX = np.array([_POINTS[name] for name in EMOTIONS], dtype=np.float64)  # (8, 2)


def valence_arousal(probs: np.ndarray) -> tuple[float, float]:
    """Probability-weighted mean circumplex point of an (8,) probability vector."""
    weights = np.asarray(probs, dtype=np.float64)
    valence, arousal = weights @ CIRCUMPLEX / weights.sum()
    return float(valence), float(arousal)
