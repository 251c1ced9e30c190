"""Shared steps of the fault tests: replay the sample screening while recording what was produced (the
ground truth), then check ClickHouse against it.

The ground truth comes from the real producer run: `RecordingProducer` wraps the real KafkaProducer and
decodes every FaceFrame it is handed. `assert_matches_ground_truth` then demands every produced frame
stored exactly once in `frame_scores` and, for every viewer-second that had frames, exactly one visible
`viewer_seconds` row carrying all of that second's frames; the audience materialized view (which sums on
insert, so a duplicate insert can never be merged away) must count each of those rows once.
"""
from __future__ import annotations

import math
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from moviemotion.pipeline_run import fresh_run
from infra.clickhouse.client import ClickHouseClient
from moviemotion.pipeline_run import start_worker, wait_until_scored
from schemas.settings import Settings
from producers.camera_producer import CameraConfig, CameraProducer, open_kafka_producer
from producers.opt_out import OptOutList
from producers.sample_screening import SampleScreening
from producers.seat_map import load_seat_map
from producers.sources import SourceFrame, open_source
from schemas.face_frame import decode_face_frame

FPS = 5.0
SCORED_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class GroundTruth:
    """What the producer(s) published: (person_key, frame_id, movie_ts) of every face sent."""

    sent: tuple[tuple[str, int, float], ...]

    @property
    def frames(self) -> frozenset[tuple[str, int]]:
        """The identities of the produced frames (a republished frame counts once)."""
        return frozenset((key, frame_id) for key, frame_id, _ in self.sent)

    @property
    def seconds(self) -> dict[tuple[str, int], int]:
        """(person_key, movie_second) -> number of distinct frames produced in it."""
        unique = {(key, frame_id): ts for key, frame_id, ts in self.sent}
        return dict(Counter((key, math.floor(ts)) for (key, _), ts in unique.items()))

    def __add__(self, other: "GroundTruth") -> "GroundTruth":
        return GroundTruth(self.sent + other.sent)


class RecordingProducer:
    """The real KafkaProducer, remembering (person_key, frame_id, movie_ts) of every FaceFrame sent."""

    def __init__(self, bootstrap: str) -> None:
        self._producer = open_kafka_producer(bootstrap, timeout_s=30)
        self.sent: list[tuple[str, int, float]] = []

    def send(self, topic: str, key: bytes | None = None, value: bytes | None = None, **kwargs):
        frame = decode_face_frame(value)
        self.sent.append((frame.person_key, frame.frame_id, frame.movie_ts))
        return self._producer.send(topic, key=key, value=value, **kwargs)

    def flush(self, timeout: float | None = None) -> None:
        self._producer.flush(timeout=timeout)

    def close(self, timeout: float = 30) -> None:
        self._producer.close(timeout=timeout)

    def truth(self) -> GroundTruth:
        return GroundTruth(tuple(self.sent))


def fault_settings(bootstrap: str, base: Settings, **overrides) -> tuple[Settings, str]:
    """Settings on `bootstrap` with a fresh processor group, and a screening id (the group's name).

    The group starts at the current end of `faces` and `emotion-events`: a worker in it skips the
    messages earlier tests left on the shared session broker."""
    settings = fresh_run(base.with_overrides(kafka_bootstrap=bootstrap, **overrides), prefix="fault")
    return settings, settings.processor_group


def sample_frames(sample: SampleScreening) -> Iterator[SourceFrame]:
    """The sample video's frames at FPS, as fast as they decode."""
    return iter(open_source(str(sample.video_path), FPS))


def publish_recorded(settings: Settings, sample: SampleScreening, screening_id: str,
                     frames: Iterable[SourceFrame] | None = None, opt_out: OptOutList = OptOutList()) -> GroundTruth:
    """Run the real camera producer over `frames` (default: the whole sample video) and return what it sent."""
    camera = CameraProducer(CameraConfig(screening_id, sample.theater_id, sample.camera_id),
                            load_seat_map(sample.seat_map_path), opt_out)
    producer = RecordingProducer(settings.kafka_bootstrap)
    try:
        camera.publish(sample_frames(sample) if frames is None else frames, producer, settings.topics.faces)
    finally:
        producer.close()
    return producer.truth()


class BackgroundPublish(threading.Thread):
    """`publish_recorded` in a thread; `truth(timeout)` joins it and returns (or re-raises) its outcome."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(daemon=True)
        self._call = lambda: publish_recorded(*args, **kwargs)
        self._outcome: GroundTruth | BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self._outcome = self._call()
        except BaseException as exc:  # handed to the test thread by truth()
            self._outcome = exc

    def truth(self, timeout_s: float) -> GroundTruth:
        self.join(timeout_s)
        if self.is_alive():
            raise TimeoutError(f"the producer did not finish within {timeout_s:g}s")
        if isinstance(self._outcome, BaseException):
            raise self._outcome
        return self._outcome


def until_movie_ts(frames: Iterable[SourceFrame], movie_ts: float) -> Iterator[SourceFrame]:
    """The frames before `movie_ts`."""
    for frame in frames:
        if frame.movie_ts >= movie_ts:
            return
        yield frame


def from_movie_ts(frames: Iterable[SourceFrame], movie_ts: float) -> Iterator[SourceFrame]:
    """The frames at or after `movie_ts`."""
    return (frame for frame in frames if frame.movie_ts >= movie_ts)


def paced(frames: Iterable[SourceFrame], speed: float) -> Iterator[SourceFrame]:
    """The frames at `speed` times real time (movie clock), like a live camera."""
    began = time.monotonic()
    for frame in frames:
        time.sleep(max(0.0, began + frame.movie_ts / speed - time.monotonic()))
        yield frame


def count_frames(client: ClickHouseClient, screening_id: str) -> int:
    return client.query("SELECT count() FROM frame_scores WHERE screening_id = %(s)s", {"s": screening_id})[0][0]


def wait_for_frames(client: ClickHouseClient, screening_id: str, frames: int, workers: list[subprocess.Popen],
                    timeout_s: float = 240, interval_s: float = 0.5) -> None:
    """Until `frames` score rows are stored; AssertionError when a worker exits or `timeout_s` passes."""
    deadline = time.monotonic() + timeout_s
    while count_frames(client, screening_id) < frames:
        exited = [w.pid for w in workers if w.poll() is not None]
        assert not exited, f"worker(s) {exited} exited before {frames} frames of {screening_id} were stored"
        assert time.monotonic() < deadline, f"{frames} frames of {screening_id} not stored within {timeout_s:g}s"
        time.sleep(interval_s)


def start_fault_worker(settings: Settings, log_dir: Path, name: str) -> subprocess.Popen:
    """A worker child process with the shipped settings (its session timeout included); logs to log_dir/name.log."""
    return start_worker(settings, log_dir / f"{name}.log")


def wait_scored(client: ClickHouseClient, screening_id: str, truth: GroundTruth, worker: subprocess.Popen,
                timeout_s: float = SCORED_TIMEOUT_S) -> None:
    wait_until_scored(client, screening_id, len(truth.frames), timeout_s, worker=worker)


def assert_matches_ground_truth(client: ClickHouseClient, screening_id: str, truth: GroundTruth,
                                exact_frames: bool = True) -> None:
    """Every produced frame stored once; every viewer-second with frames has one visible event with all of them.

    exact_frames=False: when a fault kept a viewer's frames away for longer than the idle flush
    (`idle_flush_s`) — frames held up, or scoring stalled — the open second was closed with the frames that
    had arrived and its late frames are left out of that summary (they are still in frame_scores); the event
    must then hold 1..all of them."""
    params = {"s": screening_id}
    stored = Counter({(key, frame_id): n for key, frame_id, n in client.query(
        "SELECT person_key, frame_id, count() FROM frame_scores WHERE screening_id = %(s)s "
        "GROUP BY person_key, frame_id", params)})
    duplicated = {frame: n for frame, n in stored.items() if n > 1}
    assert not duplicated, f"{len(duplicated)} frames stored more than once, e.g. {list(duplicated.items())[:3]}"
    missing, extra = truth.frames - set(stored), set(stored) - truth.frames
    assert not missing and not extra, f"{len(missing)} produced frames not stored (e.g. {sorted(missing)[:3]}), " \
                                      f"{len(extra)} stored frames never produced (e.g. {sorted(extra)[:3]})"

    events = client.query(
        "SELECT person_key, movie_second, count(), sum(visible), sum(frames) FROM viewer_seconds "
        "WHERE screening_id = %(s)s GROUP BY person_key, movie_second", params)
    repeated = [(key, second, n) for key, second, n, _, _ in events if n > 1]
    assert not repeated, f"{len(repeated)} viewer-seconds stored more than once, e.g. {repeated[:3]}"
    visible = {(key, second): frames for key, second, _, shown, frames in events if shown}
    def frames_ok(stored: int | None, produced: int) -> bool:
        return stored == produced or (not exact_frames and stored is not None and 1 <= stored <= produced)

    wrong = {second: (visible.get(second), n) for second, n in truth.seconds.items() if not frames_ok(visible.get(second), n)}
    assert not wrong, f"{len(wrong)} viewer-seconds lack their event or some of its frames " \
                      f"((key, second): (stored frames, produced frames)), e.g. {sorted(wrong.items())[:5]}"
    assert set(visible) == set(truth.seconds), f"visible events without frames: {sorted(set(visible) - set(truth.seconds))[:5]}"

    per_second = Counter(second for _, second in truth.seconds)
    audience = dict(client.query(
        "SELECT movie_second, sum(viewers) FROM audience_seconds WHERE screening_id = %(s)s GROUP BY movie_second", params))
    assert {s: v for s, v in audience.items() if v} == dict(per_second), "the audience view counts a viewer-second twice or not at all"
