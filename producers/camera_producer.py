"""The camera-host loop: frames -> YuNet -> tracker -> seat -> opt-out -> aligned crop -> Kafka `faces`.

Only aligned gray crops (plus box, landmarks, head pose) are published, keyed by the seat-based
person key; full frames never leave the host. Opted-out seats and faces outside every seat are
dropped before any crop is made. The Kafka producer is idempotent with acks=all, so per-key order
holds across retries. A stop event (SIGTERM/SIGINT via `stop_on_signals`) ends the loop; the
producer is always flushed before returning.
"""
from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Mapping

from kafka import KafkaProducer
from kafka.errors import KafkaError

from engines.model_files import DEFAULT_MODEL
from engines.model_meta import read_metadata
from engines.face_detector import FaceDetector
from engines.preprocessing import align_face
from producers.head_pose import head_pose
from producers.opt_out import OptOutList
from producers.seat_map import SeatMap, SeatMapError
from producers.sources import SourceFrame
from producers.tracker import IouTracker
from schemas.face_frame import FaceFrame, encode_face_frame

log = logging.getLogger(__name__)


def shipped_model_input_size() -> int:
    """Crops are aligned at the input size the shipped model declares in its metadata."""
    return read_metadata(DEFAULT_MODEL).input_size


class BrokerUnavailable(RuntimeError):
    """Kafka could not be reached (at start) or did not take the messages (at flush) in time."""


@dataclass(frozen=True)
class CameraConfig:
    screening_id: str
    theater_id: str
    camera_id: str
    crop_size: int = field(default_factory=shipped_model_input_size)  # the model's input side
    stats_every_s: float = 10.0
    flush_timeout_s: float = 30.0


@dataclass
class ProducerStats:
    """Counters of one run; `line()` is the periodic log line."""

    frames: int = 0
    faces: int = 0
    published: int = 0
    dropped_no_seat: int = 0
    dropped_opt_out: int = 0
    delivery_errors: int = 0
    bytes: int = 0

    @property
    def dropped(self) -> int:
        return self.dropped_no_seat + self.dropped_opt_out

    def line(self, camera_id: str, fps: float) -> str:
        return (f"camera {camera_id}: {fps:.1f} fps, {self.frames} frames, {self.faces} faces, "
                f"{self.published} published, {self.dropped} dropped (no seat {self.dropped_no_seat}, "
                f"opt-out {self.dropped_opt_out}), {self.delivery_errors} delivery errors, {self.bytes} bytes")


def open_kafka_producer(bootstrap: str, timeout_s: float = 10.0,
                        security: Mapping[str, Any] | None = None) -> KafkaProducer:
    """An idempotent acks=all producer; BrokerUnavailable if no broker answers within timeout_s.

    `security`: the camera host's credentials as `infra.kafka_security.kafka_python_kwargs(settings)`."""
    timeout_ms = int(timeout_s * 1000)
    try:
        return KafkaProducer(
            bootstrap_servers=bootstrap,
            enable_idempotence=True,
            acks="all",
            linger_ms=5,
            bootstrap_timeout_ms=timeout_ms,
            max_block_ms=timeout_ms,
            client_id="moviemotion-camera",
            **(security or {}),
        )
    except KafkaError as exc:
        raise BrokerUnavailable(f"Kafka broker at {bootstrap} not reachable within {timeout_s:g}s: {exc}") from None


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[threading.Event]:
    """While inside, SIGTERM and SIGINT set `stop` (main thread only); the old handlers come back after."""
    def handler(signum, _frame) -> None:
        log.info("received %s: stopping after flush", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class CameraProducer:
    """Turns source frames into FaceFrames for one camera and publishes them."""

    def __init__(self, config: CameraConfig, seat_map: SeatMap, opt_out: OptOutList = OptOutList(),
                 detector: FaceDetector | None = None, tracker: IouTracker | None = None) -> None:
        if seat_map.camera_id != config.camera_id:
            raise SeatMapError(f"seat map is for camera {seat_map.camera_id!r}, not {config.camera_id!r}")
        self.config = config
        self.seat_map = seat_map
        self.opt_out = opt_out
        self.detector = detector or FaceDetector()
        self.tracker = tracker or IouTracker()
        self.stats = ProducerStats()

    def faces_in(self, frame: SourceFrame) -> list[FaceFrame]:
        """The publishable faces of one frame (updates the tracker and the drop counters)."""
        height, width = frame.image.shape[:2]
        self.seat_map.check_frame_size(width, height)
        detections = self.detector.detect(frame.image)
        track_ids = self.tracker.update([d.bbox for d in detections])
        self.stats.frames += 1
        self.stats.faces += len(detections)
        faces = []
        for detection, track_id in zip(detections, track_ids):
            seat_id = self.seat_map.seat_for(detection.bbox)
            if seat_id is None:
                self.stats.dropped_no_seat += 1
                continue
            if seat_id in self.opt_out:
                self.stats.dropped_opt_out += 1
                continue
            yaw, pitch = head_pose(detection.landmarks)
            faces.append(FaceFrame(
                screening_id=self.config.screening_id, theater_id=self.config.theater_id,
                camera_id=self.config.camera_id, seat_id=seat_id, track_id=track_id,
                frame_id=frame.frame_id, captured_us=frame.captured_us, movie_ts=frame.movie_ts,
                crop=align_face(frame.image, detection.landmarks, self.config.crop_size),
                bbox=detection.bbox, landmarks=detection.landmarks, detection_score=min(detection.score, 1.0),
                yaw_deg=yaw, pitch_deg=pitch,
            ))
        return faces

    def _delivery_failed(self, exc: BaseException) -> None:
        self.stats.delivery_errors += 1
        log.error("camera %s: delivery failed: %s", self.config.camera_id, exc)

    def publish(self, source: Iterable[SourceFrame], producer: KafkaProducer, topic: str,
                stop: threading.Event | None = None) -> ProducerStats:
        """Publish every face of every frame until the source ends or `stop` is set; always flushes.

        Source errors (camera lost, truncated file) propagate after the flush."""
        stop = stop or threading.Event()
        camera = self.config.camera_id
        window_start, window_frames = time.monotonic(), 0
        try:
            for frame in source:
                for face in self.faces_in(frame):
                    key, value = face.person_key.encode("utf-8"), encode_face_frame(face)
                    producer.send(topic, key=key, value=value).add_errback(self._delivery_failed)
                    self.stats.published += 1
                    self.stats.bytes += len(key) + len(value)
                window_frames += 1
                elapsed = time.monotonic() - window_start
                if elapsed >= self.config.stats_every_s:
                    log.info(self.stats.line(camera, window_frames / elapsed))
                    window_start, window_frames = time.monotonic(), 0
                if stop.is_set():
                    break
        finally:
            self._flush(producer)
        log.info("done: " + self.stats.line(camera, window_frames / max(time.monotonic() - window_start, 1e-9)))
        return self.stats

    def _flush(self, producer: KafkaProducer) -> None:
        try:
            producer.flush(timeout=self.config.flush_timeout_s)
        except KafkaError as exc:
            raise BrokerUnavailable(
                f"camera {self.config.camera_id}: Kafka did not take the last messages within "
                f"{self.config.flush_timeout_s:g}s: {exc}"
            ) from None
