"""A synthetic film clip with known structure, to test and benchmark the film index (`film generate-clip`).

Each shot is a coloured set (gradient and soft shapes, its own hue) with 0-3 people: a sample FER+ face
(producers/sample/faces.npz) upscaled and feathered onto a head and shoulders, sized for the planned shot
scale. Hard cuts separate shots. Some shots dissolve into a second set-up of the same scale (not a cut),
some have the lights dimming (a step or a ramp, not a cut); the camera sways a little and there is grain.
`ClipTruth` records the hard cuts and each true shot's scale; `score_index` compares an index with it.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from producers.sample_sprite import SPRITE_PATH
from producers.shot_scale import SHOT_SCALES

# YuNet face-box height / frame height per planned scale: mid-band (producers/shot_scale.py).
FACE_SIZE = {"close_up": 0.45, "medium_close_up": 0.24, "medium": 0.145, "wide": 0.085}
_CALIBRATION_PX = 160
GRAIN_SIGMA = 3.0  # film grain, grey levels (a 1080p clip then runs at ~6 Mbit/s in MPEG-4, like a streamed film)
DISSOLVE_S = 1.5
_NOISE_FIELDS = 8


@dataclass(frozen=True)
class ClipShot:
    """One planned shot. `dissolve_into`: the shot's last DISSOLVE_S seconds blend into the next set-up
    (same scale and people), so the two are one shot. `lights`: 'steady', 'step' (to 60% mid-shot) or 'ramp'."""

    seconds: float
    scale: str
    people: int
    dissolve_into: bool = False
    lights: str = "steady"

    def __post_init__(self) -> None:
        if self.scale not in SHOT_SCALES:
            raise ValueError(f"unknown shot scale {self.scale!r} (known: {', '.join(SHOT_SCALES)})")
        if (self.scale == "no_face") != (self.people == 0):
            raise ValueError("a no_face shot has 0 people, every other shot at least 1")
        if self.lights not in ("steady", "step", "ramp"):
            raise ValueError(f"lights must be steady, step or ramp, got {self.lights!r}")
        if self.seconds < 2 * DISSOLVE_S:
            raise ValueError(f"a shot lasts at least {2 * DISSOLVE_S}s, got {self.seconds}")


@dataclass(frozen=True)
class TruthShot:
    start_s: float
    end_s: float
    scale: str
    people: int


@dataclass(frozen=True)
class ClipTruth:
    """What the clip contains: the hard cut times (s), the true shots (dissolves joined), and the times of the
    changes that are not cuts (middle of a dissolve, lights stepping down or starting to dim)."""

    duration_s: float
    cuts: tuple[float, ...]
    shots: tuple[TruthShot, ...]
    soft_changes: tuple[float, ...]


@dataclass(frozen=True)
class ClipScore:
    cut_recall: float
    cut_precision: float
    scale_accuracy: float


def default_script(minutes: float = 1.0, seed: int = 7) -> list[ClipShot]:
    """About `minutes` of shots of 3-4 s cycling through every scale, with dissolves and light changes."""
    rng = np.random.default_rng(seed)
    people_max = {"close_up": 1, "medium_close_up": 2, "medium": 3, "wide": 3, "no_face": 0}
    shots: list[ClipShot] = []
    total = 0.0
    while total < minutes * 60:
        n = len(shots)
        scale = SHOT_SCALES[(n * 3) % len(SHOT_SCALES)] if n % 7 else SHOT_SCALES[rng.integers(len(SHOT_SCALES))]
        if shots and shots[-1].dissolve_into:
            scale, people = shots[-1].scale, shots[-1].people
        else:
            people = int(rng.integers(1, people_max[scale] + 1)) if people_max[scale] else 0
        seconds = float(np.round(rng.uniform(3.0, 4.0), 2))
        dissolve = n % 6 == 2 and not (shots and shots[-1].dissolve_into)
        lights = ("steady", "step", "steady", "ramp")[n % 4] if n % 3 == 1 else "steady"
        shots.append(ClipShot(seconds, scale, people, dissolve, lights))
        total += seconds
    if shots[-1].dissolve_into:
        shots[-1] = ClipShot(shots[-1].seconds, shots[-1].scale, shots[-1].people, False, shots[-1].lights)
    return shots


def clip_truth(shots: Sequence[ClipShot], fps: float) -> ClipTruth:
    """Cut times, true shots and soft changes of a script rendered at `fps` (a dissolve joins a shot with the next)."""
    cuts, truth, soft, start, frames = [], [], [], 0.0, 0
    for i, shot in enumerate(shots):
        began = frames / fps
        frames += shot_frames(shot, fps)
        t = frames / fps
        if shot.lights != "steady":
            soft.append(began + _light_change_s(shot))
        if shot.dissolve_into and i < len(shots) - 1:
            soft.append(t - DISSOLVE_S / 2)
            continue
        truth.append(TruthShot(start, t, shot.scale, shot.people))
        if i < len(shots) - 1:
            cuts.append(t)
        start = t
    return ClipTruth(frames / fps, tuple(cuts), tuple(truth), tuple(soft))


def _feather(size: int, edge_px: float) -> np.ndarray:
    ramp = np.minimum(np.arange(size), np.arange(size)[::-1]).astype(np.float32)
    alpha = np.clip(ramp / max(edge_px, 1.0), 0.0, 1.0)
    return np.minimum(alpha[:, None], alpha[None, :])[:, :, None]


def _paste(canvas: np.ndarray, patch: np.ndarray, alpha: np.ndarray, cx: int, cy: int) -> None:
    """Alpha-blend a square patch centred at (cx, cy), clipped to the canvas."""
    h, w = canvas.shape[:2]
    s = patch.shape[0]
    y, x = cy - s // 2, cx - s // 2
    y0, y1, x0, x1 = max(y, 0), min(y + s, h), max(x, 0), min(x + s, w)
    if y0 >= y1 or x0 >= x1:
        return
    a = alpha[y0 - y : y1 - y, x0 - x : x1 - x]
    canvas[y0:y1, x0:x1] = canvas[y0:y1, x0:x1] * (1 - a) + patch[y0 - y : y1 - y, x0 - x : x1 - x] * a


def draw_person(canvas: np.ndarray, face: np.ndarray, cx: int, cy: int, s: int, hair: list[float], shirt: list[float]) -> None:
    """A 48x48 gray face upscaled to s x s and feathered onto a head (hair) and shoulders centred at (cx, cy)."""
    cv2.ellipse(canvas, (cx, cy + int(1.35 * s)), (int(1.2 * s), int(0.75 * s)), 0, 180, 360, shirt, -1, cv2.LINE_AA)
    cv2.ellipse(canvas, (cx, cy - int(0.08 * s)), (int(0.62 * s), int(0.72 * s)), 0, 0, 360, hair, -1, cv2.LINE_AA)
    patch = cv2.cvtColor(cv2.resize(face, (s, s), interpolation=cv2.INTER_CUBIC), cv2.COLOR_GRAY2BGR).astype(np.float32)
    _paste(canvas, patch, _feather(s, 0.12 * s), cx, cy)


def calibrate_faces(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sprite faces YuNet finds when drawn as a person, with each one's face-box height / patch size
    (0.8-1.4 depending on the crop), so a face can be drawn at a known detector box height."""
    from engines.face_detector import FaceDetector

    detector, size = FaceDetector(), _CALIBRATION_PX
    kept, ratios = [], []
    for face in faces:
        canvas = np.full((3 * size, 3 * size, 3), 110.0, dtype=np.float32)
        draw_person(canvas, face, int(1.5 * size), int(1.2 * size), size, [40.0, 40.0, 50.0], [90.0, 80.0, 140.0])
        found = detector.detect(np.clip(canvas, 0, 255).astype(np.uint8))
        if found:
            kept.append(face)
            ratios.append(max(d.bbox[3] for d in found) / size)
    if not kept:
        raise RuntimeError("YuNet finds none of the sprite faces")
    return np.stack(kept), np.array(ratios)


class ClipRenderer:
    """Renders set-ups (a set with its people) at a frame size, deterministically from (seed, set-up number)."""

    def __init__(self, size: tuple[int, int], seed: int = 7, sprite_path: Path = SPRITE_PATH) -> None:
        self.width, self.height = size
        if self.width < 64 or self.height < 64:
            raise ValueError(f"frame size {size} too small (at least 64x64)")
        self.seed = seed
        self._faces, self._box_ratio = calibrate_faces(np.load(sprite_path)["faces"])

    def _set(self, rng: np.random.Generator, setup: int) -> np.ndarray:
        hue = (setup * 47) % 180  # OpenCV hue, golden-angle-ish steps: neighbours differ in colour
        top = cv2.cvtColor(np.uint8([[[hue, 150, 200]]]), cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)
        bottom = cv2.cvtColor(np.uint8([[[(hue + 30) % 180, 200, 70]]]), cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)
        ramp = np.linspace(0.0, 1.0, self.height, dtype=np.float32)[:, None, None]
        canvas = np.broadcast_to(top * (1 - ramp) + bottom * ramp, (self.height, self.width, 3)).copy()
        for _ in range(3):
            colour = cv2.cvtColor(np.uint8([[[int(rng.integers(180)), 120, int(rng.integers(60, 230))]]]), cv2.COLOR_HSV2BGR)[0, 0]
            centre = (int(rng.integers(self.width)), int(rng.integers(self.height)))
            axes = (int(rng.integers(self.width // 10, self.width // 4)), int(rng.integers(self.height // 10, self.height // 4)))
            cv2.ellipse(canvas, centre, axes, 0, 0, 360, colour.astype(float).tolist(), -1, cv2.LINE_AA)
        return cv2.GaussianBlur(canvas, (0, 0), self.height / 60)

    def setup(self, number: int, scale: str, people: int) -> np.ndarray:
        """Set-up `number` (float32 BGR): its set and `people` faces sized for `scale`, spread across the frame."""
        rng = np.random.default_rng([self.seed, number])
        canvas = self._set(rng, number)
        for k in range(people):
            pick = int(rng.integers(len(self._faces)))
            s = max(8, round(FACE_SIZE[scale] * self.height / self._box_ratio[pick]))
            cx = round(self.width * (k + 1) / (people + 1) + rng.uniform(-0.05, 0.05) * self.width / people)
            cy = round(self.height * (0.5 if scale == "close_up" else rng.uniform(0.35, 0.5)))
            hair, shirt = rng.uniform(15, 60, size=3).tolist(), rng.uniform(40, 200, size=3).tolist()
            draw_person(canvas, self._faces[pick], cx, cy, s, hair, shirt)
        return canvas

    def frames(self, shots: Sequence[ClipShot], fps: float) -> Iterator[np.ndarray]:
        """Every frame of the script at `fps` (BGR uint8)."""
        noise_rng = np.random.default_rng([self.seed, 1 << 20])
        grain = [noise_rng.normal(0, GRAIN_SIGMA, size=(self.height, self.width)) for _ in range(_NOISE_FIELDS)]
        # signed grain as two saturating uint8 steps (add the positive part, subtract the negative one)
        grain = [tuple(cv2.merge([np.clip(part, 0, 255).astype(np.uint8)] * 3) for part in (g, -g)) for g in grain]
        index = 0
        for number, shot in enumerate(shots):
            # after a dissolve, set-up `number` is the one dissolved into (same scale and people)
            base = np.clip(self.setup(number, shot.scale, shot.people), 0, 255).astype(np.uint8)
            after = np.clip(self.setup(number + 1, shot.scale, shot.people), 0, 255).astype(np.uint8) if shot.dissolve_into else None
            for k in range(shot_frames(shot, fps)):
                t = k / fps
                frame = base
                if after is not None and t > shot.seconds - DISSOLVE_S:
                    mix = (t - (shot.seconds - DISSOLVE_S)) / DISSOLVE_S
                    frame = cv2.addWeighted(base, 1 - mix, after, mix, 0)
                sway = round(2 * np.sin(2 * np.pi * index / fps / 3.0) * self.height / 540)
                frame = cv2.convertScaleAbs(np.roll(frame, sway, axis=1), alpha=_light(shot, t))
                plus, minus = grain[index % _NOISE_FIELDS]
                yield cv2.subtract(cv2.add(frame, plus), minus)
                index += 1


def shot_frames(shot: ClipShot, fps: float) -> int:
    """Frames the shot lasts at `fps` (its seconds, rounded to whole frames)."""
    return round(shot.seconds * fps)


def _light(shot: ClipShot, t: float) -> float:
    """Light level at `t` seconds into the shot: 'step' drops to 60% halfway, 'ramp' dims to 50% over 1.5 s from 40%."""
    if shot.lights == "step":
        return 0.6 if t >= shot.seconds / 2 else 1.0
    if shot.lights == "ramp":
        return 1.0 - 0.5 * min(1.0, max(0.0, (t - _light_change_s(shot)) / 1.5))
    return 1.0


def _light_change_s(shot: ClipShot) -> float:
    """When the lights of a step or ramp shot start to change, in seconds into the shot."""
    return shot.seconds / 2 if shot.lights == "step" else 0.4 * shot.seconds


def write_clip(path: Path, shots: Sequence[ClipShot], size: tuple[int, int] = (1920, 1080), fps: float = 25.0,
               seed: int = 7, progress: bool = False) -> ClipTruth:
    """Render the script to an MPEG-4 file at `path`; return its truth."""
    from tqdm import tqdm

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    if not writer.isOpened():
        raise OSError(f"cannot write video {path} (OpenCV has no mp4v encoder for it?)")
    total = sum(shot_frames(shot, fps) for shot in shots)
    try:
        for frame in tqdm(ClipRenderer(size, seed).frames(shots, fps), total=total, desc="render clip", unit="frame", disable=not progress):
            writer.write(frame)
    finally:
        writer.release()
    return clip_truth(shots, fps)


def score_index(truth: ClipTruth, shots: Sequence, tolerance_s: float = 0.5) -> ClipScore:
    """Cut recall and precision (a detected boundary matches an unmatched true cut within `tolerance_s`) and
    shot-scale accuracy (each true shot against the detected shot that overlaps it most). `shots`: objects
    with start_s, end_s and scale, in time order."""
    detected = [shot.start_s for shot in shots[1:]]
    unmatched = list(truth.cuts)
    hits = 0
    for t in detected:
        near = [c for c in unmatched if abs(c - t) <= tolerance_s]
        if near:
            unmatched.remove(min(near, key=lambda c: abs(c - t)))
            hits += 1
    correct = 0
    for true_shot in truth.shots:
        overlap = [max(0.0, min(s.end_s, true_shot.end_s) - max(s.start_s, true_shot.start_s)) for s in shots]
        correct += shots[int(np.argmax(overlap))].scale == true_shot.scale
    return ClipScore(
        cut_recall=hits / len(truth.cuts) if truth.cuts else 1.0,
        cut_precision=hits / len(detected) if detected else 1.0,
        scale_accuracy=correct / len(truth.shots),
    )
