"""The rows the worker writes to ClickHouse: a `frame_scores` row per scored face, a `viewer_seconds` row per
EmotionEvent (schemas/clickhouse/ holds the tables). Ids, times and scores; never pixels."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import numpy as np

from schemas.emotion_event import EmotionEvent
from schemas.emotions import EMOTIONS
from schemas.face_frame import FaceFrame


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
