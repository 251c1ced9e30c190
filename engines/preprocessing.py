"""The one face preprocessing path: 5-landmark similarity alignment, crop, resize, grayscale.

Producers (live faces found by YuNet), training and evaluation (FER2013 faces) all call
`align_face`, so the model always sees faces framed the same way.

The template is where YuNet puts the five landmarks, on average, inside a FER2013 48x48 face
(measured by running YuNet on upscaled FER2013 training faces); aligning a live face onto it
reproduces the framing the model was trained on. Order of points is YuNet's: right eye, left
eye, nose tip, right mouth corner, left mouth corner (right/left of the person).
"""
from __future__ import annotations

import cv2
import numpy as np

# Landmarks in a unit square (x, y), derived from FER2013 faces (see module docstring).
# Eyes are put on one level (mean of the two measured heights): the aligned eye line is horizontal.
FACE_TEMPLATE = np.array(
    [
        [15.24 / 48, 18.0 / 48],
        [32.51 / 48, 18.0 / 48],
        [23.17 / 48, 28.19 / 48],
        [16.76 / 48, 36.34 / 48],
        [30.77 / 48, 36.34 / 48],
    ],
    dtype=np.float64,
)


def to_gray(image: np.ndarray) -> np.ndarray:
    """Return a uint8 single-channel view of a BGR, BGRA or gray image."""
    if image.ndim == 2:
        gray = image
    elif image.ndim == 3 and image.shape[2] == 3:
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    elif image.ndim == 3 and image.shape[2] == 4:
        gray = cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    elif image.ndim == 3 and image.shape[2] == 1:
        gray = image[:, :, 0]
    else:
        raise ValueError(f"expected a gray, BGR or BGRA image, got shape {image.shape}")
    if gray.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {gray.dtype}")
    return gray


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping src -> dst, as 2x3."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"need matching (N>=2, 2) point sets, got {src.shape} and {dst.shape}")
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    s, d = src - src_mean, dst - dst_mean
    var = (s**2).sum()
    if var <= 1e-12:
        raise ValueError("landmarks are degenerate (all at one point)")
    # Closed form (Umeyama) for 2-D similarity: a = scale*cos, b = scale*sin.
    a = (s[:, 0] * d[:, 0] + s[:, 1] * d[:, 1]).sum() / var
    b = (s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum() / var
    rot = np.array([[a, -b], [b, a]])
    t = dst_mean - rot @ src_mean
    return np.hstack([rot, t[:, None]])


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int) -> np.ndarray:
    """Align one face onto the template and return a (size, size) uint8 gray crop.

    `landmarks` is (5, 2) in image pixels, in YuNet's order. Pixels outside the image are
    filled by replicating the border, so a face at the frame edge still yields a full crop.
    """
    if size < 8:
        raise ValueError(f"crop size must be >= 8, got {size}")
    landmarks = np.asarray(landmarks, dtype=np.float64).reshape(-1, 2)
    if landmarks.shape != (5, 2):
        raise ValueError(f"expected 5 landmarks, got {landmarks.shape[0]}")
    if not np.all(np.isfinite(landmarks)):
        raise ValueError("landmarks contain NaN or inf")
    gray = to_gray(image)
    matrix = similarity_transform(landmarks, FACE_TEMPLATE * size)
    return cv2.warpAffine(
        gray, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def resize_crop(image: np.ndarray, size: int) -> np.ndarray:
    """Gray + resize for a crop that is already a face (no landmarks found): the fallback path."""
    gray = to_gray(image)
    if gray.shape == (size, size):
        return gray
    return cv2.resize(gray, (size, size), interpolation=cv2.INTER_AREA)
