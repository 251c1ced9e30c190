"""Head yaw and pitch (degrees) from YuNet's 5 landmarks, pure numpy.

Approximation: a generic rigid 3-D face (`FACE_MODEL_3D`: the 2-D alignment template of
`engines.preprocessing` with the nose tip set half an inter-ocular distance in front of the
eye/mouth plane) is fitted to the 5 points under weak perspective (orthographic projection
plus uniform scale, which holds when the face is small against its distance to the camera).
The least-squares affine map from model to image is projected onto the nearest scaled rotation;
yaw and pitch are read from its third row, so in-plane roll does not disturb them.

Conventions (image x right, y down): yaw > 0 when the head turns so the nose moves toward the
image's right; pitch > 0 when the head tilts up (nose moves up). A generic face means a few
degrees of bias per person; accuracy falls beyond about +-60 degrees of yaw. Degenerate or
non-finite landmarks give NaN (unknown).
"""
from __future__ import annotations

import math

import numpy as np

from engines.preprocessing import FACE_TEMPLATE

_INTEROCULAR = float(FACE_TEMPLATE[1, 0] - FACE_TEMPLATE[0, 0])
# (x, y, z) with x right, y down, z away from the camera: the nose tip is closer (negative z),
# the mouth corners slightly closer than the eyes.
FACE_MODEL_3D = np.column_stack(
    [
        FACE_TEMPLATE - FACE_TEMPLATE.mean(0),
        np.array([0.0, 0.0, -0.5, -0.05, -0.05]) * _INTEROCULAR,
    ]
)


def head_pose(landmarks: np.ndarray) -> tuple[float, float]:
    """(yaw_deg, pitch_deg) of a face from its (5, 2) landmarks in YuNet order; NaNs when unknown."""
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (5, 2) or not np.isfinite(points).all():
        return math.nan, math.nan
    image = points - points.mean(0)
    model = FACE_MODEL_3D - FACE_MODEL_3D.mean(0)
    # Least-squares affine 2x3 map A with image ~= model @ A.T.
    affine_t, *_ = np.linalg.lstsq(model, image, rcond=None)
    u, s, vt = np.linalg.svd(affine_t.T, full_matrices=False)
    if s[1] <= 1e-9 * max(s[0], 1e-300):
        return math.nan, math.nan
    rows = u @ vt  # nearest 2x3 with orthonormal rows
    third = np.cross(rows[0], rows[1])
    # With R = Rz(roll) Rx(pitch) Ry(yaw), R's third row is (-cos p sin y, sin p, cos p cos y).
    yaw = math.degrees(math.atan2(-third[0], third[2]))
    pitch = math.degrees(math.asin(float(np.clip(third[1], -1.0, 1.0))))
    # Model z points away from the camera: a positive Ry angle moves the nose left, a positive Rx
    # angle moves it down; flip both to the documented conventions.
    return -yaw, -pitch
