"""Time-aware exponential smoothing of one viewer's emotion probabilities: `ema_alpha` is the pure math,
`EmaSmoother` the state. The blend weight depends on the elapsed time, not the frame count (irregular frame spacing),
and a gap restarts it from the new frame, so stale state is never blended into a returning face.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from stream_processors.config import StateConfig


def ema_alpha(dt_s: float, tau_s: float) -> float:
    """Weight of a new sample arriving `dt_s` after the last one: 1 - exp(-dt/tau)."""
    return 1.0 - math.exp(-dt_s / tau_s)


def blend(state: np.ndarray, sample: np.ndarray, alpha: float) -> np.ndarray:
    """Convex blend of two probability vectors, renormalised so rounding never drifts the sum."""
    mixed = state + alpha * (sample - state)
    return mixed / mixed.sum()


class EmaSmoother:
    """EMA with time constant `config.smoothing_tau_s`; `update(t, probs)` returns the smoothed probs."""

    def __init__(self, config: StateConfig) -> None:
        self._tau_s = config.smoothing_tau_s
        self._reset_gap_s = config.smoothing_reset_gap_s
        self._t: float | None = None
        self._value: np.ndarray | None = None

    def update(self, t: float, probs: np.ndarray) -> np.ndarray:
        """Feed the frame at movie time `t`; times must strictly increase."""
        probs = np.asarray(probs, dtype=np.float64)
        if self._t is not None and t <= self._t:
            raise ValueError(f"smoother times must increase: got t={t} after t={self._t}")
        if self._value is None or t - self._t > self._reset_gap_s:
            self._value = probs / probs.sum()
        else:
            self._value = blend(self._value, probs, ema_alpha(t - self._t, self._tau_s))
        self._t = t
        return self._value.copy()

    def to_dict(self) -> dict[str, Any]:
        return {"t": self._t, "value": None if self._value is None else self._value.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any], config: StateConfig) -> "EmaSmoother":
        smoother = cls(config)
        smoother._t, value = data["t"], data["value"]
        smoother._value = None if value is None else np.asarray(value, dtype=np.float64)
        return smoother
