"""Privacy guarantees on the real parts: face crops leave Kafka with the `faces` retention window, a dead-lettered
face keeps no byte of its crop (however hostile the message), no crop byte is readable from any topic or table once
the crop retention ran, ClickHouse holds scores and ids but never pixels, opted-out seats produce nothing at the
camera host, and `moviemotion purge --screening ID` deletes a screening from every ClickHouse table and tombstones
its person states in the changelog (all checked by reading topics and tables back, not through purge's own lists)."""
from __future__ import annotations

import hashlib
import json
import time
import uuid
from datetime import datetime, timezone

import numpy as np
import pytest
from click.testing import CliRunner
from kafka import KafkaConsumer
from kafka.admin import OffsetSpec
from kafka.structs import TopicPartition

from benchmarks.load_generator import LoadSpec, encoded_tick, face_frames, sprite_crops
from infra.clickhouse.migrations import PurgeIncomplete, purge_screening
from infra.kafka_broker import admin_client
from infra.kafka_purge import TopicRetention, retention_notes
from infra.ports import free_ports
from infra.topics import DAY_MS, SEVEN_DAYS_MS, ensure_topics, person_state_changelog
from moviemotion.cli import main as cli
from moviemotion.pipeline_run import start_worker, stop_worker
from schemas.settings import Topics
from producers.camera_producer import open_kafka_producer
from producers.opt_out import OptOutList
from schemas.dead_letter import MAX_KEPT_KEY_BYTES, MAX_STRIPPED_ERROR_CHARS, dead_letter, read_dead_letter_headers
from schemas.face_frame import FaceFrame, decode_face_frame, encode_face_frame
from stream_processors.scoring import decode_batch
from tests.faults.harness import (GroundTruth, assert_matches_ground_truth, fault_settings, publish_recorded,
                                  sample_frames, until_movie_ts, wait_scored)

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


def latest_per_key(bootstrap: str, topic: str) -> dict[bytes, bytes | None]:
    """The last value of every key of a (compacted) topic, read back with a plain consumer."""
    latest = {}
    for record in read_topic(bootstrap, topic):
        latest[record.key] = record.value
    return latest


def screening_tables_seen_by_the_store(client) -> dict[str, str]:
    """{table: engine} of every table of the database with a screening_id column, any engine, views included."""
    return dict(client.query(
        "SELECT name, engine FROM system.tables WHERE database = currentDatabase() AND name IN "
        "(SELECT table FROM system.columns WHERE database = currentDatabase() AND name = 'screening_id')"))


def test_clickhouse_holds_no_pixels_and_purge_deletes_a_screening(kafka_broker, clickhouse_target, sample_screening, tmp_path):
    settings, kept = fault_settings(kafka_broker.bootstrap, clickhouse_target.settings)
    ensure_topics(settings.kafka_bootstrap, settings)  # as `moviemotion up`: the group's state changelog too
    purged = f"{kept}-purged"
    client = clickhouse_target.client
    worker = start_worker(settings, tmp_path / "worker.log")
    try:
        truths = {sid: publish_recorded(settings, sample_screening, sid, until_movie_ts(sample_frames(sample_screening), 8.0))
                  for sid in (kept, purged)}
        for sid, truth in truths.items():
            wait_scored(client, sid, truth, worker)
        time.sleep(3)  # the worker's last state changelog writes
    finally:
        stop_worker(worker)
    frame_columns = {name for name, in client.query(
        "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = 'frame_scores'")}
    assert not {c for c in frame_columns if any(word in c for word in ("crop", "pixel", "image", "face"))}
    assert pixel_sized_columns(client) == []
    # an analyst's own copy: purge must find it without being told
    client.execute("CREATE TABLE analyst_copy ENGINE = MergeTree ORDER BY (screening_id, person_key) AS "
                   "SELECT screening_id, person_key, movie_second FROM viewer_seconds")
    changelog = person_state_changelog(settings)
    before = latest_per_key(settings.kafka_bootstrap, changelog)
    keys = {sid: {key.encode() for key, _, _ in truth.sent} for sid, truth in truths.items()}
    assert keys[purged] <= {key for key, value in before.items() if value is not None}, "states not in the changelog"

    store = ["--clickhouse", settings.clickhouse_url] if settings.clickhouse_url else []
    args = ["--state-dir", str(settings.state_dir), "--bootstrap", settings.kafka_bootstrap, *store, "purge",
            "--screening", purged, "--processor-group", settings.processor_group]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    tables = screening_tables_seen_by_the_store(client)
    assert {"frame_scores", "viewer_seconds", "audience_seconds", "screenings", "analyst_copy"} <= set(tables)
    for table in tables:
        left = client.query(f"SELECT count() FROM {table} WHERE screening_id = %(s)s", {"s": purged})[0][0]
        assert left == 0, f"{left} rows of the purged screening left in {table} ({tables[table]})"
    assert client.query("SELECT count() FROM analyst_copy WHERE screening_id = %(s)s", {"s": kept})[0][0] > 0
    assert_matches_ground_truth(client, kept, truths[kept])  # the other screening is untouched

    after = latest_per_key(settings.kafka_bootstrap, changelog)
    assert {key: after[key] for key in keys[purged]} == {key: None for key in keys[purged]}, "a state not tombstoned"
    assert all(json.loads(after[key])["ids"]["screening_id"] == kept for key in keys[kept]), "a kept state was touched"
    assert f"tombstoned {len(keys[purged])} person key(s)" in result.output, result.output
    assert settings.topics.emotion_events in result.output and "gone by" in result.output, result.output
    assert f"{changelog}: older states of the tombstoned keys" in result.output and "at most 1 day" in result.output
    print(result.output)

    again = CliRunner().invoke(cli, args)  # idempotent: nothing left to tombstone
    assert again.exit_code == 0 and "tombstoned 0 person key(s)" in again.output, again.output

    # a worker restarting on the changelog recovers through the tombstones and writes no purged state back
    log = tmp_path / "restarted.log"
    worker = start_worker(settings, log)
    try:
        deadline = time.monotonic() + 180
        while "[^Worker]: Ready" not in (log.read_text(errors="replace") if log.exists() else ""):
            assert worker.poll() is None and time.monotonic() < deadline, "the worker did not restart"
            time.sleep(0.5)
        time.sleep(settings.idle_flush_s + 3)  # past the idle flush of restored open seconds
    finally:
        stop_worker(worker)
    assert "Traceback" not in log.read_text(errors="replace")
    final = latest_per_key(settings.kafka_bootstrap, changelog)
    assert {key: final[key] for key in keys[purged]} == {key: None for key in keys[purged]}, "a purged state came back"


def test_purge_fails_loudly_on_a_table_it_cannot_delete_from(clickhouse_target):
    client = clickhouse_target.client
    client.execute("CREATE TABLE export_log (screening_id String, person_key String) ENGINE = Log")
    client.insert("export_log", [{"screening_id": "scr-x", "person_key": "scr-x|t|A1"}])
    client.insert("screenings", [{"screening_id": "scr-x", "film_id": "f", "film_title": "F", "theater_id": "t",
                                  "starts_at": datetime(2026, 1, 1, tzinfo=timezone.utc), "seats": 1, "notes": ""}])
    with pytest.raises(PurgeIncomplete, match="export_log") as refused:
        purge_screening(client, "scr-x")
    assert "screenings" in refused.value.deleted and set(refused.value.refused) == {"export_log"}
    assert client.query("SELECT count() FROM screenings WHERE screening_id = 'scr-x'")[0][0] == 0

    settings = clickhouse_target.settings
    store = ["--clickhouse", settings.clickhouse_url] if settings.clickhouse_url else []
    base = ["--state-dir", str(settings.state_dir), "--bootstrap", f"127.0.0.1:{free_ports(1)[0]}", *store]
    result = CliRunner().invoke(cli, [*base, "purge", "--screening", "scr-x", "--skip-kafka"])
    assert result.exit_code != 0 and "export_log (engine Log)" in result.output, result.output


def test_purge_deletes_nothing_when_the_changelog_cannot_be_read(clickhouse_target):
    client = clickhouse_target.client
    client.insert("screenings", [{"screening_id": "scr-y", "film_id": "f", "film_title": "F", "theater_id": "t",
                                  "starts_at": datetime(2026, 1, 1, tzinfo=timezone.utc), "seats": 1, "notes": ""}])
    settings = clickhouse_target.settings
    store = ["--clickhouse", settings.clickhouse_url] if settings.clickhouse_url else []
    base = ["--state-dir", str(settings.state_dir), "--bootstrap", f"127.0.0.1:{free_ports(1)[0]}", *store]
    result = CliRunner().invoke(cli, [*base, "purge", "--screening", "scr-y", "--timeout", "5"])
    assert result.exit_code != 0 and "no Kafka broker answered" in result.output, result.output
    assert "nothing was deleted" in result.output and "--skip-kafka" in result.output
    assert client.query("SELECT count() FROM screenings WHERE screening_id = 'scr-y'")[0][0] == 1
    skipped = CliRunner().invoke(cli, [*base, "purge", "--screening", "scr-y", "--skip-kafka"])
    assert skipped.exit_code == 0 and "NOT purged (--skip-kafka)" in skipped.output, skipped.output
    assert client.query("SELECT count() FROM screenings WHERE screening_id = 'scr-y'")[0][0] == 0


def test_retention_notes_say_when_kafka_drops_what_purge_cannot():
    now = datetime(2026, 12, 2, 5, 0, tzinfo=timezone.utc)
    week = TopicRetention("events", "delete", SEVEN_DAYS_MS, 24 * 3600 * 1000, 86_400_000, 2 ** 63 - 1)
    faces = TopicRetention("faces", "delete", 15 * 60 * 1000, 5 * 60 * 1000, 86_400_000, 2 ** 63 - 1)
    changelog = TopicRetention("cl", "compact", -1, SEVEN_DAYS_MS, 86_400_000, 2 ** 63 - 1)
    notes = retention_notes({"events": week, "faces": faces, "cl": changelog, "dead": "TopicAuthorizationFailed"},
                            "faces", "events", "dead", "cl", now, check_ms=0)
    assert notes[0].startswith("events:") and "at most 8 days" in notes[0] and "gone by 2026-12-10 05:00 UTC" in notes[0]
    assert notes[1].startswith("dead:") and "could not be read (TopicAuthorizationFailed)" in notes[1]
    assert "at most 20 min" in notes[2] and "gone by 2026-12-02 05:20 UTC" in notes[2]
    assert notes[3].startswith("cl:") and "no max.compaction.lag.ms bounds that" in notes[3]
    bounded = TopicRetention("cl", "compact", -1, SEVEN_DAYS_MS, 86_400_000, 24 * 3600 * 1000)
    note = retention_notes({"cl": bounded}, "faces", "events", "dead", "cl", now, check_ms=0)[3]
    assert "at most 1 day after" in note and "by 2026-12-03 05:00 UTC" in note, note


# -- dead letters keep no crop -------------------------------------------------------------------------------

WINDOW = 32  # a crop "is in" a blob when any aligned 32-byte piece of it is (noise crops: no piece repeats)


def noise_crop(rng: np.random.Generator, side: int = 48) -> np.ndarray:
    return rng.integers(0, 256, (side, side), dtype=np.uint8)


def crop_pieces(crops) -> list[bytes]:
    pieces = []
    for crop in crops:
        data = crop.tobytes() if isinstance(crop, np.ndarray) else bytes(crop)
        pieces += [data[i:i + WINDOW] for i in range(0, len(data) - WINDOW + 1, WINDOW)]
    return pieces


def record_bytes(record) -> bytes:
    """Everything a reader of a Kafka record gets: key, value and headers."""
    headers = b"".join(str(k).encode() + (v or b"") for k, v in (record.headers or ()))
    return (record.key or b"") + b"\0" + (record.value or b"") + b"\0" + headers


def with_crop(frame: FaceFrame, crop: np.ndarray) -> FaceFrame:
    fields = {name: getattr(frame, name) for name in ("screening_id", "theater_id", "camera_id", "seat_id", "track_id",
                                                      "frame_id", "captured_us", "movie_ts", "bbox", "landmarks",
                                                      "detection_score", "yaw_deg", "pitch_deg")}
    return FaceFrame(**fields, crop=crop)


def hostile_faces(frame: FaceFrame, rng: np.random.Generator) -> tuple[list[tuple[str, bytes | None, bytes]], list]:
    """(kind, key, value) of `faces` messages that must be dead-lettered, and the crops they smuggle."""
    bare, wrong, beyond, in_key, keyed = (noise_crop(rng), noise_crop(rng, 64), noise_crop(rng), noise_crop(rng),
                                          noise_crop(rng))
    key = frame.person_key.encode()
    messages = [
        ("a bare crop", key, bare.tobytes()),
        ("a crop the model cannot take", key, encode_face_frame(with_crop(frame, wrong))),
        ("a crop past the frame's end", key, encode_face_frame(frame) + beyond.tobytes()),
        ("a crop as the key", in_key.tobytes(), b"not a face frame"),
        ("a valid frame keyed by its crop", keyed.tobytes(), encode_face_frame(with_crop(frame, keyed))),
    ]
    return messages, [bare, wrong, beyond, in_key, keyed]


def test_a_face_dead_letter_keeps_no_byte_that_could_be_a_crop():
    rng = np.random.default_rng(16)
    frame = face_frames(LoadSpec("scr-dl", faces_per_s=5, cameras=1, seats_per_camera=1), sprite_crops(), 0,
                        time.time_ns() // 1000)[0]
    messages, crops = hostile_faces(frame, rng)
    printable_crop = bytes(rng.integers(32, 127, 48 * 48, dtype=np.uint8))  # a crop that is also "text"
    messages += [("a crop as a long printable key", printable_crop, b"x"), ("a crop in the error text", None, b"y")]
    crops.append(printable_crop)
    for kind, key, value in messages:
        error = printable_crop.decode() if kind == "a crop in the error text" else "bad_magic: not a FaceFrame"
        letter = dead_letter(key, value, "bad_magic", error, "faces", 3, 7, keep_payload=False)
        blob = record_bytes(letter)
        assert letter.value == b"", kind
        allowed = error[:MAX_STRIPPED_ERROR_CHARS].encode()  # the error's head is kept: the documented bound
        assert not [piece for piece in crop_pieces(crops) if piece in blob and piece not in allowed], kind
        info = read_dead_letter_headers(letter.headers)
        assert (info["payload"], info["reason"], info["partition"], info["offset"]) == ("stripped", "bad_magic", 3, 7)
        assert (info["value_bytes"], info["value_sha256"]) == (len(value), hashlib.sha256(value).hexdigest()), kind
        assert len(info["error"]) <= MAX_STRIPPED_ERROR_CHARS
        kept = len(letter.key or b"") + len(info["error"].encode())
        assert kept <= MAX_KEPT_KEY_BYTES + MAX_STRIPPED_ERROR_CHARS < 48 * 48 // 4, kind
        if key is not None and len(key) > MAX_KEPT_KEY_BYTES:
            assert letter.key is None and info["key_sha256"] == hashlib.sha256(key).hexdigest(), kind
    person = dead_letter(frame.person_key.encode(), b"junk", "bad_magic", "e", "faces", 0, 0, keep_payload=False)
    assert person.key == frame.person_key.encode()  # a person key stays: the letter says whose message it was
    event = dead_letter(b"k", b'{"schema_version": 99}', "unknown_version", "e", "emotion-events", 0, 1, keep_payload=True)
    assert (event.key, event.value, read_dead_letter_headers(event.headers)["payload"]) == (b"k", b'{"schema_version": 99}', "original")


def test_a_face_keyed_by_anything_but_its_person_key_is_rejected():
    frames = face_frames(LoadSpec("scr-key", faces_per_s=5, cameras=1, seats_per_camera=2), sprite_crops(), 0,
                         time.time_ns() // 1000)
    values = [encode_face_frame(frame) for frame in frames] * 2
    crop = frames[0].crop.tobytes()
    keys = [frame.person_key.encode() for frame in frames] + [crop, None]
    decoded, rejected = decode_batch(values, 48, keys)
    assert [index for index, _ in decoded] == [0, 1]
    assert [(bad.index, bad.reason) for bad in rejected] == [(2, "bad_value"), (3, "bad_value")]
    assert "person key" in rejected[0].error and crop.hex()[:16] not in rejected[0].error


def read_topic(bootstrap: str, topic: str, timeout_s: float = 60) -> list:
    """Every record of `topic` up to its end offsets now, with a plain consumer (no group)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             max_partition_fetch_bytes=32 * 1024 * 1024, fetch_max_bytes=64 * 1024 * 1024)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not tps:
            return []
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        records, deadline = [], time.monotonic() + timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            assert time.monotonic() < deadline, f"{topic} not read to its end in {timeout_s}s"
            for tp, batch in consumer.poll(timeout_ms=500).items():
                records += [r for r in batch if r.offset < ends[tp]]
        return records
    finally:
        consumer.close()


def every_topic(bootstrap: str) -> list[str]:
    with admin_client(bootstrap, 15) as admin:
        return sorted(admin.list_topics())


def topics_holding(bootstrap: str, topics: list[str], pieces: list[bytes]) -> dict[str, int]:
    found = {}
    for topic in topics:
        hits = sum(1 for record in read_topic(bootstrap, topic) if any(p in record_bytes(record) for p in pieces))
        if hits:
            found[topic] = hits
    return found


def tables_holding(client, pieces: list[bytes]) -> dict[str, int]:
    """{table.column: rows} of every table (system.tables, not a list of ours) holding a crop piece, read as hex."""
    hex_pieces = [piece.hex().upper() for piece in pieces]
    columns = client.query(
        "SELECT c.table, c.name FROM system.columns AS c WHERE c.database = currentDatabase() AND c.table IN "
        "(SELECT name FROM system.tables WHERE database = currentDatabase() AND engine NOT IN ('View', 'MaterializedView'))")
    found = {}
    for table, column in columns:
        cells = client.query(f"SELECT hex(toString(`{column}`)) FROM `{table}`")
        hits = sum(1 for (cell,) in cells if any(piece in cell for piece in hex_pieces))
        if hits:
            found[f"{table}.{column}"] = hits
    return found


@pytest.mark.slow
def test_no_crop_byte_is_readable_from_any_topic_or_table_after_the_crop_retention(own_broker, clickhouse_factory, tmp_path):
    target = clickhouse_factory("chdb")
    short = target.settings.with_overrides(kafka_bootstrap=own_broker.bootstrap, faces_retention_ms=RETENTION_MS)
    faces_partitions = ensure_topics(own_broker.bootstrap, short)[short.topics.faces]["partitions"]
    settings, screening_id = fault_settings(own_broker.bootstrap, short)
    changelog = ensure_topics(own_broker.bootstrap, settings)[person_state_changelog(settings)]  # as `moviemotion up`
    assert changelog["configs"]["max.compaction.lag.ms"] == str(DAY_MS)
    topics = settings.topics
    rng = np.random.default_rng(1516)
    crops = np.stack([noise_crop(rng) for _ in range(6)])
    valid = [f for tick in range(15) for f in face_frames(LoadSpec(screening_id, faces_per_s=30, cameras=1, seats_per_camera=6),
                                                           crops, tick, time.time_ns() // 1000 + tick * 200_000)]
    hostile, smuggled = hostile_faces(valid[0], rng)
    pieces = crop_pieces(list(crops) + smuggled)
    log = tmp_path / "worker.log"
    worker = start_worker(settings, log)
    producer = open_kafka_producer(settings.kafka_bootstrap)
    try:  # crops produced before the worker reads `faces` could expire unread (10 s retention)
        deadline = time.monotonic() + 180
        while "[^Worker]: Ready" not in (log.read_text(errors="replace") if log.exists() else ""):
            assert worker.poll() is None and time.monotonic() < deadline, "the worker did not start"
            time.sleep(0.5)
        for frame in valid:
            producer.send(topics.faces, key=frame.person_key.encode(), value=encode_face_frame(frame))
        for _, key, value in hostile:
            producer.send(topics.faces, key=key, value=value)
        producer.flush(timeout=30)
        captured = time.monotonic()
        assert topics_holding(settings.kafka_bootstrap, [topics.faces], pieces)  # younger than the 10 s retention
        wait_scored(target.client, screening_id, GroundTruth(tuple((f.person_key, f.frame_id, f.movie_ts) for f in valid)), worker)
        deadline = time.monotonic() + 60
        while len(letters := read_topic(settings.kafka_bootstrap, topics.dead_letters)) < len(hostile):
            assert time.monotonic() < deadline, f"{len(letters)} of {len(hostile)} hostile faces dead-lettered"
            time.sleep(1)
        time.sleep(3)  # the worker's last state changelog writes
    finally:
        producer.close(timeout=30)
        stop_worker(worker)

    assert len(letters) == len(hostile)
    for letter in letters:
        info = read_dead_letter_headers(letter.headers)
        assert (letter.value, info["payload"], info["source_topic"]) == (b"", "stripped", topics.faces)
    assert sorted(read_dead_letter_headers(l.headers)["value_sha256"] for l in letters) == sorted(
        hashlib.sha256(value).hexdigest() for _, _, value in hostile)
    everywhere = every_topic(settings.kafka_bootstrap)
    assert person_state_changelog(settings) in everywhere and topics.emotion_events in everywhere
    # right away, only `faces` may hold crops: not the dead letters, events, state changelog, offsets or any table
    assert topics_holding(settings.kafka_bootstrap, everywhere, pieces).keys() <= {topics.faces}
    assert tables_holding(target.client, pieces) == {}

    began = time.monotonic()
    while retained_offsets(settings.kafka_bootstrap, topics.faces, faces_partitions) and time.monotonic() - began < RETENTION_WAIT_S:
        time.sleep(2)
    waited = time.monotonic() - began
    assert topics_holding(settings.kafka_bootstrap, everywhere, pieces) == {}, f"crop bytes left after {waited:.0f}s"
    assert tables_holding(target.client, pieces) == {}
    print(f"no crop byte in any of {len(everywhere)} topics or any table {time.monotonic() - captured:.0f}s after "
          f"capture (waited {waited:.0f}s for retention; faces retention {RETENTION_MS} ms, broker check every 60 s)")
