"""From raw `faces` messages to scores: decode (rejects become dead letters), batch inference, and the conversions
to `ScoredFrame`s and `EmotionEvent`s (the ClickHouse rows: infra/clickhouse/rows.py).

Pure functions apart from the engine call; the Faust app wires them to topics and tables.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from schemas.emotions import EMOTIONS, NUM_EMOTIONS
from engines.engine import EmotionEngine
from engines.select import load_engine
from schemas.settings import Settings
from schemas.emotion_event import EmotionEvent, event_id_of
from schemas.errors import SchemaError
from schemas.face_frame import FaceFrame, decode_face_frame
from stream_processors.person_state import ID_FIELDS, ScoredFrame, SecondSummary


@dataclass(frozen=True)
class Rejected:
    """A message that cannot be scored: goes to `dead-letters` with `reason` and `error`."""

    index: int  # position in the batch it came from
    reason: str
    error: str


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
            if frame.crop.shape != (crop_size, crop_size):
                raise SchemaError("bad_shape", f"crop is {frame.crop.shape}, the model takes {crop_size}x{crop_size}")
            if keys is not None and keys[index] != frame.person_key.encode("utf-8"):
                raise SchemaError("bad_value", f"the message key ({len(keys[index] or b'')} bytes) is not the person key")
        except SchemaError as exc:
            rejected.append(Rejected(index, exc.reason, str(exc)))
        else:
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


def scored_frame(frame: FaceFrame, probs: np.ndarray, model_version: str) -> ScoredFrame:
    """The per-person state's input for one frame."""
    ids = {name: getattr(frame, name) for name in ID_FIELDS if name != "model_version"}
    return ScoredFrame(movie_ts=frame.movie_ts, captured_us=frame.captured_us, probs=probs / probs.sum(),
                       yaw_deg=frame.yaw_deg, pitch_deg=frame.pitch_deg, model_version=model_version, **ids)


_ZEROS = (0.0,) * NUM_EMOTIONS


def emotion_event(summary: SecondSummary) -> EmotionEvent:
    """The wire event of one person-second. Not-visible seconds carry zero scores and never count
    as attending, so audience shares ignore them."""
    def vector(values: np.ndarray | None) -> tuple[float, ...]:
        return _ZEROS if values is None else tuple(float(v) for v in np.clip(values, 0.0, 1.0))

    return EmotionEvent(
        event_id=event_id_of(summary.person_key, summary.movie_second),
        **{name: getattr(summary, name) for name in ID_FIELDS},
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
    )
