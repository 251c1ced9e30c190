"""The sample screening's script (producers/sample/script.json) and its frame renderer.

Pure and deterministic: the frame at index i depends only on the script, the sprite faces and i
(jitter and noise come from a generator seeded with (seed, i)). One seat is one square tile; a
visible viewer is a sprite face upscaled to `face_px`, feathered into the tile's gradient.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from schemas.emotions import EMOTION_INDEX

SAMPLE_DIR = Path(__file__).resolve().parent / "sample"
SCRIPT_PATH = SAMPLE_DIR / "script.json"
_FEATHER_PX = 10


def segment_index_at(segments: Sequence, second: float) -> int:
    """Index of the segment (anything with `.seconds`) playing at `second` of back-to-back `segments`; the last one
    past the end."""
    end = 0
    for index, segment in enumerate(segments):
        end += segment.seconds
        if second < end:
            return index
    return len(segments) - 1


@dataclass(frozen=True)
class Segment:
    emotion: str | None  # None: the viewer is out of view
    seconds: int


@dataclass(frozen=True)
class SeatScript:
    seat_id: str
    segments: tuple[Segment, ...]
    resting: str = "neutral"  # the viewer's resting face: showing it is no reaction

    def reaction_at(self, second: float) -> str | None:
        """The reaction the script expects: the emotion shown, `neutral` where it is the resting face."""
        emotion = self.emotion_at(second)
        return None if emotion is None else ("neutral" if emotion == self.resting else emotion)

    def emotion_at(self, second: float) -> str | None:
        return self.segments[self.segment_index_at(second)].emotion

    def segment_index_at(self, second: float) -> int:
        return segment_index_at(self.segments, second)


@dataclass(frozen=True)
class Script:
    screening_id: str
    theater_id: str
    camera_id: str
    fps: int
    tile: int
    face_px: int
    jitter_px: int
    noise_sigma: float
    seed: int
    seats: tuple[SeatScript, ...]

    @property
    def duration_s(self) -> int:
        return sum(segment.seconds for segment in self.seats[0].segments)

    @property
    def frame_count(self) -> int:
        return self.duration_s * self.fps

    @property
    def frame_size(self) -> tuple[int, int]:
        return self.tile * len(self.seats), self.tile


def load_script(path: Path = SCRIPT_PATH) -> Script:
    """Read and check the script: known emotions, every seat as long as the first."""
    obj = json.loads(Path(path).read_text(encoding="utf-8"))
    seats = tuple(
        SeatScript(seat["seat_id"], tuple(Segment(s["emotion"], int(s["seconds"])) for s in seat["segments"]),
                   seat.get("resting", "neutral"))
        for seat in obj["seats"]
    )
    script = Script(
        obj["screening_id"], obj["theater_id"], obj["camera_id"], int(obj["fps"]), int(obj["tile"]),
        int(obj["face_px"]), int(obj["jitter_px"]), float(obj["noise_sigma"]), int(obj["seed"]), seats,
    )
    for seat in seats:
        unknown = {s.emotion for s in seat.segments if s.emotion is not None} - EMOTION_INDEX.keys()
        unknown |= {seat.resting} - EMOTION_INDEX.keys()
        if unknown:
            raise ValueError(f"{path}: seat {seat.seat_id} has unknown emotions {sorted(unknown)}")
        if sum(s.seconds for s in seat.segments) != script.duration_s:
            raise ValueError(f"{path}: seat {seat.seat_id} is not {script.duration_s}s long")
    if script.face_px + 2 * script.jitter_px > script.tile:
        raise ValueError(f"{path}: face_px + jitter does not fit the tile")
    return script


def _background(script: Script, seat_index: int) -> np.ndarray:
    """A vertical gradient with a per-seat tint (BGR float32)."""
    ramp = np.linspace(25.0, 95.0, script.tile, dtype=np.float32)[:, None, None]
    tint = np.array([1.0 + 0.08 * (seat_index % 3), 1.0, 1.0 + 0.06 * (seat_index % 2)], dtype=np.float32)
    return np.broadcast_to(ramp * tint, (script.tile, script.tile, 3)).copy()


def _feather(size: int) -> np.ndarray:
    """A (size, size, 1) alpha mask: 1 inside, ramping to 0 over the last _FEATHER_PX at each edge."""
    edge = np.minimum(np.arange(size), np.arange(size)[::-1]).astype(np.float32)
    ramp = np.clip(edge / _FEATHER_PX, 0.0, 1.0)
    return np.minimum(ramp[:, None], ramp[None, :])[:, :, None]


def upscale_face(script: Script, face: np.ndarray) -> np.ndarray:
    """A 48x48 gray sprite face as a (face_px, face_px, 3) float32 BGR patch."""
    big = cv2.resize(face, (script.face_px, script.face_px), interpolation=cv2.INTER_CUBIC)
    return cv2.cvtColor(big, cv2.COLOR_GRAY2BGR).astype(np.float32)


class FrameRenderer:
    """Renders frame i of the script with the given sprite faces (emotion -> list of 48x48 faces)."""

    def __init__(self, script: Script, faces_by_emotion: dict[str, list[np.ndarray]]) -> None:
        self.script = script
        self._faces = {
            emotion: [upscale_face(script, face) for face in faces] for emotion, faces in faces_by_emotion.items()
        }
        self._backgrounds = [_background(script, i) for i in range(len(script.seats))]
        self._alpha = _feather(script.face_px)

    def check_covers_script(self) -> None:
        """Raise ValueError unless every scripted emotion has at least one face."""
        needed = {s.emotion for seat in self.script.seats for s in seat.segments if s.emotion}
        missing = needed - {e for e, faces in self._faces.items() if faces}
        if missing:
            raise ValueError(f"sprite has no faces for {sorted(missing)}")

    def compose(self, faces: list[np.ndarray | None], rng: np.random.Generator) -> np.ndarray:
        """One frame from one upscaled face (or None: empty seat) per seat, with jitter and noise."""
        script, tiles = self.script, []
        for seat_index, face in enumerate(faces):
            tile = self._backgrounds[seat_index].copy()
            if face is not None:
                dx, dy = rng.integers(-script.jitter_px, script.jitter_px + 1, size=2)
                x0 = (script.tile - script.face_px) // 2 + int(dx)
                y0 = (script.tile - script.face_px) // 2 + int(dy)
                window = tile[y0 : y0 + script.face_px, x0 : x0 + script.face_px]
                window[:] = window * (1.0 - self._alpha) + face * self._alpha
            tiles.append(tile)
        frame = np.concatenate(tiles, axis=1)
        frame += rng.normal(0.0, script.noise_sigma, size=frame.shape[:2])[:, :, None].astype(np.float32)
        return np.clip(frame + 0.5, 0, 255).astype(np.uint8)

    def render(self, index: int) -> np.ndarray:
        """Frame `index` of the script (BGR uint8)."""
        second = index / self.script.fps
        faces = []
        for seat_index, seat in enumerate(self.script.seats):
            emotion = seat.emotion_at(second)
            if emotion is None:
                faces.append(None)
                continue
            choices = self._faces[emotion]
            faces.append(choices[(seat_index + seat.segment_index_at(second)) % len(choices)])
        return self.compose(faces, np.random.default_rng([self.script.seed, index]))
