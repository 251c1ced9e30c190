"""A finished screening's viewers leave the worker's state table: once their last second is published and no frame
of theirs came for `state_retention_s`, the worker deletes their states, which shows as one tombstone per viewer in
the table's changelog (the in-memory table drops the key with it; a restarted worker restores nothing for them)."""
from __future__ import annotations

import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from benchmarks.load_generator import LoadSpec, face_frames, sprite_crops
from infra.topics import PERSON_STATE_TABLE
from moviemotion.pipeline_run import start_worker, stop_worker, wait_until
from schemas.face_frame import encode_face_frame
from tests.faults.harness import fault_settings, wait_for_frames

pytestmark = [pytest.mark.faults, pytest.mark.kafka, pytest.mark.slow]

RETENTION_S = 5.0


def changelog(bootstrap: str, topic: str) -> list[tuple[bytes, bytes | None]]:
    """(key, value) of every record of `topic` so far."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=2000)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            return []
        consumer.assign([TopicPartition(topic, p) for p in partitions])
        consumer.seek_to_beginning()
        return [(record.key, record.value) for record in consumer]
    finally:
        consumer.close()


def test_a_finished_screenings_viewers_are_released_after_the_retention(kafka_broker, clickhouse_factory, tmp_path):
    target = clickhouse_factory("chdb")
    settings, screening_id = fault_settings(kafka_broker.bootstrap, target.settings, state_retention_s=RETENTION_S)
    spec = LoadSpec(screening_id=screening_id, faces_per_s=15.0, cameras=1, seats_per_camera=3)  # 3 viewers, 5 fps
    crops = sprite_crops()
    frames = [frame for tick in range(10) for frame in face_frames(spec, crops, tick, time.time_ns() // 1000)]
    viewers = {frame.person_key.encode() for frame in frames}
    topic = f"{settings.processor_group}-{PERSON_STATE_TABLE}-changelog"
    worker = start_worker(settings, tmp_path / "worker.log")
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap, acks="all")
    try:
        for frame in frames:
            producer.send(settings.topics.faces, key=frame.person_key.encode(), value=encode_face_frame(frame))
        producer.flush(30)
        wait_for_frames(target.client, screening_id, len(frames), [worker])

        def released() -> set[bytes]:
            return {key for key, value in changelog(kafka_broker.bootstrap, topic) if value is None}

        assert wait_until(lambda: released() >= viewers, 60), \
            f"states still held for {sorted(viewers - released())} after the retention ({RETENTION_S:g} s)"
        assert worker.poll() is None
        seconds = target.client.query(
            "SELECT count() FROM viewer_seconds WHERE screening_id = %(s)s AND visible = 1", {"s": screening_id})[0][0]
        assert seconds == len(viewers) * 2, "every viewer's two seconds are published before the state goes"
    finally:
        producer.close()
        stop_worker(worker)
