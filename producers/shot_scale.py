"""Shot scale from faces: how close the camera is, judged by the largest face's height relative to the frame.

Pure functions. A face's height is YuNet's box height (brow to chin, about 0.7 of a head; a body is ~7.5 heads) over the
frame height: close-up >= 0.30 (the head fills most of the frame), medium close-up >= 0.19 (chest up, face
~0.23), medium >= 0.11 (waist up, face ~0.15), wide below that (a full figure's face is ~0.085, smaller in a
long shot); a shot whose typical sampled frame shows no face is `no_face`.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# Closest first; this order is also the order analysts read them in.
SHOT_SCALES: tuple[str, ...] = ("close_up", "medium_close_up", "medium", "wide", "no_face")
# (scale, smallest face height / frame height), closest first; below the last: wide.
SCALE_THRESHOLDS: tuple[tuple[str, float], ...] = (("close_up", 0.30), ("medium_close_up", 0.19), ("medium", 0.11))


@dataclass(frozen=True)
class FrameFaces:
    """Faces found in one sampled frame: how many, and the largest one's height / frame height (0 if none)."""

    count: int
    largest_height: float


@dataclass(frozen=True)
class ShotFaces:
    """A shot's faces: its scale, typical face count and typical largest-face height ratio."""

    scale: str
    face_count: int
    face_height: float


def scale_of(face_height: float) -> str:
    """Shot scale of a frame whose largest face is `face_height` of the frame height (0: no face)."""
    if not math.isfinite(face_height) or face_height < 0:
        raise ValueError(f"face height ratio must be a finite number >= 0, got {face_height}")
    if face_height == 0:
        return "no_face"
    return next((scale for scale, smallest in SCALE_THRESHOLDS if face_height >= smallest), "wide")


def lower_median(values: Sequence[float]) -> float:
    """The lower median (an element of `values`, so counts stay whole)."""
    if not values:
        raise ValueError("median of no values")
    return sorted(values)[(len(values) - 1) // 2]


def shot_faces(frames: Sequence[FrameFaces]) -> ShotFaces:
    """A shot's faces from its sampled frames: the lower-median face count; with faces, the scale of the
    median largest-face height over the frames that show one (robust to a missed or a spurious detection)."""
    count = int(lower_median([f.count for f in frames]))
    if count == 0:
        return ShotFaces("no_face", 0, 0.0)
    height = lower_median([f.largest_height for f in frames if f.count > 0])
    return ShotFaces(scale_of(height), count, height)
