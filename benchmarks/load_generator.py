"""Simulated camera hosts for load and soak runs: valid FaceFrames built from the sample sprite's real FER+
faces (producers/sample/faces.npz), published to `faces` at a chosen total rate.

Each simulated camera watches `seats_per_camera` seats; every seat's viewer yields one frame per tick at
`faces_per_s / (cameras * seats_per_camera)` frames per second. Ids and times look like the real
producer's: seat-based person keys, frame ids counting sampling slots, movie time from the screening start,
`captured_us` = the wall clock when the frame is handed to Kafka (so capture -> stored latency is real).
Each viewer changes face (expression) every `face_every_s` seconds of movie time.

Run: `python benchmarks/load_generator.py --help`.
"""
from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np
from kafka import KafkaProducer
from tqdm import tqdm

from schemas.settings import load_settings
from producers.camera_producer import open_kafka_producer
from producers.head_pose import head_pose
from producers.sample_sprite import SPRITE_PATH
from schemas.face_frame import FaceFrame, encode_face_frame

# A frontal face in a 96-px box: YuNet's five landmarks (eyes, nose tip, mouth corners), box-relative.
_LANDMARKS = np.array([[0.34, 0.40], [0.66, 0.40], [0.50, 0.56], [0.38, 0.74], [0.62, 0.74]], dtype=np.float32)
_BOX_PX = 96.0
_YAW, _PITCH = head_pose(_LANDMARKS * _BOX_PX)


@dataclass(frozen=True)
class LoadSpec:
    """The simulated audience: how many cameras and seats, the total face rate, the screening's ids."""

    screening_id: str
    faces_per_s: float = 100.0
    cameras: int = 10
    seats_per_camera: int = 6
    theater_id: str = "load-theater"
    face_every_s: float = 6.0

    def __post_init__(self) -> None:
        if not self.faces_per_s > 0 or self.cameras < 1 or self.seats_per_camera < 1 or not self.face_every_s > 0:
            raise ValueError(f"a load needs a positive rate, cameras, seats and face period: {self}")

    @property
    def viewers(self) -> int:
        return self.cameras * self.seats_per_camera

    @property
    def fps_per_viewer(self) -> float:
        return self.faces_per_s / self.viewers


@dataclass
class LoadStats:
    """What a run published and how well it kept the asked rate."""

    sent: int = 0  # handed to the producer
    delivery_errors: int = 0  # of those, never acknowledged by the broker (the producer gave up on them)
    bytes: int = 0
    elapsed_s: float = 0.0
    behind_s: float = 0.0  # how far the last tick ran behind its schedule

    @property
    def published(self) -> int:
        """Faces the broker acknowledged (once the producer is flushed: sent minus delivery errors)."""
        return self.sent - self.delivery_errors

    def delivery_failed(self, _exc: BaseException) -> None:
        self.delivery_errors += 1

    @property
    def rate(self) -> float:
        return self.published / self.elapsed_s if self.elapsed_s else 0.0


def sprite_crops(path: Path = SPRITE_PATH) -> np.ndarray:
    """The sprite's aligned 48x48 uint8 faces (N, 48, 48)."""
    return np.load(path)["faces"]


def seat_ids(spec: LoadSpec) -> list[tuple[str, str]]:
    """(camera_id, seat_id) of every simulated viewer: camera 'cam-03' watches seats 'C03-1'..'C03-6'."""
    return [(f"cam-{c:02d}", f"C{c:02d}-{s}") for c in range(spec.cameras) for s in range(1, spec.seats_per_camera + 1)]


def face_frames(spec: LoadSpec, crops: np.ndarray, tick: int, captured_us: int) -> list[FaceFrame]:
    """Every viewer's frame of sampling slot `tick` (movie time tick / fps_per_viewer)."""
    movie_ts = tick / spec.fps_per_viewer
    face_slot = int(movie_ts // spec.face_every_s)
    frames = []
    for index, (camera_id, seat_id) in enumerate(seat_ids(spec)):
        x, y = 240.0 * (index % spec.seats_per_camera) + 72.0, 48.0
        frames.append(FaceFrame(
            screening_id=spec.screening_id, theater_id=spec.theater_id, camera_id=camera_id, seat_id=seat_id,
            track_id=index + 1, frame_id=tick, captured_us=captured_us, movie_ts=movie_ts,
            crop=crops[(index * 7 + face_slot) % len(crops)], bbox=(x, y, _BOX_PX, _BOX_PX),
            landmarks=_LANDMARKS * _BOX_PX + (x, y), detection_score=0.92, yaw_deg=_YAW, pitch_deg=_PITCH,
        ))
    return frames


def encoded_tick(spec: LoadSpec, crops: np.ndarray, tick: int) -> list[tuple[bytes, bytes]]:
    """(key, value) wire pairs of one tick, captured now."""
    now_us = time.time_ns() // 1000
    return [(f.person_key.encode(), encode_face_frame(f)) for f in face_frames(spec, crops, tick, now_us)]


def publish_load(producer: KafkaProducer, topic: str, spec: LoadSpec, duration_s: float | None = None,
                 faces: int | None = None, paced: bool = True, stop: threading.Event | None = None,
                 progress: bool = False) -> LoadStats:
    """Publish ticks until `duration_s` of wall time (paced) or `faces` faces, whichever first; flushes at the end.

    paced=False publishes as fast as the producer takes them (a backlog for capacity runs)."""
    if duration_s is None and faces is None:
        raise ValueError("give duration_s or faces")
    stop = stop or threading.Event()
    crops = sprite_crops()
    stats = LoadStats()
    tick_s = 1.0 / spec.fps_per_viewer
    began = time.monotonic()
    total = faces or int(duration_s * spec.faces_per_s)
    with tqdm(total=total, desc=f"load {spec.screening_id}", unit="face", disable=not progress) as bar:
        for tick in itertools.count():
            due = began + tick * tick_s
            if paced:
                if duration_s is not None and due - began >= duration_s:
                    break
                if stop.wait(max(0.0, due - time.monotonic())):
                    break
            elif stop.is_set():
                break
            messages = encoded_tick(spec, crops, tick)
            for key, value in messages:
                producer.send(topic, key=key, value=value).add_errback(stats.delivery_failed)
                stats.bytes += len(key) + len(value)
            stats.sent += len(messages)
            bar.update(len(messages))
            if faces is not None and stats.sent >= faces:
                break
            if not paced and duration_s is not None and time.monotonic() - began >= duration_s:
                break
        stats.behind_s = max(0.0, time.monotonic() - due) if paced else 0.0
    producer.flush(timeout=60)
    stats.elapsed_s = time.monotonic() - began
    return stats


@click.command()
@click.option("--bootstrap", default=None, help="Kafka bootstrap. Default: the settings' broker ($MOVIEMOTION_KAFKA_BOOTSTRAP).")
@click.option("--topic", default=None, help="Topic. Default: the settings' faces topic.")
@click.option("--screening", "screening_id", default=None, help="Screening id. Default: load-<unix time>.")
@click.option("--rate", "faces_per_s", type=click.FloatRange(min=0.1), default=100.0, show_default=True, help="Total faces per second.")
@click.option("--cameras", type=click.IntRange(min=1), default=10, show_default=True, help="Simulated cameras.")
@click.option("--seats", "seats_per_camera", type=click.IntRange(min=1), default=6, show_default=True, help="Seats per camera.")
@click.option("--duration", "duration_s", type=click.FloatRange(min=1), default=60.0, show_default=True, help="Seconds to publish.")
@click.option("--unpaced", is_flag=True, help="Publish as fast as possible (a backlog) instead of at --rate.")
def main(bootstrap, topic, screening_id, faces_per_s, cameras, seats_per_camera, duration_s, unpaced) -> None:
    """Publish simulated seat-camera face crops to Kafka at a given total rate and print what was achieved."""
    settings = load_settings(kafka_bootstrap=bootstrap)
    spec = LoadSpec(screening_id or f"load-{int(time.time())}", faces_per_s, cameras, seats_per_camera)
    producer = open_kafka_producer(settings.kafka_bootstrap)
    try:
        stats = publish_load(producer, topic or settings.topics.faces, spec, duration_s=duration_s,
                             paced=not unpaced, progress=True)
    finally:
        producer.close(timeout=30)
    click.echo(f"screening {spec.screening_id}: {stats.published} faces from {spec.viewers} viewers on "
               f"{spec.cameras} cameras in {stats.elapsed_s:.1f}s = {stats.rate:.1f} faces/s "
               f"(asked {faces_per_s:g}), {stats.bytes / max(stats.published, 1):.0f} bytes/face, "
               f"last tick {stats.behind_s:.2f}s behind schedule")


if __name__ == "__main__":
    main()
