"""Wire formats: round trips, and every malformed or unknown-version message gives SchemaError with a reason."""
from __future__ import annotations

import json
import math
import struct
import time
from dataclasses import asdict, replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.emotions import EMOTIONS
from schemas import (
    EmotionEvent,
    FaceFrame,
    SchemaError,
    dead_letter_headers,
    decode_emotion_event,
    decode_face_frame,
    encode_emotion_event,
    encode_face_frame,
    read_dead_letter_headers,
)
from schemas.face_frame import HEADER, MAGIC

NOW_US = time.time_ns() // 1000
DAY_US = 24 * 3600 * 1_000_000

ids = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=128)


def make_frame(**changes) -> FaceFrame:
    rng = np.random.default_rng(1)
    fields = dict(
        screening_id="scr-1", theater_id="th-1", camera_id="cam-A", seat_id="A1", track_id=3, frame_id=42,
        captured_us=NOW_US, movie_ts=4.2, crop=rng.integers(0, 256, (48, 48), dtype=np.uint8),
        bbox=(10.0, 20.0, 100.0, 120.0), landmarks=rng.uniform(0, 200, (5, 2)).astype(np.float32),
        detection_score=0.91, yaw_deg=-12.5, pitch_deg=3.25,
    )
    fields.update(changes)
    return FaceFrame(**fields)


def assert_same_frame(a: FaceFrame, b: FaceFrame) -> None:
    for name in ("screening_id", "theater_id", "camera_id", "seat_id", "track_id", "frame_id", "captured_us",
                 "movie_ts", "bbox", "detection_score", "schema_version"):
        assert getattr(a, name) == getattr(b, name), name
    for name in ("yaw_deg", "pitch_deg"):
        x, y = getattr(a, name), getattr(b, name)
        assert (math.isnan(x) and math.isnan(y)) or x == y, name
    np.testing.assert_array_equal(a.crop, b.crop)
    np.testing.assert_array_equal(a.landmarks, b.landmarks)
    assert a.person_key == b.person_key == f"{a.screening_id}|{a.theater_id}|{a.seat_id}"


def patched(data: bytes, **fields) -> bytes:
    """Re-pack the fixed header of valid FaceFrame bytes with some fields replaced (by struct position)."""
    positions = {"version": 1, "track_id": 2, "captured_us": 4, "movie_ts": 5, "height": 6, "width": 7,
                 "bbox_w": 10, "landmark0": 12, "score": 22, "yaw": 23, "id0_len": 25}
    values = list(HEADER.unpack_from(data))
    for name, value in fields.items():
        values[positions[name]] = value
    return HEADER.pack(*values) + data[HEADER.size:]


def reason_of(call, *args) -> str:
    with pytest.raises(SchemaError) as info:
        call(*args)
    return info.value.reason


# --- FaceFrame ------------------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(screening=ids, theater=ids, camera=ids, seat=ids, track=st.integers(0, 2**32 - 1),
       frame_id=st.integers(0, 2**63 - 1), movie_ts=st.floats(0, 6 * 3600), height=st.integers(1, 512),
       width=st.integers(1, 512), yaw=st.one_of(st.just(math.nan), st.floats(-180, 180)), seed=st.integers(0, 99))
def test_face_frame_round_trip(screening, theater, camera, seat, track, frame_id, movie_ts, height, width, yaw, seed):
    crop = np.random.default_rng(seed).integers(0, 256, (height, width), dtype=np.uint8)
    frame = make_frame(screening_id=screening, theater_id=theater, camera_id=camera, seat_id=seat,
                       track_id=track, frame_id=frame_id, movie_ts=movie_ts, crop=crop, yaw_deg=yaw)
    data = encode_face_frame(frame)
    assert len(data) == HEADER.size + sum(len(s.encode()) for s in (screening, theater, camera, seat)) + height * width
    assert_same_frame(decode_face_frame(data), frame)


def test_face_frame_is_compact_binary():
    data = encode_face_frame(make_frame())
    assert data.startswith(MAGIC)
    assert len(data) < 48 * 48 + 200  # raw pixels plus a small header: no base64, no JSON


def test_every_truncation_is_rejected():
    data = encode_face_frame(make_frame())
    for cut in range(len(data)):
        assert reason_of(decode_face_frame, data[:cut]) in ("truncated", "bad_magic"), cut
    assert reason_of(decode_face_frame, data[: HEADER.size + 10]) == "truncated"


def test_trailing_bytes_are_rejected():
    assert reason_of(decode_face_frame, encode_face_frame(make_frame()) + b"\0") == "bad_shape"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4000))
def test_random_bytes_raise_only_schema_error(data):
    with pytest.raises(SchemaError):
        decode_face_frame(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000))
def test_random_bytes_after_a_valid_prefix_raise_only_schema_error(tail):
    with pytest.raises(SchemaError):
        decode_face_frame(MAGIC + b"\x01" + tail)


@settings(max_examples=200, deadline=None)
@given(position=st.integers(0, 2000), value=st.integers(0, 255))
def test_corrupted_bytes_decode_or_raise_schema_error(position, value):
    data = bytearray(encode_face_frame(make_frame()))
    data[position % len(data)] = value
    try:
        frame = decode_face_frame(bytes(data))
    except SchemaError:
        return
    assert frame.crop.shape == (48, 48)  # a flipped pixel or number is still a well-formed frame


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: b"XXXX" + d[4:], "bad_magic"),
        (lambda d: patched(d, version=2), "unknown_version"),
        (lambda d: patched(d, height=0), "bad_shape"),
        (lambda d: patched(d, width=513), "bad_shape"),
        (lambda d: patched(d, height=47), "bad_shape"),  # 48 fewer pixels than sent
        (lambda d: patched(d, height=49), "truncated"),
        (lambda d: patched(d, track_id=-1), "bad_value"),
        (lambda d: patched(d, captured_us=NOW_US + 2 * DAY_US), "bad_value"),
        (lambda d: patched(d, captured_us=0), "bad_value"),
        (lambda d: patched(d, captured_us=86_400_000_000), "bad_value"),  # 1970-01-02: a host without clock sync
        (lambda d: patched(d, track_id=2**40), "bad_value"),  # frame_scores.track_id is UInt32
        (lambda d: patched(d, movie_ts=1e9), "bad_value"),  # 30 years into the screening
        (lambda d: patched(d, movie_ts=math.nan), "bad_value"),
        (lambda d: patched(d, movie_ts=-1.0), "bad_value"),
        (lambda d: patched(d, bbox_w=math.inf), "bad_value"),
        (lambda d: patched(d, landmark0=math.nan), "bad_value"),
        (lambda d: patched(d, score=1.5), "bad_value"),
        (lambda d: patched(d, yaw=math.inf), "bad_value"),
    ],
    ids=["magic", "version", "zero-height", "too-wide", "short-shape", "long-shape", "negative-track",
         "future", "epoch-zero", "1970", "track-2^40", "movie-ts-30-years", "nan-movie-ts", "negative-movie-ts", "inf-bbox", "nan-landmark",
         "score>1", "inf-yaw"],
)
def test_malformed_face_frames(mutate, reason):
    assert reason_of(decode_face_frame, mutate(encode_face_frame(make_frame()))) == reason


def test_bad_ids_are_rejected_on_the_wire():
    data = encode_face_frame(make_frame(screening_id="s"))
    # Replace the 1-byte screening id with an invalid UTF-8 byte.
    bad_utf8 = data[: HEADER.size] + b"\xff" + data[HEADER.size + 1:]
    assert reason_of(decode_face_frame, bad_utf8) == "bad_value"
    # Declare the screening id empty: the byte moves into the next id, the crop comes up one byte short.
    assert reason_of(decode_face_frame, patched(data, id0_len=0)) in ("bad_value", "bad_shape")


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"seat_id": ""}, "bad_value"),
        ({"camera_id": "c" * 129}, "bad_value"),
        ({"crop": np.zeros((48, 48), dtype=np.float32)}, "bad_shape"),
        ({"crop": np.zeros((48, 48, 3), dtype=np.uint8)}, "bad_shape"),
        ({"crop": np.zeros((600, 48), dtype=np.uint8)}, "bad_shape"),
        ({"landmarks": np.zeros((4, 2))}, "bad_shape"),
        ({"bbox": (1.0, 2.0, 3.0)}, "bad_shape"),
        ({"track_id": True}, "bad_value"),
        ({"schema_version": 2}, "unknown_version"),
    ],
)
def test_invalid_face_frames_cannot_be_built(changes, reason):
    assert reason_of(lambda: make_frame(**changes)) == reason


def test_non_contiguous_crop_is_sent_as_a_contiguous_copy():
    crop = np.arange(96 * 48, dtype=np.uint8).reshape(96, 48)[::2]
    frame = make_frame(crop=crop)
    np.testing.assert_array_equal(decode_face_frame(encode_face_frame(frame)).crop, crop)


# --- EmotionEvent ---------------------------------------------------------------------------------

def make_event(**changes) -> EmotionEvent:
    probs = tuple(float(x) for x in np.random.default_rng(2).dirichlet(np.ones(8)))
    fields = dict(
        event_id="scr-1|th-1|A1|17", screening_id="scr-1", theater_id="th-1", camera_id="cam-A", seat_id="A1",
        person_key="scr-1|th-1|A1", movie_second=17, captured_us=NOW_US, frames=5, visible=True, attending=True,
        probs=probs, smoothed=probs, dominant=EMOTIONS[int(np.argmax(probs))], reaction="happiness", intensities=tuple(p / 2 for p in probs),
        intensity=0.4, valence=0.25, arousal=-0.1, baseline_state="ready", model_version="emotionnet-v1",
    )
    fields.update(changes)
    return EmotionEvent(**fields)


@settings(max_examples=60, deadline=None)
@given(second=st.integers(0, 10**6), frames=st.integers(0, 100), visible=st.booleans(),
       probs=st.lists(st.floats(0, 1), min_size=8, max_size=8), seat=ids)
def test_emotion_event_round_trip(second, frames, visible, probs, seat):
    key = f"scr-1|th-1|{seat}"
    event = make_event(seat_id=seat, person_key=key, event_id=f"{key}|{second}", movie_second=second,
                       frames=frames, visible=visible, probs=tuple(probs), baseline_state="calibrating")
    data = encode_emotion_event(event)
    assert data == json.dumps(json.loads(data), separators=(",", ":")).encode()  # compact separators
    assert decode_emotion_event(data) == event


def test_version_1_events_are_read_with_reaction_not_measured():
    """Events written before `reaction` existed (still in the topic after an upgrade) are read, not dead-lettered:
    their reaction is '' (not measured), as for rows stored before migration 0004."""
    obj = asdict(make_event())
    del obj["reaction"]
    obj["schema_version"] = 1
    event = decode_emotion_event(json.dumps(obj).encode())
    assert (event.schema_version, event.reaction, event.dominant) == (1, "", obj["dominant"])
    assert json.loads(encode_emotion_event(make_event()))["schema_version"] == 2


def event_json(**changes) -> bytes:
    obj = asdict(make_event())
    obj.update(changes)
    return json.dumps(obj).encode()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "bad_json"),
        (b"\xff\xfe", "bad_json"),
        (b"[1, 2]", "bad_json"),
        (b'{"probs": [1]}', "missing_field"),
        (event_json(schema_version=3), "unknown_version"),
        (event_json(reaction="boredom"), "bad_value"),
        (event_json(reaction=""), "bad_value"),
        (event_json(schema_version=1), "bad_value"),
        (event_json(schema_version=True), "unknown_version"),
        (event_json(probs=[0.1] * 7), "bad_shape"),
        (event_json(probs="nope"), "bad_shape"),
        (event_json(probs=[1.5] + [0.0] * 7), "bad_value"),
        (event_json(smoothed=[0.1] * 7 + ["x"]), "bad_value"),
        (event_json(dominant="boredom"), "bad_value"),
        (event_json(baseline_state="warm"), "bad_value"),
        (event_json(movie_second=-1), "bad_value"),
        (event_json(movie_second=1.5), "bad_value"),
        (event_json(visible=1), "bad_value"),
        (event_json(event_id="someone-else|17"), "bad_value"),
        (event_json(person_key="x|y|z"), "bad_value"),
        (event_json(captured_us=NOW_US + 2 * DAY_US), "bad_value"),
        (event_json(model_version=""), "bad_value"),
        (event_json(extra=1), "bad_value"),
    ],
)
def test_malformed_emotion_events(data, reason):
    assert reason_of(decode_emotion_event, data) == reason


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_probabilities_are_rejected(token):
    data = encode_emotion_event(make_event()).decode()
    obj = json.loads(data)
    data = data.replace(json.dumps(obj["probs"][0]), token, 1)
    assert reason_of(decode_emotion_event, data.encode()) == "bad_value"
    assert reason_of(lambda: make_event(probs=(math.nan,) + (0.0,) * 7)) == "bad_value"


def test_emotion_event_missing_field_is_named():
    obj = asdict(make_event())
    del obj["valence"]
    with pytest.raises(SchemaError, match="valence") as info:
        decode_emotion_event(json.dumps(obj).encode())
    assert info.value.reason == "missing_field"


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=500), st.text(max_size=300).map(str.encode),
                 st.dictionaries(st.text(max_size=10), st.integers()).map(lambda d: json.dumps(d).encode())))
def test_random_input_raises_only_schema_error(data):
    with pytest.raises(SchemaError):
        decode_emotion_event(data)


def test_emotion_event_is_immutable_and_replace_revalidates():
    event = make_event()
    with pytest.raises(AttributeError):
        event.frames = 3  # type: ignore[misc]
    assert reason_of(lambda: replace(event, intensity=2.0)) == "bad_value"


# --- dead letters ---------------------------------------------------------------------------------

def test_dead_letter_headers_round_trip():
    headers = dead_letter_headers("bad_magic", "bad_magic: not a FaceFrame", "faces", 7, 12345)
    assert all(isinstance(k, str) and isinstance(v, bytes) for k, v in headers)
    info = read_dead_letter_headers(headers + [("unrelated", b"x")])
    assert info["reason"] == "bad_magic"
    assert info["error"] == "bad_magic: not a FaceFrame"
    assert (info["source_topic"], info["partition"], info["offset"]) == ("faces", 7, 12345)
    assert abs(info["at_us"] - time.time_ns() // 1000) < 60_000_000


def test_dead_letter_unknown_position_and_long_error():
    info = read_dead_letter_headers(dead_letter_headers("truncated", "e" * 10_000, "faces", None, None))
    assert (info["partition"], info["offset"]) == (None, None)
    assert 0 < len(info["error"]) < 10_000


def test_dead_letter_headers_that_are_not_ours():
    assert reason_of(read_dead_letter_headers, [("foo", b"bar")]) == "missing_field"
    headers = [(k, b"9" if k == "dl-version" else v) for k, v in dead_letter_headers("r", "e", "t", 1, 2)]
    assert reason_of(read_dead_letter_headers, headers) == "unknown_version"
    headers = [(k, b"x" if k == "dl-source-offset" else v) for k, v in dead_letter_headers("r", "e", "t", 1, 2)]
    assert reason_of(read_dead_letter_headers, headers) == "bad_value"
    with pytest.raises(ValueError):
        dead_letter_headers("", "e", "t", None, None)


def test_struct_header_layout_is_stable():
    # The v1 layout is a contract with every consumer: changing it needs a new schema_version.
    assert HEADER.format == "<4sBqqqdHH4d10fddd4H"
    assert struct.calcsize(HEADER.format) == HEADER.size
