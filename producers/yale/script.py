"""The Yale screening's script (producers/yale/script.json): who sits where and what they show, second by second.

The script names a Yale subject per seat and one image variant per segment, never pixels. Each segment has a kind:
`calibration` (the viewer's own neutral variants at the start), `neutral` (the plain `normal` face between
events), `expression` (happy / sad / surprised: a reaction is expected) or `distractor` (side light or glasses on
a neutral face: no reaction expected). The emotion a segment shows follows from its variant.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from producers.sample_render import segment_index_at

COPIED_SAD_SUBJECT = "subject04"  # its `sad` image is a copy of its `normal` one (Yale Readme)

YALE_SCRIPT_DIR = Path(__file__).resolve().parent
SCRIPT_PATH = YALE_SCRIPT_DIR / "script.json"

EXPRESSION_VARIANTS: dict[str, str] = {"happy": "happiness", "sad": "sadness", "surprised": "surprise"}
NEUTRAL_VARIANTS = ("normal", "noglasses", "glasses", "centerlight", "leftlight", "rightlight")
KINDS = ("calibration", "neutral", "expression", "distractor")


@dataclass(frozen=True)
class YaleSegment:
    variant: str
    seconds: int
    kind: str

    @property
    def emotion(self) -> str:
        """The FER+ class the face shows: the expression's, else neutral."""
        return EXPRESSION_VARIANTS.get(self.variant, "neutral")


@dataclass(frozen=True)
class YaleSeat:
    seat_id: str
    subject: str  # e.g. "subject01"
    segments: tuple[YaleSegment, ...]

    @property
    def duration_s(self) -> int:
        return sum(segment.seconds for segment in self.segments)

    def segment_index_at(self, second: float) -> int:
        return segment_index_at(self.segments, second)

    def segment_start(self, index: int) -> int:
        return sum(segment.seconds for segment in self.segments[:index])


@dataclass(frozen=True)
class YaleCamera:
    camera_id: str
    seats: tuple[YaleSeat, ...]


@dataclass(frozen=True)
class YaleScript:
    screening_id: str
    theater_id: str
    fps: int
    tile: int  # one seat is a tile x tile square
    face_px: int  # side of the feathered face patch
    eye_px: int  # distance between the eyes in the patch
    jitter_px: int  # per-frame shake, +-pixels
    drift_px: float  # slow head drift amplitude, pixels
    drift_period_s: float
    tilt_deg: float  # slow head roll amplitude, degrees
    noise_sigma: float  # sensor noise, gray levels
    seed: int
    cameras: tuple[YaleCamera, ...]

    @property
    def seats(self) -> tuple[YaleSeat, ...]:
        return tuple(seat for camera in self.cameras for seat in camera.seats)

    @property
    def duration_s(self) -> int:
        return self.seats[0].duration_s

    @property
    def frame_count(self) -> int:
        return self.duration_s * self.fps

    def camera(self, camera_id: str) -> YaleCamera:
        for camera in self.cameras:
            if camera.camera_id == camera_id:
                return camera
        raise ValueError(f"no camera {camera_id!r} in the Yale script (cameras: {[c.camera_id for c in self.cameras]})")


def _check_seat(seat: YaleSeat, origin: str) -> None:
    where = f"{origin}: seat {seat.seat_id}"
    for segment in seat.segments:
        if segment.kind not in KINDS:
            raise ValueError(f"{where}: unknown kind {segment.kind!r} (one of {KINDS})")
        if segment.variant not in EXPRESSION_VARIANTS and segment.variant not in NEUTRAL_VARIANTS:
            raise ValueError(f"{where}: unknown variant {segment.variant!r}")
        if (segment.kind == "expression") != (segment.variant in EXPRESSION_VARIANTS):
            raise ValueError(f"{where}: kind {segment.kind!r} does not fit variant {segment.variant!r}")
        if segment.seconds <= 0:
            raise ValueError(f"{where}: segments must last at least 1 s")
    kinds = [segment.kind for segment in seat.segments]
    calibrating = 0
    while calibrating < len(kinds) and kinds[calibrating] == "calibration":
        calibrating += 1
    if calibrating == 0 or "calibration" in kinds[calibrating:]:
        raise ValueError(f"{where}: calibration segments must come first, and only there")
    if seat.subject == COPIED_SAD_SUBJECT and any(s.variant == "sad" for s in seat.segments):
        raise ValueError(f"{where}: {COPIED_SAD_SUBJECT}.sad is a copy of {COPIED_SAD_SUBJECT}.normal (Yale Readme): "
                         "it shows no sadness")


def parse_script(obj: dict, origin: str = "Yale script") -> YaleScript:
    """Validate a decoded script: known kinds and variants, calibration first, every seat equally long."""
    try:
        cameras = tuple(
            YaleCamera(str(camera["camera_id"]), tuple(
                YaleSeat(str(seat["seat_id"]), str(seat["subject"]), tuple(
                    YaleSegment(str(s["variant"]), int(s["seconds"]), str(s["kind"])) for s in seat["segments"]))
                for seat in camera["seats"]))
            for camera in obj["cameras"]
        )
        script = YaleScript(
            str(obj["screening_id"]), str(obj["theater_id"]), int(obj["fps"]), int(obj["tile"]), int(obj["face_px"]),
            int(obj["eye_px"]), int(obj["jitter_px"]), float(obj["drift_px"]), float(obj["drift_period_s"]),
            float(obj["tilt_deg"]), float(obj["noise_sigma"]), int(obj["seed"]), cameras,
        )
    except (TypeError, KeyError, ValueError) as exc:
        raise ValueError(f"{origin}: malformed script: {exc!r}") from None
    if not script.seats:
        raise ValueError(f"{origin}: no seats")
    ids = [seat.seat_id for seat in script.seats]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{origin}: seat ids must be unique across cameras, got {ids}")
    for seat in script.seats:
        _check_seat(seat, origin)
        if seat.duration_s != script.duration_s:
            raise ValueError(f"{origin}: seat {seat.seat_id} is {seat.duration_s}s long, not {script.duration_s}s")
    if script.face_px + 2 * (script.jitter_px + script.drift_px) > script.tile:
        raise ValueError(f"{origin}: face_px plus motion does not fit the tile")
    return script


def load_script(path: Path = SCRIPT_PATH) -> YaleScript:
    """Read and validate a Yale script JSON file."""
    return parse_script(json.loads(Path(path).read_text(encoding="utf-8")), origin=str(path))
