"""The sample screening: committed sprite/script, reproducible video, ground truth that matches the script,
and faces YuNet finds in (nearly) every frame where the viewer is in view."""
from __future__ import annotations

import csv
import hashlib
from collections import Counter

import cv2
import numpy as np
import pytest

from schemas.emotions import EMOTIONS
from engines.face_detector import FaceDetector
from producers.sample_render import load_script
from producers.sample_screening import SEAT_MAP_PATH, generate_sample_screening
from producers.sample_sprite import SPRITE_PATH, load_sprite
from producers.seat_map import load_seat_map

MIN_DETECTION_RATE = 0.95


@pytest.fixture(scope="module")
def truth(sample_screening) -> list[dict]:
    with open(sample_screening.ground_truth_path, newline="") as f:
        return list(csv.DictReader(f))


def test_committed_sprite_is_small_and_covers_every_emotion():
    assert SPRITE_PATH.stat().st_size < 1_000_000
    faces = load_sprite()
    assert set(faces) == set(EMOTIONS)
    for emotion, crops in faces.items():
        assert crops, emotion
        assert all(c.shape == (48, 48) and c.dtype == np.uint8 for c in crops)
    data = np.load(SPRITE_PATH)
    # Strong annotator agreement: the labelled emotion holds most of the 10 FER+ votes.
    agreement = data["votes"][np.arange(len(data["labels"])), data["labels"]]
    assert agreement.min() >= 5 and np.median(agreement) >= 7


def test_ground_truth_follows_the_script(sample_screening, truth):
    script = load_script()
    assert 60 <= sample_screening.duration_s <= 90
    assert sample_screening.seats == tuple(s.seat_id for s in script.seats) and len(sample_screening.seats) == 6
    assert len(truth) == len(sample_screening.seats) * sample_screening.duration_s
    visible = [row for row in truth if row["visible"] == "1"]
    assert {row["emotion"] for row in visible} == set(EMOTIONS)
    assert all(row["emotion"] == "" for row in truth if row["visible"] == "0")
    for seat in script.seats:
        assert all(4 <= segment.seconds <= 8 for segment in seat.segments), seat.seat_id
    by_seat = {seat: Counter(r["emotion"] for r in truth if r["seat_id"] == seat) for seat in sample_screening.seats}
    resting_sad = [seat for seat, counts in by_seat.items() if counts.most_common(1)[0][0] == "sadness"]
    away = [seat for seat, counts in by_seat.items() if counts[""] >= 3]
    assert resting_sad and away


def test_video_reads_back_and_fits_its_seat_map(sample_screening):
    capture = cv2.VideoCapture(str(sample_screening.video_path))
    try:
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        ok, frame = capture.read()
    finally:
        capture.release()
    assert ok and count == sample_screening.frame_count == sample_screening.duration_s * sample_screening.fps
    seat_map = load_seat_map(sample_screening.seat_map_path)
    seat_map.check_frame_size(frame.shape[1], frame.shape[0])
    assert seat_map.seat_ids == sample_screening.seats
    assert sample_screening.seat_map_path.read_bytes() == SEAT_MAP_PATH.read_bytes()


def test_generation_is_byte_reproducible(sample_screening, tmp_path):
    again = generate_sample_screening(tmp_path)
    for name in ("video_path", "ground_truth_path", "seat_map_path"):
        a, b = getattr(sample_screening, name), getattr(again, name)
        assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest(), name


def test_yunet_finds_every_visible_viewer_and_no_absent_one(sample_screening, truth):
    seat_map = load_seat_map(sample_screening.seat_map_path)
    visible = {(r["seat_id"], int(r["second"])): r["visible"] == "1" for r in truth}
    detector = FaceDetector()
    hits, frames, ghosts = Counter(), Counter(), 0
    capture = cv2.VideoCapture(str(sample_screening.video_path))
    try:
        index = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            second = int(index // sample_screening.fps)
            seats_found = {seat_map.seat_for(d.bbox) for d in detector.detect(frame)}
            for seat in sample_screening.seats:
                if visible[(seat, second)]:
                    frames[seat] += 1
                    hits[seat] += seat in seats_found
                else:
                    ghosts += seat in seats_found
            index += 1
    finally:
        capture.release()
    assert index == sample_screening.frame_count
    for seat in sample_screening.seats:
        assert hits[seat] / frames[seat] >= MIN_DETECTION_RATE, seat
    assert ghosts == 0
