"""Run the pipeline on a video file and wait for its results: shared by the demo and the e2e tests.

`start_worker` launches `moviemotion worker` as a child process; `publish_video` runs the camera
producer over a file; `wait_until_scored` polls ClickHouse until every published frame has its
score row and every viewer's last second has its event.
"""
from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from infra.clickhouse.client import ClickHouseClient
from infra.kafka_security import kafka_python_kwargs
from schemas.settings import Settings, settings_env
from producers.camera_producer import CameraConfig, CameraProducer, ProducerStats, open_kafka_producer
from producers.opt_out import OptOutList
from producers.seat_map import load_seat_map
from producers.sources import open_source


@dataclass(frozen=True)
class Progress:
    frames_stored: int
    frames_expected: int
    viewers_complete: int
    viewers: int

    @property
    def done(self) -> bool:
        return self.frames_stored >= self.frames_expected and self.viewers_complete == self.viewers


def fresh_run(settings: Settings, prefix: str = "bench") -> Settings:
    """The same stack with a new consumer group that starts at the current end of `faces` and `emotion-events`."""
    run = settings.with_overrides(processor_group=f"{prefix}-{uuid.uuid4().hex[:8]}")
    commit_end_offsets(run, [run.topics.faces, run.topics.emotion_events])
    return run


def commit_end_offsets(settings: Settings, topics: list[str]) -> None:
    """Commit the end of every partition of `topics` for the processor group (which has no members yet)."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=settings.processor_group,
                             enable_auto_commit=False, request_timeout_ms=30_000, **kafka_python_kwargs(settings))
    try:
        partitions = [TopicPartition(topic, p) for topic in topics for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(partitions)
        consumer.seek_to_end(*partitions)
        consumer.commit({tp: OffsetAndMetadata(consumer.position(tp), "", -1) for tp in partitions})
    finally:
        consumer.close()


_workers: list[subprocess.Popen] = []


@atexit.register
def _stop_workers_left_running() -> None:
    """Workers run in their own session (a Ctrl-C of the parent must not kill them mid-batch), so
    the parent stops the ones it started when it exits."""
    for worker in _workers:
        stop_worker(worker, timeout=10)


def start_worker(settings: Settings, log_path: Path, extra_env: dict[str, str] | None = None) -> subprocess.Popen:
    """A `moviemotion worker` child process logging to `log_path`; stopped at the latest when this
    process exits."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **settings_env(settings), **(extra_env or {})}
    with open(log_path, "ab") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "moviemotion", "--state-dir", str(settings.state_dir), "worker"],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
    _workers.append(worker)
    return worker


def stop_worker(worker: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM, then SIGKILL if it does not exit in time."""
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)


def publish_video(settings: Settings, video: Path, seat_map_path: Path, config: CameraConfig, fps: float,
                  opt_out: OptOutList = OptOutList(), start_us: int | None = None) -> ProducerStats:
    """Publish every face of a video file (as fast as it decodes) to the faces topic."""
    camera = CameraProducer(config, load_seat_map(seat_map_path), opt_out)
    producer = open_kafka_producer(settings.kafka_bootstrap, security=kafka_python_kwargs(settings))
    try:
        return camera.publish(open_source(str(video), fps, start_us=start_us), producer, settings.topics.faces)
    finally:
        producer.close()


def wait_until(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.5) -> bool:
    """Poll `predicate` until it holds (True) or `timeout_s` passes (False)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return predicate()


def scoring_progress(client: ClickHouseClient, screening_id: str, frames_expected: int) -> Progress:
    params = {"s": screening_id}
    frames_stored = client.query("SELECT count() FROM frame_scores WHERE screening_id = %(s)s", params)[0][0]
    last_frame = dict(client.query(
        "SELECT person_key, toUInt32(floor(max(movie_ts))) FROM frame_scores WHERE screening_id = %(s)s GROUP BY person_key",
        params))
    last_event = dict(client.query(
        "SELECT person_key, max(movie_second) FROM viewer_seconds WHERE screening_id = %(s)s AND visible = 1 GROUP BY person_key",
        params))
    complete = sum(1 for key, second in last_frame.items() if last_event.get(key, -1) >= second)
    return Progress(frames_stored, frames_expected, complete, len(last_frame))


def wait_until_scored(client: ClickHouseClient, screening_id: str, frames_expected: int, timeout_s: float,
                      on_progress: Callable[[Progress], None] = lambda p: None,
                      worker: subprocess.Popen | None = None) -> Progress:
    """Poll until done; TimeoutError (with the last progress) if not within timeout_s, RuntimeError if
    the worker died."""
    deadline = time.monotonic() + timeout_s
    while True:
        progress = scoring_progress(client, screening_id, frames_expected)
        on_progress(progress)
        if progress.done:
            return progress
        if worker is not None and worker.poll() is not None:
            raise RuntimeError(f"the worker exited with code {worker.returncode} before every frame was scored")
        if time.monotonic() > deadline:
            raise TimeoutError(f"not every frame scored within {timeout_s:g}s: {progress}")
        time.sleep(1.0)
