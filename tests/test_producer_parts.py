"""Producer building blocks: tracker, seat map, opt-out list and head pose (pure parts, synthetic input)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from producers.head_pose import FACE_MODEL_3D, head_pose
from producers.opt_out import load_opt_out, parse_opt_out
from producers.seat_map import SeatMapError, load_seat_map, parse_seat_map
from producers.tracker import IouTracker, iou

# --- tracker --------------------------------------------------------------------------------------


def test_iou():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)


def test_tracks_keep_their_ids_while_faces_move():
    tracker = IouTracker()
    rng = np.random.default_rng(0)
    starts = [(0.0, 0.0), (200.0, 0.0), (400.0, 10.0)]
    first = tracker.update([(x, y, 80.0, 80.0) for x, y in starts])
    assert first == [1, 2, 3]
    for step in range(1, 30):
        boxes = [(x + 2 * step + rng.uniform(-1, 1), y + rng.uniform(-1, 1), 80.0, 80.0) for x, y in starts]
        order = rng.permutation(3)  # detector output order must not matter
        ids = tracker.update([boxes[i] for i in order])
        assert [ids[list(order).index(i)] for i in range(3)] == first


def test_a_face_that_leaves_and_returns_late_gets_a_new_id():
    tracker = IouTracker(max_missed=3)
    (first,) = tracker.update([(0, 0, 50, 50)])
    for _ in range(2):
        tracker.update([])
    assert tracker.update([(1, 1, 50, 50)]) == [first]  # short gap: same track
    for _ in range(5):
        tracker.update([])
    (again,) = tracker.update([(0, 0, 50, 50)])
    assert again != first and again > first


def test_two_detections_never_share_a_track():
    tracker = IouTracker()
    tracker.update([(0, 0, 50, 50)])
    ids = tracker.update([(0, 0, 50, 50), (2, 2, 50, 50)])
    assert len(set(ids)) == 2


def test_tracker_rejects_bad_parameters():
    with pytest.raises(ValueError):
        IouTracker(min_iou=0)


# --- seat map -------------------------------------------------------------------------------------

def seat_map_obj(**changes) -> dict:
    obj = {"camera_id": "cam-A", "frame_size": [600, 200],
           "seats": [{"seat_id": "A1", "region": [0, 0, 200, 200]}, {"seat_id": "A2", "region": [200, 0, 200, 200]},
                     {"seat_id": "A3", "region": [400, 0, 200, 200]}]}
    obj.update(changes)
    return obj


def test_face_goes_to_the_seat_holding_its_box_centre():
    seats = parse_seat_map(seat_map_obj())
    assert seats.seat_for((150, 50, 100, 100)) == "A2"  # box straddles A1/A2, centre (200, 100) is in A2
    assert seats.seat_for((10, 10, 50, 50)) == "A1"
    assert seats.seat_for((590, 10, 50, 50)) is None  # centre outside the frame
    assert seats.seat_ids == ("A1", "A2", "A3")


def test_seat_map_of_the_wrong_frame_size_is_a_clear_error():
    seats = parse_seat_map(seat_map_obj())
    seats.check_frame_size(600, 200)
    with pytest.raises(SeatMapError, match="600x200.*640x480"):
        seats.check_frame_size(640, 480)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"frame_size": [0, 200]}, "positive"),
        ({"seats": []}, "no seats"),
        ({"seats": [{"seat_id": "A1", "region": [0, 0, 300, 200]}, {"seat_id": "A2", "region": [250, 0, 100, 100]}]}, "overlap"),
        ({"seats": [{"seat_id": "A1", "region": [500, 0, 200, 200]}]}, "outside"),
        ({"seats": [{"seat_id": "A1", "region": [0, 0, 10, 10]}, {"seat_id": "A1", "region": [20, 0, 10, 10]}]}, "unique"),
        ({"seats": [{"seat_id": "A1", "region": [0, 0, 10]}]}, "region"),
        ({"camera_id": ""}, "camera_id"),
        ({"seats": "A1"}, "expected"),
    ],
)
def test_malformed_seat_maps(changes, message):
    with pytest.raises(SeatMapError, match=message):
        parse_seat_map(seat_map_obj(**changes))


def test_seat_map_files(tmp_path):
    good = tmp_path / "seats.json"
    good.write_text(json.dumps(seat_map_obj()))
    assert load_seat_map(good).frame_size == (600, 200)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(SeatMapError, match="broken.json"):
        load_seat_map(broken)
    with pytest.raises(SeatMapError, match="cannot read"):
        load_seat_map(tmp_path / "missing.json")


# --- opt-out --------------------------------------------------------------------------------------

def test_opt_out_list(tmp_path):
    opted = parse_opt_out("A2\n  # a comment\n\nB7  # second row\n")
    assert "A2" in opted and "B7" in opted and "A1" not in opted
    path = tmp_path / "opt_out.txt"
    path.write_text("A3\n")
    assert "A3" in load_opt_out(path)
    assert "A3" not in load_opt_out(None)
    with pytest.raises(ValueError, match="opt-out"):
        load_opt_out(tmp_path / "missing.txt")  # never silently measure people who opted out


# --- head pose ------------------------------------------------------------------------------------

def rotation(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    """Head rotation with the documented sign conventions (x right, y down, z away from the camera):
    positive yaw moves the nose toward the image's right, positive pitch moves it up."""
    y, p, r = (math.radians(a) for a in (-yaw_deg, -pitch_deg, roll_deg))
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return rz @ rx @ ry


def project(yaw, pitch, roll=0.0, scale=180.0, centre=(320.0, 240.0), distance=None) -> np.ndarray:
    """Landmarks of the generic face turned by (yaw, pitch, roll): orthographic, or perspective at `distance`
    (in face-model units) when given."""
    points = FACE_MODEL_3D @ rotation(yaw, pitch, roll).T
    if distance is not None:
        points = points[:, :2] * distance / (distance + points[:, 2:])
    return points[:, :2] * scale + np.asarray(centre)


def test_frontal_face_has_zero_pose():
    yaw, pitch = head_pose(project(0, 0))
    assert abs(yaw) < 1e-6 and abs(pitch) < 1e-6


@pytest.mark.parametrize("yaw", [-50, -30, -10, 10, 30, 50])
@pytest.mark.parametrize("pitch", [-25, 0, 25])
@pytest.mark.parametrize("roll", [-20, 0, 15])
def test_pose_is_recovered_from_projected_geometry(yaw, pitch, roll):
    got_yaw, got_pitch = head_pose(project(yaw, pitch, roll))
    assert got_yaw == pytest.approx(yaw, abs=0.5)
    assert got_pitch == pytest.approx(pitch, abs=0.5)


def test_pose_under_perspective_and_noise_is_close():
    rng = np.random.default_rng(3)
    for yaw, pitch in [(25, 0), (0, 20), (-30, -15), (15, 10)]:
        points = project(yaw, pitch, distance=8.0) + rng.normal(0, 0.5, (5, 2))
        got_yaw, got_pitch = head_pose(points)
        assert got_yaw == pytest.approx(yaw, abs=5)
        assert got_pitch == pytest.approx(pitch, abs=5)


def test_sign_conventions_follow_the_nose():
    frontal = project(0, 0)
    turned = project(30, 0)
    tilted = project(0, 20)
    assert turned[2, 0] > frontal[2, 0] and head_pose(turned)[0] > 0  # nose moves right -> yaw > 0
    assert tilted[2, 1] < frontal[2, 1] and head_pose(tilted)[1] > 0  # nose moves up -> pitch > 0


def test_pose_is_scale_and_translation_invariant():
    a = head_pose(project(20, -10, scale=40, centre=(10, 10)))
    b = head_pose(project(20, -10, scale=400, centre=(900, 500)))
    assert a == pytest.approx(b, abs=1e-6)


@pytest.mark.parametrize("landmarks", [np.zeros((5, 2)), np.full((5, 2), np.nan), np.ones((4, 2)),
                                       np.column_stack([np.arange(5.0), np.arange(5.0)])])
def test_degenerate_landmarks_give_unknown_pose(landmarks):
    yaw, pitch = head_pose(landmarks)
    assert math.isnan(yaw) and math.isnan(pitch)
