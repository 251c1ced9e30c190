"""Privacy guarantees on the real parts: face crops leave Kafka with the `faces` retention window, ClickHouse
holds scores and ids but never pixels, opted-out seats produce nothing at the camera host, and
`moviemotion purge --screening ID` deletes a screening from both stores."""
from __future__ import annotations

import time
import uuid

import pytest
from click.testing import CliRunner
from kafka import KafkaConsumer
from kafka.admin import OffsetSpec
from kafka.structs import TopicPartition

from benchmarks.load_generator import LoadSpec, encoded_tick, sprite_crops
from infra.kafka_broker import admin_client
from infra.topics import ensure_topics
from moviemotion.cli import main as cli
from moviemotion.pipeline_run import start_worker, stop_worker
from moviemotion.settings import Topics
from producers.camera_producer import open_kafka_producer
from producers.opt_out import OptOutList
from schemas.face_frame import decode_face_frame
from tests.faults.harness import (assert_matches_ground_truth, fault_settings, publish_recorded, sample_frames,
                                  until_movie_ts, wait_scored)

pytestmark = pytest.mark.kafka

RETENTION_MS = 10_000
# The broker checks retention every 60 s (log.retention.check.interval.ms), then the window itself.
RETENTION_WAIT_S = 60 + RETENTION_MS / 1000 + 30
CROP_BYTES = 48 * 48


def private_topics(settings, **overrides):
    tag = uuid.uuid4().hex[:8]
    topics = Topics(faces=f"faces-privacy-{tag}", emotion_events=f"events-privacy-{tag}", dead_letters=f"dead-privacy-{tag}")
    return settings.with_overrides(topics=topics, **overrides)


def read_from_beginning(bootstrap: str, topic: str, idle_ms: int = 3000) -> list:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False,
                             group_id=None, consumer_timeout_ms=idle_ms)
    try:
        return list(consumer)
    finally:
        consumer.close()


def retained_offsets(bootstrap: str, topic: str, partitions: int) -> int:
    """Messages still held: sum over partitions of (end offset - log start offset)."""
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    with admin_client(bootstrap, 15) as admin:
        start = admin.list_partition_offsets({tp: OffsetSpec.EARLIEST for tp in tps})
        end = admin.list_partition_offsets({tp: OffsetSpec.LATEST for tp in tps})
    return sum(end[tp].offset - start[tp].offset for tp in tps)


@pytest.mark.slow
def test_face_crops_are_gone_from_kafka_after_the_retention_window(kafka_broker):
    settings = private_topics(kafka_broker.settings, faces_retention_ms=RETENTION_MS)
    described = ensure_topics(settings.kafka_bootstrap, settings)[settings.topics.faces]
    assert int(described["configs"]["retention.ms"]) == RETENTION_MS
    assert int(described["configs"]["segment.ms"]) <= RETENTION_MS
    spec = LoadSpec("privacy-retention", faces_per_s=30, cameras=1, seats_per_camera=6)
    producer = open_kafka_producer(settings.kafka_bootstrap)
    crops = sprite_crops()
    try:
        for tick in range(10):
            for key, value in encoded_tick(spec, crops, tick):
                producer.send(settings.topics.faces, key=key, value=value)
        producer.flush(timeout=30)
    finally:
        producer.close(timeout=30)
    assert len(read_from_beginning(settings.kafka_bootstrap, settings.topics.faces)) == 60

    deadline = time.monotonic() + RETENTION_WAIT_S
    while retained_offsets(settings.kafka_bootstrap, settings.topics.faces, described["partitions"]) and time.monotonic() < deadline:
        time.sleep(2)
    assert retained_offsets(settings.kafka_bootstrap, settings.topics.faces, described["partitions"]) == 0, \
        f"crops still in {settings.topics.faces} {RETENTION_WAIT_S:.0f}s after a {RETENTION_MS} ms retention"
    assert read_from_beginning(settings.kafka_bootstrap, settings.topics.faces) == []


def test_opted_out_seats_produce_nothing(kafka_broker, sample_screening):
    settings = private_topics(kafka_broker.settings)
    ensure_topics(settings.kafka_bootstrap, settings)
    opted_out = frozenset(sample_screening.seats[1::3])
    truth = publish_recorded(settings, sample_screening, "privacy-opt-out",
                             until_movie_ts(sample_frames(sample_screening), 10.0), OptOutList(opted_out))
    records = read_from_beginning(settings.kafka_bootstrap, settings.topics.faces)
    assert len(records) == len(truth.sent) > 0
    seats = {decode_face_frame(r.value).seat_id for r in records}
    assert seats == set(sample_screening.seats) - opted_out
    for seat in opted_out:
        assert not any(f"|{seat}".encode() in (r.key or b"") + r.value for r in records), f"{seat} left the camera host"


def pixel_sized_columns(client) -> list[tuple]:
    """(table, column, type, longest value) of every column that could hold a crop: arrays and long strings."""
    columns = client.query(
        "SELECT c.table, c.name, c.type FROM system.columns AS c "
        "WHERE c.database = currentDatabase() AND c.table IN (SELECT name FROM system.tables "
        "WHERE database = currentDatabase() AND engine LIKE '%MergeTree') ORDER BY c.table, c.name")
    found = []
    for table, name, ch_type in columns:
        if "Array" in ch_type or "Map" in ch_type or "Tuple" in ch_type:
            found.append((table, name, ch_type, None))
        elif "String" in ch_type:
            longest = client.query(f"SELECT max(length({name})) FROM {table}")[0][0] or 0
            if longest >= CROP_BYTES // 4:
                found.append((table, name, ch_type, longest))
    return found


def test_clickhouse_holds_no_pixels_and_purge_deletes_a_screening(kafka_broker, clickhouse_target, sample_screening, tmp_path):
    settings, kept = fault_settings(kafka_broker.bootstrap, clickhouse_target.settings)
    purged = f"{kept}-purged"
    client = clickhouse_target.client
    worker = start_worker(settings, tmp_path / "worker.log")
    try:
        truths = {sid: publish_recorded(settings, sample_screening, sid, until_movie_ts(sample_frames(sample_screening), 8.0))
                  for sid in (kept, purged)}
        for sid, truth in truths.items():
            wait_scored(client, sid, truth, worker)
    finally:
        stop_worker(worker)
    frame_columns = {name for name, in client.query(
        "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = 'frame_scores'")}
    assert not {c for c in frame_columns if any(word in c for word in ("crop", "pixel", "image", "face"))}
    assert pixel_sized_columns(client) == []

    store = ["--clickhouse", settings.clickhouse_url] if settings.clickhouse_url else []
    result = CliRunner().invoke(cli, ["--state-dir", str(settings.state_dir), *store, "purge", "--screening", purged])
    assert result.exit_code == 0, result.output
    tables = [name for name, in client.query(
        "SELECT name FROM system.tables WHERE database = currentDatabase() AND engine LIKE '%MergeTree' "
        "AND name IN (SELECT table FROM system.columns WHERE database = currentDatabase() AND name = 'screening_id')")]
    assert {"frame_scores", "viewer_seconds", "audience_seconds"} <= set(tables)
    for table in tables:
        left = client.query(f"SELECT count() FROM {table} WHERE screening_id = %(s)s", {"s": purged})[0][0]
        assert left == 0, f"{left} rows of the purged screening left in {table}"
    assert_matches_ground_truth(client, kept, truths[kept])  # the other screening is untouched
