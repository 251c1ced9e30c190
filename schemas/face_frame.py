"""`FaceFrame` (topic `faces`): one aligned face crop from a seat-back camera, binary wire format v1.

Layout (little-endian): a fixed struct header (magic b"MVFF", version, numbers, crop shape,
the byte lengths of the four ids), then the four UTF-8 ids, then the raw crop pixels (H*W
uint8, row-major). No base64, no JSON: one `struct.unpack` and one `np.frombuffer` per decode.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from schemas.errors import SchemaError, check_captured_us, check_float, check_id, check_int

SCHEMA_VERSION = 1
MAGIC = b"MVFF"
MAX_CROP_SIDE = 512
# magic, version, track_id, frame_id, captured_us, movie_ts, height, width, bbox x4,
# landmarks x10 (float32), detection_score, yaw_deg, pitch_deg, byte lengths of the 4 ids.
HEADER = struct.Struct("<4sBqqqdHH4d10fddd4H")
_PREFIX = len(MAGIC) + 1
MAX_TRACK_ID = 2**32 - 1  # frame_scores.track_id is UInt32
# The longest movie time a frame may claim: 6 hours, past any film plus its pre-show. A frame claiming more (a
# corrupt or hostile clock) is dead-lettered rather than opening a viewer-second years into the screening.
MAX_MOVIE_S = 6 * 3600.0


def person_key_of(screening_id: str, theater_id: str, seat_id: str) -> str:
    """The pseudonymous, seat-based person key used as the Kafka key and state key."""
    return f"{screening_id}|{theater_id}|{seat_id}"


@dataclass(frozen=True, eq=False)
class FaceFrame:
    """One face crop. Construction validates every field (SchemaError); `crop` is (H, W) uint8."""

    screening_id: str
    theater_id: str
    camera_id: str
    seat_id: str
    track_id: int
    frame_id: int
    captured_us: int
    movie_ts: float
    crop: np.ndarray
    bbox: tuple[float, float, float, float]
    landmarks: np.ndarray
    detection_score: float
    yaw_deg: float
    pitch_deg: float
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.schema_version != SCHEMA_VERSION:
            raise SchemaError("unknown_version", f"FaceFrame schema_version {self.schema_version!r} is not {SCHEMA_VERSION}")
        for name in ("screening_id", "theater_id", "camera_id", "seat_id"):
            check_id(name, getattr(self, name))
        set_ = object.__setattr__
        set_(self, "track_id", check_int("track_id", self.track_id))
        if self.track_id > MAX_TRACK_ID:
            raise SchemaError("bad_value", f"track_id must be <= {MAX_TRACK_ID}, got {self.track_id}")
        set_(self, "frame_id", check_int("frame_id", self.frame_id))
        set_(self, "captured_us", check_captured_us(self.captured_us))
        set_(self, "movie_ts", check_float("movie_ts", self.movie_ts, low=0.0, high=MAX_MOVIE_S))
        set_(self, "crop", _checked_crop(self.crop))
        set_(self, "bbox", _checked_bbox(self.bbox))
        set_(self, "landmarks", _checked_landmarks(self.landmarks))
        set_(self, "detection_score", check_float("detection_score", self.detection_score, 0.0, 1.0))
        set_(self, "yaw_deg", check_float("yaw_deg", self.yaw_deg, -180.0, 180.0, allow_nan=True))
        set_(self, "pitch_deg", check_float("pitch_deg", self.pitch_deg, -180.0, 180.0, allow_nan=True))

    @property
    def person_key(self) -> str:
        return person_key_of(self.screening_id, self.theater_id, self.seat_id)


def _checked_crop(crop: object) -> np.ndarray:
    if not isinstance(crop, np.ndarray) or crop.dtype != np.uint8 or crop.ndim != 2:
        raise SchemaError("bad_shape", f"crop must be a 2-D uint8 array, got {getattr(crop, 'dtype', type(crop))} {getattr(crop, 'shape', '')}")
    height, width = crop.shape
    if not (1 <= height <= MAX_CROP_SIDE and 1 <= width <= MAX_CROP_SIDE):
        raise SchemaError("bad_shape", f"crop sides must be 1..{MAX_CROP_SIDE}, got {crop.shape}")
    return np.ascontiguousarray(crop)


def _checked_bbox(bbox: object) -> tuple[float, float, float, float]:
    values = tuple(bbox) if isinstance(bbox, (tuple, list, np.ndarray)) else ()
    if len(values) != 4:
        raise SchemaError("bad_shape", f"bbox must have 4 numbers (x, y, w, h), got {bbox!r:.60}")
    x, y, w, h = (check_float("bbox", v) for v in values)
    if w < 0 or h < 0:
        raise SchemaError("bad_value", f"bbox width/height must be >= 0, got {w}, {h}")
    return (x, y, w, h)


def _checked_landmarks(landmarks: object) -> np.ndarray:
    points = np.asarray(landmarks, dtype=np.float32) if isinstance(landmarks, (np.ndarray, list, tuple)) else None
    if points is None or points.shape != (5, 2):
        raise SchemaError("bad_shape", f"landmarks must be (5, 2), got {getattr(points, 'shape', type(landmarks))}")
    if not np.isfinite(points).all():
        raise SchemaError("bad_value", "landmarks contain NaN or inf")
    return points


def encode_face_frame(frame: FaceFrame) -> bytes:
    """The v1 wire bytes of a (validated) FaceFrame."""
    ids = [s.encode("utf-8") for s in (frame.screening_id, frame.theater_id, frame.camera_id, frame.seat_id)]
    height, width = frame.crop.shape
    header = HEADER.pack(
        MAGIC, SCHEMA_VERSION, frame.track_id, frame.frame_id, frame.captured_us, frame.movie_ts,
        height, width, *frame.bbox, *frame.landmarks.reshape(-1).tolist(),
        frame.detection_score, frame.yaw_deg, frame.pitch_deg, *(len(b) for b in ids),
    )
    return b"".join((header, *ids, frame.crop.tobytes()))


def decode_face_frame(data: bytes) -> FaceFrame:
    """Parse and validate v1 wire bytes; any problem raises SchemaError with a reason.

    The returned crop is a read-only view into `data` (no copy)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise SchemaError("bad_value", f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if data[: len(MAGIC)] != MAGIC[: len(data)]:
        raise SchemaError("bad_magic", f"not a FaceFrame (starts with {data[:4]!r})")
    if len(data) < _PREFIX:
        raise SchemaError("truncated", f"{len(data)} bytes is too short for a FaceFrame")
    if data[4] != SCHEMA_VERSION:
        raise SchemaError("unknown_version", f"FaceFrame schema_version {data[4]} is not {SCHEMA_VERSION}")
    if len(data) < HEADER.size:
        raise SchemaError("truncated", f"{len(data)} bytes is shorter than the {HEADER.size}-byte header")
    fields = HEADER.unpack_from(data)
    track_id, frame_id, captured_us, movie_ts, height, width = fields[2:8]
    bbox, landmarks = fields[8:12], fields[12:22]
    score, yaw, pitch = fields[22:25]
    id_lengths = fields[25:29]
    if not (1 <= height <= MAX_CROP_SIDE and 1 <= width <= MAX_CROP_SIDE):
        raise SchemaError("bad_shape", f"crop sides must be 1..{MAX_CROP_SIDE}, got ({height}, {width})")
    pixels_at = HEADER.size + sum(id_lengths)
    expected = pixels_at + height * width
    if len(data) < expected:
        raise SchemaError("truncated", f"{len(data)} bytes, expected {expected} for a {height}x{width} crop")
    if len(data) > expected:
        raise SchemaError("bad_shape", f"{len(data) - expected} bytes beyond the {height}x{width} crop")
    ids, at = [], HEADER.size
    for length in id_lengths:
        try:
            ids.append(data[at : at + length].decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise SchemaError("bad_value", f"an id is not UTF-8: {exc}") from None
        at += length
    crop = np.frombuffer(data, dtype=np.uint8, count=height * width, offset=pixels_at).reshape(height, width)
    return FaceFrame(
        *ids, track_id=track_id, frame_id=frame_id, captured_us=captured_us, movie_ts=movie_ts,
        crop=crop, bbox=bbox, landmarks=np.array(landmarks, dtype=np.float32).reshape(5, 2),
        detection_score=score, yaw_deg=yaw, pitch_deg=pitch,
    )

