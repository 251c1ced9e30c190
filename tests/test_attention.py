"""Attention: head-pose cone per frame, strict majority per second."""
from __future__ import annotations

import math

import pytest

from stream_processors.attention import is_attending, majority_attending
from stream_processors.config import StateConfig

DEFAULT = StateConfig()


@pytest.mark.parametrize("yaw, pitch, attending", [
    (0.0, 0.0, True),
    (30.0, 25.0, True),  # the limits are inclusive
    (-30.0, -25.0, True),
    (30.5, 0.0, False),
    (-31.0, 0.0, False),
    (0.0, 25.1, False),
    (0.0, -40.0, False),
    (math.nan, 0.0, False),  # unknown pose
    (0.0, math.nan, False),
])
def test_default_cone(yaw, pitch, attending):
    assert is_attending(yaw, pitch, DEFAULT) is attending


def test_cone_follows_config():
    narrow = StateConfig(max_yaw_deg=10.0, max_pitch_deg=5.0)
    assert is_attending(9.0, 4.0, narrow)
    assert not is_attending(20.0, 0.0, narrow)
    assert not is_attending(0.0, 6.0, narrow)


@pytest.mark.parametrize("attending_frames, frames, expected", [
    (3, 5, True), (2, 5, False), (2, 4, False), (3, 4, True), (1, 1, True), (0, 0, False),
])
def test_second_attends_on_strict_majority(attending_frames, frames, expected):
    assert majority_attending(attending_frames, frames) is expected
