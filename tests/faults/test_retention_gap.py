"""A worker whose group's committed `faces` offsets fell below the log start (retention deleted crops it never
read, e.g. it was stopped for longer than the crop retention) resumes at the log start: the frames still in Kafka
are scored once, the deleted ones are gone. The offset guard used to expect the committed offset, rewind to it,
and be handed the first surviving record again, forever: nothing was scored."""
from __future__ import annotations

import time
import uuid

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import OffsetSpec
from kafka.structs import OffsetAndMetadata

from benchmarks.load_generator import LoadSpec, face_frames, sprite_crops
from infra.topics import ensure_topics, read_start_offsets
from moviemotion.pipeline_run import stop_worker, wait_until
from schemas.face_frame import encode_face_frame
from tests.faults.harness import start_fault_worker

pytestmark = [pytest.mark.faults, pytest.mark.kafka, pytest.mark.slow]


def test_worker_resumes_at_the_log_start_after_retention_deleted_past_its_commit(own_broker, clickhouse_factory, tmp_path):
    target = clickhouse_factory("chdb")
    settings = target.settings.with_overrides(kafka_bootstrap=own_broker.bootstrap,
                                              processor_group=f"gap-{uuid.uuid4().hex[:8]}")
    bootstrap, faces = settings.kafka_bootstrap, settings.topics.faces
    ensure_topics(bootstrap, settings)
    spec = LoadSpec(settings.processor_group, faces_per_s=30.0, cameras=1, seats_per_camera=6)
    crops, now_us = sprite_crops(), time.time_ns() // 1000
    frames = [frame for tick in range(40) for frame in face_frames(spec, crops, tick, now_us + tick * 200_000)]
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    placed = [producer.send(faces, key=f.person_key.encode(), value=encode_face_frame(f)) for f in frames]
    producer.flush(30)
    producer.close()
    where = [future.get(10) for future in placed]

    # The group read nothing yet (committed 0 everywhere); then retention deletes the first half of each partition.
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=settings.processor_group, enable_auto_commit=False)
    partitions = [TopicPartition(faces, p) for p in sorted(consumer.partitions_for_topic(faces))]
    consumer.commit({tp: OffsetAndMetadata(0, "", -1) for tp in partitions})
    consumer.close()
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    ends = {tp.partition: info.offset for tp, info in admin.list_partition_offsets(
        {tp: OffsetSpec.LATEST for tp in partitions}).items()}
    cut = {p: end // 2 for p, end in ends.items()}
    admin.delete_records({TopicPartition(faces, p): offset for p, offset in cut.items() if offset > 0})
    admin.close()
    assert read_start_offsets(bootstrap, settings.processor_group, faces) == cut
    surviving = {(f.person_key, f.frame_id) for f, meta in zip(frames, where) if meta.offset >= cut[meta.partition]}
    assert 0 < len(surviving) < len(frames)

    worker = start_fault_worker(settings, tmp_path, "worker")
    params = {"s": settings.processor_group}
    stored = lambda: {tuple(row) for row in target.client.query(  # noqa: E731
        "SELECT person_key, frame_id FROM frame_scores WHERE screening_id = %(s)s", params)}
    try:
        assert wait_until(lambda: stored() == surviving, timeout_s=120), \
            f"{len(stored())} of {len(surviving)} surviving frames scored"
        time.sleep(3)  # and nothing more arrives: the deleted frames are gone, none is scored twice
    finally:
        stop_worker(worker)
    assert target.client.query("SELECT count() FROM frame_scores WHERE screening_id = %(s)s", params)[0][0] == len(surviving)
