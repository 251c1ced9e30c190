"""The camera producer against a real Kafka broker: everything published is read back (kafka-python and
Kafka's own console consumer), per-seat keys and order hold, opted-out seats send nothing, and bad input
(truncated video, wrong seat map, unreadable file, broker down, SIGTERM) ends with one clear outcome."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from click.testing import CliRunner
from kafka import KafkaConsumer

from infra.kafka_broker import admin_client
from infra.kafka_tools import console_consumer
from moviemotion.cli import main as cli
from producers.camera_producer import BrokerUnavailable, CameraConfig, CameraProducer, open_kafka_producer
from producers.opt_out import parse_opt_out
from producers.seat_map import load_seat_map
from producers.sources import SourceError, open_source
from schemas.face_frame import decode_face_frame, person_key_of
from tests.fixtures.kafka import free_port

pytestmark = pytest.mark.kafka

READ_TIMEOUT_S = 60.0


def new_topic(bootstrap: str, partitions: int = 12) -> str:
    name = f"faces-test-{uuid.uuid4().hex[:10]}"
    with admin_client(bootstrap, 30) as admin:
        admin.create_topics({name: {"num_partitions": partitions, "replication_factor": 1}}, timeout_ms=30_000)
        admin.wait_for_topics([name], timeout_ms=30_000)
    return name


def read_all(bootstrap: str, topic: str, expected: int, timeout_s: float = READ_TIMEOUT_S) -> list:
    """Every record of `topic` with kafka-python, waiting until `expected` arrived (or timeout_s passed)."""
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, group_id=None, consumer_timeout_ms=2000)
    records = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=1000)
            for part in batch.values():
                records.extend(part)
            if len(records) >= expected and not batch:
                break
    finally:
        consumer.close()
    return records


def publish_sample(kafka_broker, sample, fps: float, opt_out: str = "", video=None) -> tuple[str, object]:
    topic = new_topic(kafka_broker.bootstrap)
    camera = CameraProducer(CameraConfig(sample.screening_id, sample.theater_id, sample.camera_id),
                            load_seat_map(sample.seat_map_path), parse_opt_out(opt_out))
    producer = open_kafka_producer(kafka_broker.bootstrap, timeout_s=15)
    try:
        stats = camera.publish(open_source(str(video or sample.video_path), fps), producer, topic)
    finally:
        producer.close(timeout=15)
    return topic, stats


@pytest.fixture(scope="module")
def published(kafka_broker, sample_screening):
    return publish_sample(kafka_broker, sample_screening, fps=5)


def test_every_face_is_read_back_with_person_keys_in_order(kafka_broker, sample_screening, published):
    topic, stats = published
    records = read_all(kafka_broker.bootstrap, topic, stats.published)
    assert stats.delivery_errors == 0 and stats.frames == sample_screening.duration_s * 5
    assert len(records) == stats.published > 0
    frames_by_key = defaultdict(list)
    partitions_by_key = defaultdict(set)
    for record in records:
        face = decode_face_frame(record.value)
        assert record.key.decode() == face.person_key
        assert (face.screening_id, face.theater_id, face.camera_id) == (
            sample_screening.screening_id, sample_screening.theater_id, sample_screening.camera_id)
        assert face.crop.shape == (48, 48)
        frames_by_key[face.person_key].append(face.frame_id)
        partitions_by_key[face.person_key].add(record.partition)
    expected_keys = {person_key_of(sample_screening.screening_id, sample_screening.theater_id, seat)
                     for seat in sample_screening.seats}
    assert set(frames_by_key) == expected_keys
    for key, frame_ids in frames_by_key.items():
        assert len(partitions_by_key[key]) == 1, key
        assert frame_ids == sorted(set(frame_ids)), f"{key}: per-key frame order broken"


def test_published_faces_match_the_ground_truth(kafka_broker, sample_screening, published):
    topic, stats = published
    faces = [decode_face_frame(r.value) for r in read_all(kafka_broker.bootstrap, topic, stats.published)]
    with open(sample_screening.ground_truth_path, newline="") as f:
        visible = {(r["seat_id"], int(r["second"])): r["visible"] == "1" for r in csv.DictReader(f)}
    per_seat = Counter(face.seat_id for face in faces)
    for face in faces:
        assert visible[(face.seat_id, int(face.movie_ts))], f"{face.seat_id} sent while out of view at {face.movie_ts}"
    for seat in sample_screening.seats:
        visible_frames = 5 * sum(visible[(seat, s)] for s in range(int(sample_screening.duration_s)))
        assert per_seat[seat] >= 0.95 * visible_frames, seat
    # One track per seated viewer: the tracker keeps ids stable through expression changes.
    tracks = {seat: {f.track_id for f in faces if f.seat_id == seat} for seat in sample_screening.seats}
    assert all(len(ids) <= 4 for ids in tracks.values()), tracks


def test_kafka_console_consumer_sees_the_same_keys_and_count(kafka_broker, published):
    topic, stats = published
    pairs = console_consumer(kafka_broker.jars_dir, kafka_broker.bootstrap, topic, max_messages=stats.published,
                             timeout_s=30)
    records = read_all(kafka_broker.bootstrap, topic, stats.published)
    assert len(pairs) == stats.published
    assert Counter(key for key, _ in pairs) == Counter(r.key for r in records)
    assert sorted(value for _, value in pairs) == sorted(r.value for r in records)


def test_opted_out_seats_send_nothing(kafka_broker, sample_screening):
    opted = {"A2", "A5"}
    topic, stats = publish_sample(kafka_broker, sample_screening, fps=2, opt_out="A2\n# row A\nA5\n")
    records = read_all(kafka_broker.bootstrap, topic, stats.published)
    seats = {decode_face_frame(r.value).seat_id for r in records}
    assert len(records) == stats.published > 0
    assert seats == set(sample_screening.seats) - opted
    assert not any(r.key.decode().endswith(tuple(f"|{seat}" for seat in opted)) for r in records)
    assert stats.dropped_opt_out > 0


def test_a_camera_lost_mid_stream_flushes_what_it_sent_then_errors(kafka_broker, sample_screening, tmp_path):
    data = sample_screening.video_path.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 3])
    topic = new_topic(kafka_broker.bootstrap)
    camera = CameraProducer(CameraConfig(sample_screening.screening_id, sample_screening.theater_id,
                                         sample_screening.camera_id), load_seat_map(sample_screening.seat_map_path))
    producer = open_kafka_producer(kafka_broker.bootstrap, timeout_s=15)
    try:
        with pytest.raises(SourceError, match="truncated"):
            camera.publish(open_source(str(cut), fps=2), producer, topic)
    finally:
        producer.close(timeout=15)
    assert camera.stats.published > 0
    assert len(read_all(kafka_broker.bootstrap, topic, camera.stats.published)) == camera.stats.published


def test_broker_down_at_start_is_a_clear_error_within_the_timeout():
    began = time.monotonic()
    with pytest.raises(BrokerUnavailable, match="not reachable within 2s"):
        open_kafka_producer(f"127.0.0.1:{free_port()}", timeout_s=2)
    assert time.monotonic() - began < 15


def run_cli(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def produce_args(sample, source: str, seat_map: str, bootstrap: str, *extra: str) -> list[str]:
    return ["--bootstrap", bootstrap, "produce", "--source", source, "--camera", sample.camera_id,
            "--screening", sample.screening_id, "--theater", sample.theater_id, "--seat-map", seat_map,
            "--broker-timeout", "2", *extra]


@pytest.mark.parametrize("case", ["unreadable-video", "wrong-frame-size", "broker-down", "missing-opt-out"])
def test_cli_bad_input_is_one_clear_error(case, sample_screening, tmp_path):
    source, seat_map = str(sample_screening.video_path), str(sample_screening.seat_map_path)
    bootstrap, extra, expected = f"127.0.0.1:{free_port()}", [], ""
    if case == "unreadable-video":
        source = str(tmp_path / "junk.avi")
        (tmp_path / "junk.avi").write_bytes(b"\0not a video" * 1000)
        expected = "cannot open video file"
    elif case == "wrong-frame-size":
        seat_map = str(tmp_path / "small.json")
        wrong = json.loads(sample_screening.seat_map_path.read_text())
        wrong["frame_size"] = [1920, 1080]
        (tmp_path / "small.json").write_text(json.dumps(wrong))
        expected = "drawn for 1920x1080 frames but the source gives 1440x240"
    elif case == "broker-down":
        expected = "not reachable within 2s"
    else:
        extra, expected = ["--opt-out", str(tmp_path / "nobody.txt")], "cannot read opt-out list"
    began = time.monotonic()
    result = run_cli(*produce_args(sample_screening, source, seat_map, bootstrap, *extra))
    assert result.exit_code == 1
    assert expected in result.output and "Traceback" not in result.output
    assert time.monotonic() - began < 30


def test_sigterm_flushes_and_exits_cleanly(kafka_broker, sample_screening):
    topic = new_topic(kafka_broker.bootstrap)
    args = produce_args(sample_screening, str(sample_screening.video_path), str(sample_screening.seat_map_path),
                        kafka_broker.bootstrap, "--realtime", "--fps", "5", "--stats-every", "1", "--topic", topic)
    executable = str(Path(sys.executable).parent / "moviemotion")
    process = subprocess.Popen([executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    stderr: list[bytes] = []
    reader = threading.Thread(target=lambda: stderr.extend(iter(lambda: process.stderr.read1(4096), b"")), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 120
        while b"fps," not in b"".join(stderr) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)  # wait for the first stats line: publishing is under way
        process.send_signal(signal.SIGTERM)
        out = process.stdout.read().decode()
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    reader.join(timeout=10)
    err = b"".join(stderr).decode(errors="replace")
    assert process.returncode == 0, err[-2000:]
    assert "received SIGTERM" in err
    published = int(out.split("published ")[1].split(" faces")[0])
    assert 0 < published < 5 * 6 * sample_screening.duration_s  # stopped early
    assert len(read_all(kafka_broker.bootstrap, topic, published)) == published
