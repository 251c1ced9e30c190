"""From raw `faces` messages to scores: decode (rejects become dead letters), batch inference,
and the conversions to per-frame score rows, `ScoredFrame`s and `EmotionEvent`s.

Pure functions apart from the engine call; the Faust app wires them to topics and tables.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Sequence

import numpy as np

from schemas.emotions import EMOTIONS, NUM_EMOTIONS
from engines.engine import EmotionEngine
from engines.select import load_engine
from schemas.settings import Settings
from schemas.emotion_event import EmotionEvent, event_id_of
from schemas.errors import SchemaError
from schemas.face_frame import FaceFrame, decode_face_frame
from stream_processors.person_state import ScoredFrame, SecondSummary


@dataclass(frozen=True)
class Rejected:
    """A message that cannot be scored: goes to `dead-letters` with `reason` and `error`."""

    index: int  # position in the batch it came from
    reason: str
    error: str


@dataclass(frozen=True)
class ScoredBatch:
    """A micro-batch after the engine: its scored messages (for keys, partitions and acks), frames and
    (N, 8) probabilities, in the same order."""

    events: list[Any]
    frames: list[FaceFrame]
    probs: np.ndarray
    model_version: str


def decode_batch(values: Sequence[bytes], crop_size: int,
                 keys: Sequence[bytes | None] | None = None) -> tuple[list[tuple[int, FaceFrame]], list[Rejected]]:
    """Decode raw messages; anything malformed, of an unknown version or of the wrong crop size is rejected, and so
    is a frame whose Kafka key (when `keys` are given) is not its person key: the key names the viewer's state and
    events, so arbitrary bytes there (a crop, say) would outlive the crop retention."""
    frames: list[tuple[int, FaceFrame]] = []
    rejected: list[Rejected] = []
    for index, value in enumerate(values):
        try:
            if not isinstance(value, (bytes, bytearray, memoryview)):
                raise SchemaError("bad_value", f"expected bytes, got {type(value).__name__}")
            frame = decode_face_frame(bytes(value))
        except SchemaError as exc:
            rejected.append(Rejected(index, exc.reason, str(exc)))
            continue
        if frame.crop.shape != (crop_size, crop_size):
            rejected.append(Rejected(index, "bad_shape", f"crop is {frame.crop.shape}, the model takes ({crop_size}, {crop_size})"))
            continue
        if keys is not None and keys[index] != frame.person_key.encode("utf-8"):
            rejected.append(Rejected(index, "bad_value", f"the message key is not the frame's person key ({len(keys[index] or b'')} bytes)"))
            continue
        frames.append((index, frame))
    return frames, rejected


def load_scoring_engine(settings: Settings) -> EmotionEngine:
    """The worker's engine: the configured backend and model precision (the shipped file for it); on ONNX Runtime,
    `engine_lanes` single-thread sessions scoring chunks of `engine_batch` faces at once (engines/parallel.py)."""
    return load_engine(settings.engine_backend, max_batch=settings.engine_batch, threads=1, lanes=settings.engine_lanes,
                       precision=settings.model_precision, cache_dir=settings.state_dir / "tensorrt")


def score(engine: EmotionEngine, frames: Sequence[FaceFrame]) -> np.ndarray:
    """(N, 8) probabilities for the frames' crops, in one engine call."""
    if not frames:
        return np.zeros((0, NUM_EMOTIONS), dtype=np.float32)
    return engine.infer(np.stack([frame.crop for frame in frames]))


def _utc(captured_us: int) -> datetime:
    return datetime.fromtimestamp(captured_us // 1_000_000, tz=timezone.utc)


def frame_score_row(frame: FaceFrame, probs: np.ndarray, model_version: str) -> dict[str, Any]:
    """A `frame_scores` row: ids, times, the 8 raw probabilities and head pose. Never pixels."""
    row: dict[str, Any] = {
        "screening_id": frame.screening_id,
        "theater_id": frame.theater_id,
        "camera_id": frame.camera_id,
        "seat_id": frame.seat_id,
        "person_key": frame.person_key,
        "track_id": frame.track_id,
        "frame_id": frame.frame_id,
        "captured_us": frame.captured_us,
        "captured_at": _utc(frame.captured_us),
        "movie_ts": frame.movie_ts,
        "yaw": _finite_or_zero(frame.yaw_deg),
        "pitch": _finite_or_zero(frame.pitch_deg),
        "detection_score": frame.detection_score,
        "model_version": model_version,
    }
    row.update({f"p_{name}": float(p) for name, p in zip(EMOTIONS, probs)})
    return row


def _finite_or_zero(value: float) -> float:
    return float(value) if np.isfinite(value) else 0.0


def scored_frame(frame: FaceFrame, probs: np.ndarray, model_version: str) -> ScoredFrame:
    """The per-person state's input for one frame."""
    return ScoredFrame(
        person_key=frame.person_key,
        movie_ts=frame.movie_ts,
        captured_us=frame.captured_us,
        probs=probs / probs.sum(),
        yaw_deg=frame.yaw_deg,
        pitch_deg=frame.pitch_deg,
        screening_id=frame.screening_id,
        theater_id=frame.theater_id,
        camera_id=frame.camera_id,
        seat_id=frame.seat_id,
        model_version=model_version,
    )


_ZEROS = (0.0,) * NUM_EMOTIONS


def emotion_event(summary: SecondSummary) -> EmotionEvent:
    """The wire event of one person-second. Not-visible seconds carry zero scores and never count
    as attending, so audience shares ignore them."""
    def vector(values: np.ndarray | None) -> tuple[float, ...]:
        return _ZEROS if values is None else tuple(float(v) for v in np.clip(values, 0.0, 1.0))

    return EmotionEvent(
        event_id=event_id_of(summary.person_key, summary.movie_second),
        screening_id=summary.screening_id,
        theater_id=summary.theater_id,
        camera_id=summary.camera_id,
        seat_id=summary.seat_id,
        person_key=summary.person_key,
        movie_second=summary.movie_second,
        captured_us=summary.captured_us,
        frames=summary.frames,
        visible=summary.visible,
        attending=summary.attending,
        probs=vector(summary.probs),
        smoothed=vector(summary.smoothed),
        dominant=summary.dominant or EMOTIONS[0],
        reaction=summary.reaction,
        intensities=vector(summary.intensities),
        intensity=float(summary.intensity or 0.0),
        valence=float(summary.valence or 0.0),
        arousal=float(summary.arousal or 0.0),
        baseline_state="ready" if summary.baseline_ready else "calibrating",
        model_version=summary.model_version,
    )


def viewer_second_row(event: EmotionEvent) -> dict[str, Any]:
    """A `viewer_seconds` row for one event."""
    row: dict[str, Any] = {
        "event_id": event.event_id,
        "screening_id": event.screening_id,
        "theater_id": event.theater_id,
        "camera_id": event.camera_id,
        "seat_id": event.seat_id,
        "person_key": event.person_key,
        "movie_second": event.movie_second,
        "captured_us": event.captured_us,
        "captured_at": _utc(event.captured_us),
        "frames": event.frames,
        "visible": int(event.visible),
        "attending": int(event.attending),
        "baseline_ready": int(event.baseline_state == "ready"),
        "dominant": event.dominant,
        "reaction": event.reaction,
        "intensity": event.intensity,
        "valence": event.valence,
        "arousal": event.arousal,
        "model_version": event.model_version,
    }
    row.update({f"p_{name}": p for name, p in zip(EMOTIONS, event.smoothed)})
    row.update({f"i_{name}": i for name, i in zip(EMOTIONS, event.intensities)})
    return row
