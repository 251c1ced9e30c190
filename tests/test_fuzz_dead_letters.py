"""10,000 seeded bad messages mixed with valid face frames, through Kafka and the real worker: every bad one lands
in `dead-letters` once with its reason in the headers (a face message stripped to its length and hash, an event
kept whole), every valid one is scored and stored once.

The bad input: random bytes, null values, truncated frames, unknown schema versions, impossible crop shapes
(zero/oversized sides, a crop the model cannot take, bytes beyond the crop), NaN/inf fields, captures from the
future or before 2020, track ids past UInt32, movie times past 6 h, valid frames under a key that is not their
person key, 10 MB messages (the `faces` topic takes up to infra.topics.FACES_MAX_MESSAGE_BYTES so they reach the
worker), and EmotionEvents on `emotion-events` with NaN/inf probabilities, garbage JSON or a wrong version.
The valid frames belong to a screening never registered in `screenings`: unknown screening ids are accepted
and scored under their own id (checking the catalogue per message would cost a lookup per batch).
"""
from __future__ import annotations

import hashlib
import json
import math
import random
import struct
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np
import pytest
from kafka import KafkaConsumer, KafkaProducer

from benchmarks.load_generator import LoadSpec, face_frames, sprite_crops
from schemas.emotions import NUM_EMOTIONS
from infra.topics import DEAD_LETTER_MAX_MESSAGE_BYTES
from moviemotion.pipeline_run import start_worker, stop_worker
from schemas.dead_letter import read_dead_letter_headers
from schemas.emotion_event import EmotionEvent, event_id_of
from schemas.errors import REASONS
from schemas.face_frame import HEADER, FaceFrame, encode_face_frame, person_key_of
from tests.faults.harness import GroundTruth, assert_matches_ground_truth, fault_settings, wait_scored

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

BAD_CASES = 10_000
HUGE_CASES = 3
HUGE_BYTES = 10 * 1024 * 1024
SEED = 20240601


def header_offset(fields_before: str) -> int:
    """Byte offset in the FaceFrame header of the field after `fields_before` (a prefix of HEADER's format)."""
    assert HEADER.format.startswith("<" + fields_before), HEADER.format
    return struct.calcsize("<" + fields_before)


VERSION_AT, TRACK_AT, CAPTURED_AT, MOVIE_TS_AT = (header_offset("4s"), header_offset("4sB"), header_offset("4sBqq"),
                                                  header_offset("4sBqqq"))
HEIGHT_AT, WIDTH_AT = header_offset("4sBqqqd"), header_offset("4sBqqqdH")
SCORE_AT, ID_LENGTHS_AT = header_offset("4sBqqqdHH4d10f"), header_offset("4sBqqqdHH4d10fddd")


@dataclass(frozen=True)
class Case:
    """One bad message: where it goes, its bytes, and the reason the worker must give (None: any known reason)."""

    topic: str  # "faces" or "events"
    value: bytes | None
    reason: str | None
    kind: str


def patched(data: bytes, at: int, fmt: str, value) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, at, value)
    return bytes(out)


def valid_event() -> dict:
    person = person_key_of("fuzz", "t", "A1")
    probs = [1.0 / NUM_EMOTIONS] * NUM_EMOTIONS
    event = EmotionEvent(event_id_of(person, 3), "fuzz", "t", "cam", "A1", person, 3, time.time_ns() // 1000, 5,
                         True, True, tuple(probs), tuple(probs), "neutral", "neutral", tuple([0.0] * NUM_EMOTIONS), 0.0, 0.0,
                         0.0, "ready", "m1")
    return {name: list(value) if isinstance(value, tuple) else value for name, value in asdict(event).items()}


def bad_cases(rng: random.Random, template: bytes, wrong_size: bytes, count: int) -> list[Case]:
    """`count` seeded bad messages, cycling over the kinds of bad input."""
    def random_bytes() -> Case:
        return Case("faces", rng.randbytes(rng.randrange(0, 3000)), None, "random bytes")

    def truncated() -> Case:
        return Case("faces", template[: rng.randrange(0, len(template))], "truncated", "truncated")

    def version() -> Case:
        return Case("faces", patched(template, VERSION_AT, "<B", rng.choice([0, *range(2, 256)])), "unknown_version", "version")

    def side() -> Case:
        return Case("faces", patched(template, rng.choice([HEIGHT_AT, WIDTH_AT]), "<H", rng.choice([0, rng.randrange(513, 65536)])),
                    "bad_shape", "impossible side")

    def beyond() -> Case:
        return Case("faces", template + rng.randbytes(rng.randrange(1, 500)), "bad_shape", "bytes beyond the crop")

    def model_size() -> Case:
        return Case("faces", wrong_size, "bad_shape", "crop the model cannot take")

    def non_finite() -> Case:
        at = rng.choice([MOVIE_TS_AT, SCORE_AT])
        return Case("faces", patched(template, at, "<d", rng.choice([math.nan, math.inf, -math.inf])), "bad_value", "NaN/inf field")

    def future() -> Case:
        days = rng.uniform(1.5, 10_000)
        return Case("faces", patched(template, CAPTURED_AT, "<q", time.time_ns() // 1000 + int(days * 86_400e6)),
                    "bad_value", "captured in the future")

    def hostile_clock() -> Case:  # well-formed frames with values the tables or a viewer's timeline cannot take
        at, fmt, value, kind = rng.choice([
            (TRACK_AT, "<q", 2**40, "track_id past UInt32"),
            (CAPTURED_AT, "<q", rng.randrange(1, 1_577_836_800) * 1_000_000, "captured before 2020"),
            (MOVIE_TS_AT, "<d", rng.uniform(6 * 3600 + 1, 1e9), "movie time past 6 h"),
        ])
        return Case("faces", patched(template, at, fmt, value), "bad_value", kind)

    def foreign_key() -> Case:  # a valid frame under a key that is not its person key
        return Case("faces", template, "bad_value", "key is not the person key")

    def id_lengths() -> Case:
        return Case("faces", patched(template, ID_LENGTHS_AT + 2 * rng.randrange(4), "<H", rng.randrange(200, 65536)),
                    "truncated", "id length past the end")

    def null() -> Case:
        return Case("faces", None, "bad_value", "null value")

    def event_nan() -> Case:
        event = valid_event()
        event[rng.choice(["probs", "smoothed", "intensities"])][rng.randrange(NUM_EMOTIONS)] = rng.choice([math.nan, math.inf])
        return Case("events", json.dumps(event).encode(), "bad_value", "NaN/inf probability")

    def event_version() -> Case:
        event = valid_event()
        event["schema_version"] = rng.choice([0, 3, 99, "1"])
        return Case("events", json.dumps(event).encode(), "unknown_version", "event version")

    def event_garbage() -> Case:
        return Case("events", json.dumps(valid_event())[: rng.randrange(1, 200)].encode(), "bad_json", "event JSON cut")

    kinds = [random_bytes, truncated, version, side, beyond, model_size, non_finite, future, hostile_clock, foreign_key,
             id_lengths, null, event_nan, event_version, event_garbage]
    return [kinds[i % len(kinds)]() for i in range(count)]


def huge_case(rng: random.Random, template: bytes) -> Case:
    """A 10 MB message that starts like a FaceFrame."""
    return Case("faces", template + rng.randbytes(HUGE_BYTES - len(template)), "bad_shape", "10 MB message")


def read_dead_letters(bootstrap: str, topic: str, prefix: bytes, expected: int, timeout_s: float) -> list:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False,
                             group_id=None, fetch_max_bytes=64 * 1024 * 1024,
                             max_partition_fetch_bytes=DEAD_LETTER_MAX_MESSAGE_BYTES)
    found = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and len(found) < expected:
            for records in consumer.poll(timeout_ms=1000).values():
                found.extend(r for r in records if r.key and r.key.startswith(prefix))
    finally:
        consumer.close()
    return found


def test_ten_thousand_bad_messages_are_dead_lettered_with_reasons_and_valid_frames_all_stored(
        kafka_broker, clickhouse_factory, tmp_path):
    target = clickhouse_factory("chdb")
    settings, screening_id = fault_settings(kafka_broker.bootstrap, target.settings)
    rng = random.Random(SEED)
    spec = LoadSpec(screening_id, faces_per_s=30.0, cameras=1, seats_per_camera=6)
    crops = sprite_crops()
    now_us = time.time_ns() // 1000
    valid = [frame for tick in range(200) for frame in face_frames(spec, crops, tick, now_us + tick * 200_000)]
    template = encode_face_frame(valid[0])
    small = FaceFrame(**{**{f: getattr(valid[0], f) for f in ("screening_id", "theater_id", "camera_id", "seat_id",
                                                                "track_id", "frame_id", "captured_us", "movie_ts", "bbox",
                                                                "landmarks", "detection_score", "yaw_deg", "pitch_deg")},
                         "crop": np.zeros((32, 32), np.uint8)})
    cases = bad_cases(rng, template, encode_face_frame(small), BAD_CASES - HUGE_CASES)
    cases += [huge_case(rng, template) for _ in range(HUGE_CASES)]
    prefix = f"fuzz-{uuid.uuid4().hex[:8]}-".encode()
    topics = {"faces": settings.topics.faces, "events": settings.topics.emotion_events}

    # Valid frames keep their per-viewer order; bad messages are scattered between them.
    order = [("bad", i) for i in range(len(cases))] + [("valid", i) for i in range(len(valid))]
    rng.shuffle(order)
    valid_positions = sorted(i for i, (kind, _) in enumerate(order) if kind == "valid")
    for position, index in zip(valid_positions, range(len(valid))):
        order[position] = ("valid", index)
    # The 10 MB messages go first: kafka-python computes a batch's CRC32C in pure Python (about 2.7 s per 10 MB on a
    # 2 GHz core), which stops this producer for longer than the worker's idle flush; mid-stream, that pause would
    # rightly close the viewers' open seconds early (frames that stop for idle_flush_s are a viewer gone).
    huge = [("bad", i) for i in range(len(cases) - HUGE_CASES, len(cases))]
    order = huge + [step for step in order if step not in huge]

    worker = start_worker(settings, tmp_path / "worker.log")
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=20,
                             max_request_size=DEAD_LETTER_MAX_MESSAGE_BYTES)
    began = time.monotonic()
    try:
        for kind, index in order:
            if kind == "valid":
                frame = valid[index]
                producer.send(topics["faces"], key=frame.person_key.encode(), value=encode_face_frame(frame))
            else:
                case = cases[index]
                producer.send(topics[case.topic], key=prefix + str(index).encode(), value=case.value)
        producer.flush(timeout=120)
        truth = GroundTruth(tuple((f.person_key, f.frame_id, f.movie_ts) for f in valid))
        wait_scored(target.client, screening_id, truth, worker)
        letters = read_dead_letters(settings.kafka_bootstrap, settings.topics.dead_letters, prefix, len(cases), 240)
        elapsed = time.monotonic() - began
    finally:
        producer.close(timeout=30)
        stop_worker(worker)

    by_index = Counter(int(letter.key[len(prefix):]) for letter in letters)
    assert not [i for i, n in by_index.items() if n > 1], "a bad message was dead-lettered twice"
    missing = [cases[i].kind for i in range(len(cases)) if i not in by_index]
    assert not missing, f"{len(missing)} bad messages not dead-lettered: {Counter(missing)}"
    wrong = []
    for letter in letters:
        case = cases[int(letter.key[len(prefix):])]
        headers = read_dead_letter_headers(letter.headers)
        assert headers["source_topic"] == topics[case.topic]
        if case.topic == "events":
            assert (letter.value, headers["payload"]) == (case.value, "original"), f"{case.kind}: not the original event"
        else:  # a face's dead letter keeps no byte of it, only its length and hash (schemas/dead_letter.py)
            assert (letter.value, headers["payload"]) == (b"", "stripped"), f"{case.kind}: a face dead letter kept its bytes"
            assert (headers["value_bytes"], headers["value_sha256"]) == (
                (None, None) if case.value is None else (len(case.value), hashlib.sha256(case.value).hexdigest()))
        if headers["reason"] not in REASONS or (case.reason is not None and headers["reason"] != case.reason):
            wrong.append((case.kind, case.reason, headers["reason"], headers["error"][:100]))
    assert not wrong, f"{len(wrong)} dead letters with an unexpected reason, e.g. {wrong[:5]}"
    assert_matches_ground_truth(target.client, screening_id, truth)
    assert target.client.query("SELECT count() FROM screenings WHERE screening_id = %(s)s", {"s": screening_id})[0][0] == 0
    print(f"{len(cases)} bad + {len(valid)} valid messages handled in {elapsed:.1f}s")
