"""The Yale screening: the committed script's plan, its checks, eye alignment, and (with ../shared's Yale faces)
a generated screening whose ground truth covers every second, whose videos read back, whose faces YuNet finds and
the producer tracks in every sampled frame, and which is the same bytes when generated again."""
from __future__ import annotations

import copy
import csv
import hashlib
import json
from collections import Counter, defaultdict

import cv2
import numpy as np
import pytest

from engines.face_detector import FaceDetector
from moviemotion.ground_truth import read_segments
from producers.camera_producer import CameraConfig, CameraProducer
from producers.seat_map import load_seat_map
from producers.sources import open_source
from producers.yale.render import EYE_LINE, YALE_DIR, compose, eye_alignment
from producers.yale.script import EXPRESSION_VARIANTS, SCRIPT_PATH, load_script, parse_script
from producers.yale_screening import YaleDataMissing, generate_yale_screening, main

PRODUCER_FPS = 5.0  # the rate tests and the benchmark sample the videos at
MIN_DETECTION_RATE = 0.98
DISTRACTORS = {"leftlight", "rightlight", "glasses"}


@pytest.fixture(scope="module")
def truth(yale_screening) -> list[dict]:
    with open(yale_screening.ground_truth_path, newline="") as f:
        return list(csv.DictReader(f))


def test_committed_script_uses_every_subject_with_calibration_expressions_and_distractors():
    script = load_script()
    assert SCRIPT_PATH.stat().st_size < 100_000  # names and numbers only, never pixels
    assert len(script.cameras) == 3 and all(len(camera.seats) == 5 for camera in script.cameras)
    assert sorted(seat.subject for seat in script.seats) == [f"subject{n:02d}" for n in range(1, 16)]
    assert 60 <= script.duration_s <= 80
    for seat in script.seats:
        kinds = [segment.kind for segment in seat.segments]
        calibration = [s for s in seat.segments if s.kind == "calibration"]
        assert sum(s.seconds for s in calibration) == 12, seat.seat_id
        assert {s.variant for s in calibration} == {"normal", "noglasses", "centerlight"}
        events = [s for s in seat.segments if s.kind in ("expression", "distractor")]
        assert all(s.seconds == 6 for s in events)
        assert {s.variant for s in events if s.kind == "distractor"} == DISTRACTORS
        expressions = {s.variant for s in events if s.kind == "expression"}
        # subject04.sad is a copy of subject04.normal (Yale Readme): that seat shows no sadness.
        assert expressions == (set(EXPRESSION_VARIANTS) - {"sad"} if seat.subject == "subject04" else set(EXPRESSION_VARIANTS))
        for index, kind in enumerate(kinds):  # every event follows at least 4 s of the plain neutral face
            if kind in ("expression", "distractor"):
                before = seat.segments[index - 1]
                assert before.kind == "neutral" and before.variant == "normal" and before.seconds >= 4
    # The seats of a row do not react at once: no two begin an expression in the same second, and never do all
    # of them show one.
    for camera in script.cameras:
        onsets = [seat.segment_start(i) for seat in camera.seats for i, s in enumerate(seat.segments) if s.kind == "expression"]
        assert len(onsets) == len(set(onsets)), camera.camera_id
        for second in range(script.duration_s):
            shown = [seat.segments[seat.segment_index_at(second)] for seat in camera.seats]
            assert sum(s.kind == "expression" for s in shown) < len(shown)


def test_script_checks_reject_what_the_test_could_not_use():
    base = json.loads(SCRIPT_PATH.read_text())
    assert parse_script(copy.deepcopy(base)) == load_script()

    def broken(change) -> dict:
        obj = copy.deepcopy(base)
        change(obj["cameras"][0]["seats"][0])
        return obj

    cases = {
        "unknown variant": lambda seat: seat["segments"][4].update(variant="wink"),
        "does not fit variant": lambda seat: seat["segments"][4].update(kind="neutral"),
        "calibration segments must come first": lambda seat: seat["segments"][5].update(kind="calibration"),
        "s long": lambda seat: seat["segments"][0].update(seconds=5),
        "subject04.sad": lambda seat: seat.update(subject="subject04"),
        "unknown kind": lambda seat: seat["segments"][3].update(kind="rest"),
    }
    for message, change in cases.items():
        with pytest.raises(ValueError, match=message):
            parse_script(broken(change))


def test_eye_alignment_puts_the_eyes_level_apart_and_in_place():
    face_px, eye_px = 176, 56
    for right, left in [((100.0, 120.0), (158.0, 112.0)), ((60.0, 80.0), (110.0, 95.0)), ((10.0, 10.0), (70.0, 10.0))]:
        matrix = eye_alignment(np.array([right, left]), face_px, eye_px)
        (rx, ry), (lx, ly) = (matrix[:, :2] @ np.array(p) + matrix[:, 2] for p in (right, left))
        assert ry == pytest.approx(ly, abs=1e-9) and lx - rx == pytest.approx(eye_px)
        assert (rx + lx) / 2 == pytest.approx(face_px / 2) and ry == pytest.approx(face_px / 2 - EYE_LINE * eye_px)
    shift = np.array([[1.0, 0, 5], [0, 1, -3]])
    rotate = cv2.getRotationMatrix2D((0, 0), 90, 2.0)
    both = compose(shift, rotate)
    point = np.array([1.0, 2.0])
    assert both[:, :2] @ point + both[:, 2] == pytest.approx(shift[:, :2] @ (rotate[:, :2] @ point + rotate[:, 2]) + shift[:, 2])


def test_without_the_yale_faces_generation_fails_clearly(tmp_path, monkeypatch, capsys):
    with pytest.raises(YaleDataMissing, match="research-use only"):
        generate_yale_screening(tmp_path / "out", yale_dir=tmp_path / "no-yale")
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "subject01.normal.jpeg").write_bytes(b"")
    with pytest.raises(YaleDataMissing, match="lacks"):
        generate_yale_screening(tmp_path / "out", yale_dir=partial)
    assert not (tmp_path / "out").exists()
    monkeypatch.setattr("sys.argv", ["yale_screening", "--out", str(tmp_path / "out"), "--yale-dir", str(tmp_path / "no-yale")])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1 and "Yale faces not found" in capsys.readouterr().err


def test_ground_truth_covers_every_second_of_every_seat(yale_screening, truth):
    script = load_script()
    assert yale_screening.seats == tuple(seat.seat_id for seat in script.seats)
    assert yale_screening.duration_s == script.duration_s
    assert Counter((row["seat_id"], int(row["second"])) for row in truth) == {
        (seat, second): 1 for seat in yale_screening.seats for second in range(script.duration_s)}
    for seat in script.seats:
        rows = sorted((r for r in truth if r["seat_id"] == seat.seat_id), key=lambda r: int(r["second"]))
        for row in rows:
            segment = seat.segments[int(row["segment"])]
            assert (row["variant"], row["kind"], row["subject"]) == (segment.variant, segment.kind, seat.subject)
            assert row["emotion"] == row["reaction"] == EXPRESSION_VARIANTS.get(segment.variant, "neutral")
            assert row["visible"] == "1"
    # The sample's reader sees the scripted expression segments: 3 per seat, 2 for subject04.
    expression_runs = [s for s in read_segments(yale_screening.ground_truth_path) if s.emotion != "neutral"]
    assert len(expression_runs) == 15 * 3 - 1 and all(s.end - s.start == 6 for s in expression_runs)
    assert Counter(r["kind"] for r in truth) == {"calibration": 15 * 12, "expression": 44 * 6, "distractor": 45 * 6,
                                                 "neutral": 15 * script.duration_s - 15 * 12 - 89 * 6}


def test_videos_read_back_and_fit_their_seat_maps(yale_screening):
    script = load_script()
    assert [c.camera_id for c in yale_screening.cameras] == [c.camera_id for c in script.cameras]
    for video in yale_screening.cameras:
        capture = cv2.VideoCapture(str(video.video_path))
        try:
            count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
            ok, frame = capture.read()
        finally:
            capture.release()
        assert ok and count == yale_screening.frame_count == script.duration_s * script.fps
        seat_map = load_seat_map(video.seat_map_path)
        seat_map.check_frame_size(frame.shape[1], frame.shape[0])
        assert seat_map.camera_id == video.camera_id and seat_map.seat_ids == video.seats


def test_the_producer_finds_and_tracks_every_viewer_in_every_sampled_frame(yale_screening):
    """The real producer path (YuNet, tracker, seat map) over each video at the pipeline's rate: one face per seat
    in (nearly) every frame, one track per seat throughout, and the head moving, but only a little."""
    detector = FaceDetector()
    for video in yale_screening.cameras:
        camera = CameraProducer(CameraConfig("yale-test", yale_screening.theater_id, video.camera_id),
                                load_seat_map(video.seat_map_path), detector=detector)
        hits, tracks, centres, frames = Counter(), defaultdict(set), defaultdict(list), 0
        for frame in open_source(str(video.video_path), PRODUCER_FPS):
            faces = camera.faces_in(frame)
            assert len(faces) == len({face.seat_id for face in faces}), "two faces in one seat"
            for face in faces:
                hits[face.seat_id] += 1
                tracks[face.seat_id].add(face.track_id)
                x, y, w, h = face.bbox
                centres[face.seat_id].append((x + w / 2, y + h / 2))
            frames += 1
        assert frames == yale_screening.duration_s * PRODUCER_FPS
        assert camera.stats.dropped_no_seat == 0
        for seat in video.seats:
            assert hits[seat] / frames >= MIN_DETECTION_RATE, (video.camera_id, seat, hits[seat], frames)
            assert len(tracks[seat]) == 1, (seat, tracks[seat])
            xy = np.array(centres[seat])
            spread = xy.max(0) - xy.min(0)
            assert 2 <= spread[0] and spread.max() <= 30, (seat, spread)  # moves, stays well inside its tile
            steps = np.linalg.norm(np.diff(xy, axis=0), axis=1)
            assert np.percentile(steps, 95) <= 12, (seat, steps.max())


def test_generation_is_byte_reproducible(yale_screening, tmp_path):
    first = yale_screening.cameras[0]
    again = generate_yale_screening(tmp_path, camera_ids=(first.camera_id,))
    assert [c.camera_id for c in again.cameras] == [first.camera_id]
    for a, b in [(first.video_path, again.cameras[0].video_path), (first.seat_map_path, again.cameras[0].seat_map_path)]:
        assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest(), a.name
    with open(yale_screening.ground_truth_path, newline="") as f:
        expected = [row for row in csv.reader(f)]
    with open(again.ground_truth_path, newline="") as f:
        subset = [row for row in csv.reader(f)]
    assert subset == [expected[0]] + [row for row in expected[1:] if row[0] in first.seats]


def test_the_yale_faces_stay_outside_the_repository():
    repo = SCRIPT_PATH.parents[2]
    assert not YALE_DIR.resolve().is_relative_to(repo.resolve())
    assert not list(repo.glob("producers/**/*.jpeg")) and not list(repo.glob("tests/**/subject*.jpeg"))


def test_scoring_rules_of_the_reaction_benchmark():
    """benchmarks/yale_reactions.py: majority from SETTLE_S after onset; false reactions on neutral seconds only,
    after calibration, the first SETTLE_S seconds after an expression left out unless settle_s=0."""
    from benchmarks.yale_reactions import (SETTLE_S, TruthSecond, agreement, agreement_by_class, false_reactions,
                                           score_expressions)

    assert SETTLE_S == 2
    plan = ["calibration"] * 2 + ["neutral"] * 2 + ["expression"] * 6 + ["neutral"] * 4 + ["distractor"] * 2
    segment_of = [0, 0, 1, 1, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4]
    truth = {("A1", s): TruthSecond("A1", s, "happiness" if kind == "expression" else "neutral", kind, segment_of[s],
                                    "cam", "subject01", "happy" if kind == "expression" else "normal")
             for s, kind in enumerate(plan)}
    labels = {key: "neutral" for key in truth}
    # Onset seconds 4-5 do not count; 6-9 are 3 x happiness, 1 x neutral.
    labels.update({("A1", 4): "neutral", ("A1", 5): "neutral", ("A1", 6): "happiness", ("A1", 7): "happiness",
                   ("A1", 8): "neutral", ("A1", 9): "happiness"})
    labels.update({("A1", 0): "anger", ("A1", 10): "happiness", ("A1", 11): "happiness", ("A1", 15): "surprise"})
    del labels[("A1", 13)]  # not stored: not scored
    (result,) = score_expressions(truth, labels)
    assert (result.start, result.end, result.predicted, result.agrees) == (4, 10, "happiness", True)
    assert agreement([result]) == 1.0 and agreement_by_class([result]) == {"happiness": (1, 1)}
    # Calibration (second 0) never counts; 10-11 only without settling; 13 has no label.
    settled = false_reactions(truth, labels, lambda t: True)
    assert (settled.seconds, settled.reacting) == (2 + 1 + 2, 1)
    raw = false_reactions(truth, labels, lambda t: True, settle_s=0)
    assert (raw.seconds, raw.reacting) == (2 + 3 + 2, 3)
    distractor = false_reactions(truth, labels, lambda t: t.kind == "distractor")
    assert (distractor.seconds, distractor.reacting, distractor.rate) == (2, 1, 0.5)
    labels[("A1", 6)] = labels[("A1", 7)] = "sadness"
    assert score_expressions(truth, labels)[0].predicted == "sadness"
