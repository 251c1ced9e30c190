"""Image degradations for the robustness report: pure functions on uint8 gray faces, deterministic from a seed.

Each function takes a uint8 (H, W) gray image and returns a new uint8 image of the same shape; parameters are
in pixels and gray levels of the image it is given (the robustness report gives it the raw 48x48 FER face, the
camera's pixels at face resolution, before the 4x upscale, YuNet and `align_face`). Randomness comes only from
the `numpy.random.Generator` passed in, so a condition applied with one seed is reproducible.

`CONDITIONS` are the report's fixed settings (`Degradation.apply` runs one over a stack of faces, one
generator per face from (seed, face index)):
  dark        low light: x -> 255 * gain * (x/255)^gamma, gain 0.35, gamma 1.5 (a dark theatre, no auto exposure)
  noise       Gaussian sensor noise, sigma 10 gray levels
  blur        Gaussian blur (defocus / motion smear), sigma 1.0 px
  jpeg30      JPEG compression at quality 30 (OpenCV's codec, as a cheap camera or stream encoder)
  roll15      in-plane head roll of +15 or -15 degrees (sign drawn per face) about the image centre;
              applied before detection, so the product's own alignment has to undo it
  sidelight   a linear illumination gradient across the face: gain 1 - 0.6 on one side to 1 + 0.6 on the
              other (left or right drawn per face)
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import cv2
import numpy as np


def _check(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 2 or image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 (H, W) gray image, got {image.dtype} {image.shape}")
    return image


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def dark_gamma(image: np.ndarray, gain: float = 0.35, gamma: float = 1.5) -> np.ndarray:
    """Low light: 255 * gain * (x/255)^gamma. gain < 1 darkens every pixel; gamma > 1 crushes the shadows more
    than the highlights. Order-preserving (a monotonic map of the gray levels)."""
    if not 0 < gain <= 1 or gamma <= 0:
        raise ValueError(f"need 0 < gain <= 1 and gamma > 0, got gain {gain}, gamma {gamma}")
    x = _check(image).astype(np.float64) / 255.0
    return _to_uint8(255.0 * gain * x**gamma)


def sensor_noise(image: np.ndarray, rng: np.random.Generator, sigma: float = 10.0) -> np.ndarray:
    """Additive zero-mean Gaussian noise of `sigma` gray levels per pixel, clipped to [0, 255]."""
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    x = _check(image).astype(np.float64)
    return _to_uint8(x + rng.normal(0.0, sigma, size=x.shape))


def gaussian_blur(image: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """Gaussian blur of `sigma` pixels (kernel side 2*ceil(3*sigma)+1, borders replicated)."""
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    side = 2 * int(np.ceil(3 * sigma)) + 1
    return cv2.GaussianBlur(_check(image), (side, side), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REPLICATE)


def jpeg(image: np.ndarray, quality: int = 30) -> np.ndarray:
    """Encode as JPEG at `quality` (1-100, OpenCV's codec) and decode again."""
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must lie in [1, 100], got {quality}")
    ok, buf = cv2.imencode(".jpg", _check(image), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)


def roll_matrix(shape: tuple[int, int], angle_deg: float) -> np.ndarray:
    """2x3 matrix rotating image coordinates (x right, y down) by `angle_deg` about the image centre;
    positive turns the picture counter-clockwise as displayed (OpenCV's convention)."""
    height, width = shape[:2]
    return cv2.getRotationMatrix2D(((width - 1) / 2.0, (height - 1) / 2.0), float(angle_deg), 1.0)


def roll(image: np.ndarray, angle_deg: float) -> np.ndarray:
    """The image rotated in plane by `angle_deg` about its centre (see `roll_matrix`); bicubic, the corners
    that come from outside the frame replicate its border (as `align_face` fills them)."""
    image = _check(image)
    height, width = image.shape
    return cv2.warpAffine(image, roll_matrix(image.shape, angle_deg), (width, height), flags=cv2.INTER_CUBIC,
                          borderMode=cv2.BORDER_REPLICATE)


def side_light(image: np.ndarray, strength: float = 0.6, direction: int = 1) -> np.ndarray:
    """A linear illumination gradient across the image: each column is multiplied by 1 + strength * u, u going
    from -1 at the left edge to +1 at the right (direction +1: light from the right; -1: from the left)."""
    if not 0 <= strength < 1 or direction not in (-1, 1):
        raise ValueError(f"need 0 <= strength < 1 and direction +-1, got {strength}, {direction}")
    x = _check(image).astype(np.float64)
    u = np.linspace(-1.0, 1.0, x.shape[1]) * direction
    return _to_uint8(x * (1.0 + strength * u)[None, :])


def _random_sign(rng: np.random.Generator) -> int:
    return 1 if rng.random() < 0.5 else -1


@dataclass(frozen=True)
class Degradation:
    """One named condition: `fn(image, rng)` with fixed parameters (`params`, for the report)."""

    name: str
    description: str
    fn: Callable[[np.ndarray, np.random.Generator], np.ndarray] = field(repr=False)
    params: Mapping[str, object] = field(default_factory=dict)

    def apply(self, faces: np.ndarray, seed: int = 0) -> np.ndarray:
        """The condition applied to every face of a uint8 (N, H, W) stack; face i draws from (seed, i)."""
        faces = np.asarray(faces)
        if faces.ndim != 3 or faces.dtype != np.uint8:
            raise ValueError(f"expected uint8 (N, H, W) faces, got {faces.dtype} {faces.shape}")
        out = np.empty_like(faces)
        for i, face in enumerate(faces):
            out[i] = self.fn(face, np.random.default_rng([seed, i]))
        return out


CONDITIONS: tuple[Degradation, ...] = (
    Degradation("dark", "low light: 255*0.35*(x/255)^1.5", lambda f, rng: dark_gamma(f, 0.35, 1.5),
                {"gain": 0.35, "gamma": 1.5}),
    Degradation("noise", "Gaussian sensor noise, sigma 10 gray levels", lambda f, rng: sensor_noise(f, rng, 10.0),
                {"sigma": 10.0}),
    Degradation("blur", "Gaussian blur, sigma 1.0 px", lambda f, rng: gaussian_blur(f, 1.0), {"sigma_px": 1.0}),
    Degradation("jpeg30", "JPEG quality 30", lambda f, rng: jpeg(f, 30), {"quality": 30}),
    Degradation("roll15", "in-plane roll of +-15 degrees (sign per face) before detection and alignment",
                lambda f, rng: roll(f, 15.0 * _random_sign(rng)), {"angle_deg": 15.0}),
    Degradation("sidelight", "linear light gradient across the face, gain 0.4 to 1.6 (side per face)",
                lambda f, rng: side_light(f, 0.6, _random_sign(rng)), {"strength": 0.6}),
)
CONDITION_NAMES = tuple(c.name for c in CONDITIONS)


def condition(name: str) -> Degradation:
    """The report's condition called `name`."""
    for cond in CONDITIONS:
        if cond.name == name:
            return cond
    raise ValueError(f"unknown condition {name!r}; known: {', '.join(CONDITION_NAMES)}")
