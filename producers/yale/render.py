"""Renders the Yale screening's frames: each seat a Yale face, aligned on its eyes, moving slightly, with sensor noise.

Every image of a subject is aligned by its YuNet eye landmarks (eyes level, `eye_px` apart, at one place in a
`face_px` patch), so a seat's head stays put while its variant changes, as one viewer's would. Per frame the patch
is placed in the seat's tile with a slow drift and roll (phases fixed per seat), a per-frame shake of up to
`jitter_px`, feathered into the sample screening's tile background, and the frame gets gaussian sensor noise.
Pure and deterministic: frame i depends only on the script, the images and i.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from engines.face_detector import FaceDetector
from producers.sample_render import _background, _feather
from producers.yale.script import YaleCamera, YaleScript

YALE_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "yalefaces"
EYE_LINE = 0.35  # the eye line sits this many eye distances above the patch centre


class YaleDataMissing(FileNotFoundError):
    """The Yale faces are not where the generator looks (research-use images, never committed)."""


@dataclass(frozen=True, eq=False)
class AlignedFace:
    """One Yale image (gray, float32) and the 2x3 transform that aligns it into a face patch."""

    image: np.ndarray
    align: np.ndarray


def image_path(yale_dir: Path, subject: str, variant: str) -> Path:
    return Path(yale_dir) / f"{subject}.{variant}.jpeg"


def required_images(script: YaleScript, cameras: tuple[YaleCamera, ...] | None = None) -> list[tuple[str, str]]:
    """(subject, variant) of every image the script shows (on the given cameras), in script order."""
    needed: dict[tuple[str, str], None] = {}
    for camera in cameras or script.cameras:
        for seat in camera.seats:
            for segment in seat.segments:
                needed[(seat.subject, segment.variant)] = None
    return list(needed)


def check_yale_dir(yale_dir: Path, images: list[tuple[str, str]]) -> None:
    """Raise YaleDataMissing naming the folder (and the first missing files) unless every image is there."""
    yale_dir = Path(yale_dir)
    if not yale_dir.is_dir():
        raise YaleDataMissing(f"Yale faces not found: {yale_dir} is not a directory (the images are research-use "
                              "only and never committed; they come with ../shared/data/yalefaces)")
    missing = [image_path(yale_dir, s, v).name for s, v in images if not image_path(yale_dir, s, v).is_file()]
    if missing:
        raise YaleDataMissing(f"{yale_dir} lacks {len(missing)} Yale images the script needs, e.g. {missing[:3]}")


def eye_alignment(landmarks: np.ndarray, face_px: int, eye_px: float) -> np.ndarray:
    """2x3 similarity that puts the two eyes (YuNet landmarks 0 and 1) level, `eye_px` apart, centred
    horizontally in a `face_px` patch with the eye line EYE_LINE * eye_px above the patch centre."""
    right, left = np.asarray(landmarks[0], np.float64), np.asarray(landmarks[1], np.float64)
    dx, dy = left - right
    distance = math.hypot(dx, dy)
    if distance < 1.0:
        raise ValueError("eye landmarks coincide")
    mid = (right + left) / 2
    matrix = cv2.getRotationMatrix2D((float(mid[0]), float(mid[1])), math.degrees(math.atan2(dy, dx)), eye_px / distance)
    matrix[:, 2] += np.array([face_px / 2, face_px / 2 - EYE_LINE * eye_px]) - mid
    return matrix


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The 2x3 affine that applies `inner`, then `outer`."""
    out = np.empty((2, 3), np.float64)
    out[:, :2] = outer[:, :2] @ inner[:, :2]
    out[:, 2] = outer[:, :2] @ inner[:, 2] + outer[:, 2]
    return out


def load_faces(script: YaleScript, yale_dir: Path = YALE_DIR, cameras: tuple[YaleCamera, ...] | None = None,
               detector: FaceDetector | None = None) -> dict[tuple[str, str], AlignedFace]:
    """Read and align every image the script shows; YaleDataMissing without the data, ValueError if YuNet
    finds no face in one."""
    images = required_images(script, cameras)
    check_yale_dir(yale_dir, images)
    detector = detector or FaceDetector()
    faces = {}
    for subject, variant in images:
        path = image_path(yale_dir, subject, variant)
        gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if gray is None:
            raise ValueError(f"cannot read {path}")
        best = detector.detect_best(gray)
        if best is None:
            raise ValueError(f"YuNet finds no face in {path}")
        faces[(subject, variant)] = AlignedFace(gray.astype(np.float32),
                                                eye_alignment(best.landmarks, script.face_px, script.eye_px))
    return faces


@dataclass(frozen=True)
class _Motion:
    """A seat's slow head motion: drift and roll phases (radians)."""

    phase_x: float
    phase_y: float
    phase_roll: float


class YaleCameraRenderer:
    """Renders frame i of one camera's seat row. Has what `producers.sample_screening.write_video` needs of a
    script (frame_size, fps, frame_count) besides `render`."""

    def __init__(self, script: YaleScript, camera_id: str, faces: dict[tuple[str, str], AlignedFace]) -> None:
        self.script = script
        self.camera = script.camera(camera_id)
        self._camera_index = [c.camera_id for c in script.cameras].index(camera_id)
        missing = [key for key in required_images(script, (self.camera,)) if key not in faces]
        if missing:
            raise ValueError(f"no aligned faces for {missing[:3]}")
        self._faces = faces
        self._background = np.concatenate([_background(script, i) for i in range(len(self.camera.seats))], axis=1)
        self._alpha = _feather(script.face_px)[:, :, 0]
        # Only a window around the patch is drawn: the patch plus the most it can move (drift, shake, roll).
        reach = script.drift_px + script.jitter_px + script.face_px * math.sin(math.radians(script.tilt_deg)) + 2
        self._window = int(math.ceil(script.face_px + 2 * reach))
        self._window_at = max(0, (script.tile - self._window) // 2)
        self._window = min(self._window, script.tile - self._window_at)
        self._motion = []
        for seat_index in range(len(self.camera.seats)):
            phases = np.random.default_rng([script.seed, self._camera_index, seat_index]).uniform(0, 2 * math.pi, 3)
            self._motion.append(_Motion(*(float(p) for p in phases)))

    @property
    def fps(self) -> int:
        return self.script.fps

    @property
    def frame_count(self) -> int:
        return self.script.frame_count

    @property
    def frame_size(self) -> tuple[int, int]:
        return self.script.tile * len(self.camera.seats), self.script.tile

    def placement(self, seat_index: int, t: float, shake: tuple[int, int]) -> np.ndarray:
        """2x3 transform from patch to tile at movie time t: slow drift and roll plus the frame's shake."""
        script, motion = self.script, self._motion[seat_index]
        omega = 2 * math.pi / script.drift_period_s
        dx = script.drift_px * math.sin(omega * t + motion.phase_x) + shake[0]
        dy = 0.5 * script.drift_px * math.sin(omega / 1.37 * t + motion.phase_y) + shake[1]
        roll = script.tilt_deg * math.sin(omega / 0.83 * t + motion.phase_roll)
        centre = script.face_px / 2
        matrix = cv2.getRotationMatrix2D((centre, centre), roll, 1.0)
        matrix[:, 2] += (script.tile - script.face_px) / 2 + np.array([dx, dy])
        return matrix

    def render(self, index: int) -> np.ndarray:
        """Frame `index` (BGR uint8)."""
        script, size, at = self.script, self._window, self._window_at
        second = index / script.fps
        rng = np.random.default_rng([script.seed, self._camera_index, index])
        shakes = rng.integers(-script.jitter_px, script.jitter_px + 1, size=(len(self.camera.seats), 2))
        frame = self._background.copy()
        for seat_index, seat in enumerate(self.camera.seats):
            face = self._faces[(seat.subject, seat.segments[seat.segment_index_at(second)].variant)]
            place = self.placement(seat_index, second, (int(shakes[seat_index, 0]), int(shakes[seat_index, 1])))
            place[:, 2] -= at  # into the window's coordinates
            gray = cv2.warpAffine(face.image, compose(place, face.align), (size, size), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE)[:, :, None]
            alpha = cv2.warpAffine(self._alpha, place, (size, size), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)[:, :, None]
            x0 = seat_index * script.tile + at
            window = frame[at : at + size, x0 : x0 + size]
            window += (gray - window) * alpha
        noise = rng.standard_normal(size=frame.shape[:2], dtype=np.float32)
        frame += (script.noise_sigma * noise)[:, :, None]
        frame += 0.5
        return np.clip(frame, 0, 255, out=frame).astype(np.uint8)
