"""Attention from head pose: a viewer attends when their face points at the screen.

Per frame: |yaw| <= max_yaw_deg and |pitch| <= max_pitch_deg (unknown pose, NaN, = not attending).
Per second: attending when a strict majority of that second's frames attend.
"""
from __future__ import annotations

import math

from stream_processors.config import StateConfig


def is_attending(yaw_deg: float, pitch_deg: float, config: StateConfig) -> bool:
    """True when the head pose is known and within the configured cone toward the screen."""
    if math.isnan(yaw_deg) or math.isnan(pitch_deg):
        return False
    return abs(yaw_deg) <= config.max_yaw_deg and abs(pitch_deg) <= config.max_pitch_deg


def majority_attending(attending_frames: int, frames: int) -> bool:
    """A second attends when more than half of its frames attend (a tie or no frames = no)."""
    return 2 * attending_frames > frames
