"""`EmotionEvent` (topic `emotion-events`): one person's emotion summary for one movie second, compact JSON.

Score vectors follow `schemas.emotions.EMOTIONS` order. JSON keys are the field names; NaN and
infinity are never written or accepted. Version 2 added `reaction` (the emotion shown above the
viewer's own baseline; `neutral` = none); version 1 events, still in the topic after an upgrade, are
read with `reaction` = '' (not measured), as stored rows from before then are.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

from schemas.emotions import EMOTIONS, NUM_EMOTIONS
from schemas.errors import SchemaError, check_captured_us, check_float, check_id, check_int
from schemas.face_frame import person_key_of

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
NOT_MEASURED = ""  # the reaction of a version 1 event
BASELINE_STATES = ("calibrating", "ready")
_VECTORS = ("probs", "smoothed", "intensities")


def event_id_of(person_key: str, movie_second: int) -> str:
    """The idempotency key of an event: one per person per movie second."""
    return f"{person_key}|{movie_second}"


@dataclass(frozen=True)
class EmotionEvent:
    """Per-second emotion summary of one seat's viewer; construction validates every field."""

    event_id: str
    screening_id: str
    theater_id: str
    camera_id: str
    seat_id: str
    person_key: str
    movie_second: int
    captured_us: int
    frames: int
    visible: bool
    attending: bool
    probs: tuple[float, ...]
    smoothed: tuple[float, ...]
    dominant: str
    reaction: str
    intensities: tuple[float, ...]
    intensity: float
    valence: float
    arousal: float
    baseline_state: str
    model_version: str
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.schema_version not in READABLE_VERSIONS or isinstance(self.schema_version, bool):
            raise SchemaError("unknown_version", f"EmotionEvent schema_version {self.schema_version!r} is not one of {READABLE_VERSIONS}")
        for name in ("screening_id", "theater_id", "camera_id", "seat_id", "model_version"):
            check_id(name, getattr(self, name))
        set_ = object.__setattr__
        set_(self, "movie_second", check_int("movie_second", self.movie_second))
        set_(self, "captured_us", check_captured_us(self.captured_us))
        set_(self, "frames", check_int("frames", self.frames))
        expected_key = person_key_of(self.screening_id, self.theater_id, self.seat_id)
        if self.person_key != expected_key:
            raise SchemaError("bad_value", f"person_key {self.person_key!r:.80} != {expected_key!r:.80}")
        if self.event_id != event_id_of(expected_key, self.movie_second):
            raise SchemaError("bad_value", f"event_id {self.event_id!r:.80} != person_key|movie_second")
        for name in ("visible", "attending"):
            if not isinstance(getattr(self, name), bool):
                raise SchemaError("bad_value", f"{name} must be a bool, got {getattr(self, name)!r:.40}")
        set_(self, "probs", _checked_vector("probs", self.probs, 0.0, 1.0))
        set_(self, "smoothed", _checked_vector("smoothed", self.smoothed, 0.0, 1.0))
        set_(self, "intensities", _checked_vector("intensities", self.intensities, 0.0, 1.0))
        if self.dominant not in EMOTIONS:
            raise SchemaError("bad_value", f"dominant must be one of {EMOTIONS}, got {self.dominant!r:.40}")
        allowed = EMOTIONS if self.schema_version == SCHEMA_VERSION else (NOT_MEASURED,)
        if self.reaction not in allowed:
            raise SchemaError("bad_value", f"reaction must be one of {allowed} in version {self.schema_version}, got {self.reaction!r:.40}")
        set_(self, "intensity", check_float("intensity", self.intensity, 0.0, 1.0))
        set_(self, "valence", check_float("valence", self.valence))
        set_(self, "arousal", check_float("arousal", self.arousal))
        if self.baseline_state not in BASELINE_STATES:
            raise SchemaError("bad_value", f"baseline_state must be one of {BASELINE_STATES}, got {self.baseline_state!r:.40}")


def _checked_vector(name: str, values: object, low: float, high: float) -> tuple[float, ...]:
    if not isinstance(values, (list, tuple)) or len(values) != NUM_EMOTIONS:
        raise SchemaError("bad_shape", f"{name} must hold {NUM_EMOTIONS} numbers, got {values!r:.80}")
    return tuple(check_float(name, v, low, high) for v in values)


_FIELD_NAMES = frozenset(f.name for f in fields(EmotionEvent))


def encode_emotion_event(event: EmotionEvent) -> bytes:
    """Compact UTF-8 JSON of a (validated) event."""
    return json.dumps(asdict(event), separators=(",", ":"), allow_nan=False).encode("utf-8")


def _reject_constant(token: str) -> float:
    raise SchemaError("bad_value", f"{token} is not allowed in an EmotionEvent")


def decode_emotion_event(data: bytes) -> EmotionEvent:
    """Parse and validate v1 JSON bytes; any problem raises SchemaError with a reason."""
    if not isinstance(data, (bytes, bytearray, memoryview, str)):
        raise SchemaError("bad_value", f"expected bytes, got {type(data).__name__}")
    try:
        text = data if isinstance(data, str) else bytes(data).decode("utf-8")
        obj = json.loads(text, parse_constant=_reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise SchemaError("bad_json", f"not an EmotionEvent JSON document: {exc}") from None
    if not isinstance(obj, dict):
        raise SchemaError("bad_json", f"expected a JSON object, got {type(obj).__name__}")
    if "schema_version" not in obj:
        raise SchemaError("missing_field", "schema_version is missing")
    version = obj["schema_version"]
    if version not in READABLE_VERSIONS or isinstance(version, bool):
        raise SchemaError("unknown_version", f"EmotionEvent schema_version {version!r:.40} is not one of {READABLE_VERSIONS}")
    if version == 1 and "reaction" not in obj:
        obj["reaction"] = NOT_MEASURED
    missing = _FIELD_NAMES - obj.keys()
    if missing:
        raise SchemaError("missing_field", f"missing {sorted(missing)}")
    extra = obj.keys() - _FIELD_NAMES
    if extra:
        raise SchemaError("bad_value", f"unknown fields {sorted(extra)[:5]}")
    for name in _VECTORS:
        if isinstance(obj[name], list):
            obj[name] = tuple(obj[name])
    return EmotionEvent(**obj)
