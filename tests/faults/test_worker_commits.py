"""A commit never passes a frame that is still being stored (faust-streaming issue #606's off-by-one).

The store is stopped (the embedded store daemon), then one viewer's valid frame and, right after it on the same
partition, a malformed message go to `faces`. The malformed one is dead-lettered at once while the valid frame's
rows wait for the store. Faust's committable-offset rule lets an acked offset directly after the committed one
through, so acking the dead letter at once committed past the unstored frame: a crash then lost it. The worker
acks every message of `faces` in offset order, after everything before it is stored.
"""
from __future__ import annotations

import time
import uuid

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from benchmarks.load_generator import LoadSpec, face_frames, sprite_crops
from infra.clickhouse.client import connect
from infra.clickhouse.service import start_store, stop_store
from infra.topics import read_start_offsets
from moviemotion.pipeline_run import start_worker, stop_worker, wait_until
from schemas.face_frame import encode_face_frame
from tests.faults.harness import count_frames, fault_settings, wait_for_frames

pytestmark = [pytest.mark.faults, pytest.mark.kafka, pytest.mark.slow]

COMMIT_WAIT_S = 6.0  # several commit intervals (1 s): time for a wrong commit to happen


def committed_offset(bootstrap: str, group: str, tp: TopicPartition) -> int:
    """Where the group reads `tp` from: its committed offset (the log start before the first commit)."""
    return read_start_offsets(bootstrap, group, tp.topic)[tp.partition]


def dead_letter_count(bootstrap: str, topic: str, key: bytes, starts: dict) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=2000)
    try:
        consumer.assign(list(starts))
        for tp, offset in starts.items():
            consumer.seek(tp, offset)
        return sum(1 for record in consumer if record.key == key)
    finally:
        consumer.close()


def test_a_dead_letter_acked_at_once_never_commits_past_a_frame_still_being_stored(
        kafka_broker, clickhouse_factory, tmp_path):
    target = clickhouse_factory("chdb")
    settings, screening_id = fault_settings(kafka_broker.bootstrap, target.settings)
    spec = LoadSpec(screening_id=screening_id, cameras=1, seats_per_camera=1)
    crops = sprite_crops()
    frames = [face_frames(spec, crops, tick, time.time_ns() // 1000)[0] for tick in range(2)]
    key = frames[0].person_key.encode()
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap, acks="all")
    dead = settings.topics.dead_letters
    probe = KafkaConsumer(bootstrap_servers=kafka_broker.bootstrap)
    dead_starts = {tp: probe.end_offsets([tp])[tp] for tp in
                   (TopicPartition(dead, p) for p in sorted(probe.partitions_for_topic(dead)))}
    probe.close()
    worker = start_worker(settings, tmp_path / "worker.log")
    try:
        first = producer.send(settings.topics.faces, key=key, value=encode_face_frame(frames[0])).get(30)
        wait_for_frames(target.client, screening_id, 1, [worker])
        tp = TopicPartition(settings.topics.faces, first.partition)
        assert wait_until(lambda: committed_offset(kafka_broker.bootstrap, settings.processor_group, tp) == first.offset + 1, 30)

        assert stop_store(settings)  # the next frame's rows wait (the sink retries) until the store is back
        pending = producer.send(settings.topics.faces, key=key, value=encode_face_frame(frames[1])).get(30)
        malformed = producer.send(settings.topics.faces, key=key, value=b"not a face frame " + uuid.uuid4().bytes).get(30)
        assert (pending.partition, malformed.partition) == (tp.partition, tp.partition)
        assert malformed.offset == pending.offset + 1
        assert wait_until(lambda: dead_letter_count(kafka_broker.bootstrap, dead, key, dead_starts) == 1, 60), \
            "the malformed message was not dead-lettered"
        time.sleep(COMMIT_WAIT_S)
        committed = committed_offset(kafka_broker.bootstrap, settings.processor_group, tp)
        print(f"committed offset while the frame at {pending.offset} waits for the store: {committed}")
        assert committed <= pending.offset, \
            f"committed {committed}: past the frame at offset {pending.offset} that is not stored yet"

        start_store(settings)
        with connect(settings) as client:  # the restarted daemon may listen on another port
            assert wait_until(lambda: count_frames(client, screening_id) == 2, 90), "the waiting frame was not stored"
        assert wait_until(lambda: committed_offset(kafka_broker.bootstrap, settings.processor_group, tp)
                          == malformed.offset + 1, 60), "the offsets did not move on after the store came back"
    finally:
        producer.close()
        stop_worker(worker)
