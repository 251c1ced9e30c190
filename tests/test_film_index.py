"""The film structure index on a generated clip with known cuts and face sizes (producers/film_clip.py), the
cut and shot-scale rules on their own, and the `film_shots` store on both ClickHouse backends."""
from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from engines.face_detector import FaceDetector
from moviemotion.cli import main
from producers.film_clip import ClipRenderer, default_script, score_index, write_clip
from producers.film_index import index_film, store_shots
from producers.shot_detection import CutParams, StreamingCuts, detect_cuts, distance, signature, thumbnail
from producers.shot_scale import SCALE_THRESHOLDS, FrameFaces, scale_of, shot_faces
from producers.sources import SourceError
from tests.data import known_shots

CLIP_SIZE, CLIP_FPS = (960, 540), 25.0


@pytest.fixture(scope="module")
def indexed_clip(tmp_path_factory):
    """A 1.5-minute clip (about 20 cuts, 3 dissolves, 3 light changes, faces at every scale) and its index."""
    path = tmp_path_factory.mktemp("film") / "clip.mp4"
    truth = write_clip(path, default_script(1.5), CLIP_SIZE, CLIP_FPS)
    return path, truth, index_film(path)


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory):
    """A 15-second clip written by the `film generate-clip` command."""
    path = tmp_path_factory.mktemp("film") / "short.mp4"
    result = CliRunner().invoke(main, ["film", "generate-clip", str(path), "--minutes", "0.25", "--size", "960", "540"])
    assert result.exit_code == 0, result.output
    return path


def test_cuts_are_found_on_the_known_clip(indexed_clip):
    _, truth, index = indexed_clip
    score = score_index(truth, index.shots)
    assert len(truth.cuts) >= 20 and len(truth.soft_changes) >= 4
    assert score.cut_recall >= 0.95 and score.cut_precision >= 0.95, score


def test_dissolves_and_light_changes_are_not_cuts(indexed_clip):
    _, truth, index = indexed_clip
    boundaries = np.array([shot.start_s for shot in index.shots[1:]])
    for change in truth.soft_changes:
        assert np.all(np.abs(boundaries - change) > 0.75), f"a boundary near the soft change at {change:.2f}s"


def test_shot_scales_match_the_known_face_sizes(indexed_clip):
    _, truth, index = indexed_clip
    assert {shot.scale for shot in truth.shots} == {"close_up", "medium_close_up", "medium", "wide", "no_face"}
    assert score_index(truth, index.shots).scale_accuracy >= 0.90


def test_shots_tile_the_film(indexed_clip):
    path, truth, index = indexed_clip
    assert index.path == path and index.frame_size == CLIP_SIZE and index.video_fps == pytest.approx(CLIP_FPS)
    assert index.shots[0].start_s == 0 and index.duration_s == pytest.approx(truth.duration_s)
    assert [s.shot_no for s in index.shots] == list(range(1, len(index.shots) + 1))
    for before, after in zip(index.shots, index.shots[1:]):
        assert before.end_s == after.start_s > before.start_s
    assert sum(s.samples for s in index.shots) == index.samples == pytest.approx(truth.duration_s * 2, abs=2)
    assert all(0 < s.brightness < 1 for s in index.shots)
    assert all((s.face_count == 0) == (s.scale == "no_face") for s in index.shots)


def test_an_unreadable_film_is_one_clear_error(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 100)
    with pytest.raises(SourceError, match="cannot open video file"):
        index_film(junk)
    result = CliRunner().invoke(main, ["--state-dir", str(tmp_path / "state"), "film", "index", str(junk), "--film", "f"])
    assert result.exit_code == 1 and "Error: cannot open video file" in result.output


def test_cut_rule_isolated_spikes_only():
    params = CutParams(min_distance=0.25, peak_ratio=2.0, window=2)
    quiet, spike = 0.02, 0.6
    cut = [0.0, quiet, quiet, spike, quiet, quiet, quiet]
    dissolve = [0.0, quiet, 0.2, 0.3, 0.25, quiet, quiet]  # the change spread over three samples
    small = [0.0, quiet, quiet, 0.2, quiet, quiet]  # isolated but below min_distance
    motion = [0.0, 0.2, 0.3, 0.5, 0.3, 0.2]  # a busy neighbourhood
    assert detect_cuts(cut, params) == [3]
    assert detect_cuts(dissolve, params) == detect_cuts(small, params) == detect_cuts(motion, params) == []
    assert detect_cuts([0.0, spike, quiet, quiet, spike], params) == [1, 4]  # at the edges of the film
    with pytest.raises(ValueError, match="peak_ratio"):
        CutParams(peak_ratio=0.5)


def test_streaming_cuts_decide_like_the_batch_rule():
    rng = np.random.default_rng(3)
    for trial in range(20):
        distances = list(rng.choice([0.02, 0.1, 0.3, 0.7], size=int(rng.integers(1, 40)), p=[0.6, 0.2, 0.1, 0.1]))
        distances[0] = 0.0
        params = CutParams(window=int(rng.integers(1, 4)))
        stream = StreamingCuts(params)
        decisions = [d for value in distances for d in stream.push(value)] + stream.finish()
        assert [i for i, is_cut in enumerate(decisions) if is_cut] == detect_cuts(distances, params)


def test_signature_ignores_brightness_but_not_a_new_set():
    renderer = ClipRenderer((320, 180), seed=5)
    one, other = (np.clip(renderer.setup(n, "medium", 1), 0, 255).astype(np.uint8) for n in (1, 2))
    dimmed = (one * 0.6).astype(np.uint8)
    limit = CutParams().min_distance
    assert distance(signature(thumbnail(one)), signature(thumbnail(dimmed))) < limit / 2
    assert distance(signature(thumbnail(one)), signature(thumbnail(other))) > 2 * limit


def test_shot_scale_bands():
    bounds = dict(SCALE_THRESHOLDS)
    assert scale_of(0.0) == "no_face"
    assert scale_of(bounds["medium"] / 2) == "wide"
    for scale, smallest in SCALE_THRESHOLDS:
        assert scale_of(smallest) == scale
    assert scale_of(1.0) == "close_up"
    with pytest.raises(ValueError, match="finite number"):
        scale_of(-0.1)


def test_a_shot_scale_survives_one_missed_or_spurious_detection():
    cu = FrameFaces(1, 0.45)
    assert shot_faces([cu, FrameFaces(0, 0.0), cu]).scale == "close_up"
    assert shot_faces([FrameFaces(0, 0.0), FrameFaces(0, 0.0), FrameFaces(1, 0.02)]).scale == "no_face"
    group = shot_faces([FrameFaces(3, 0.05), FrameFaces(2, 0.06), FrameFaces(3, 0.05)])
    assert (group.scale, group.face_count, group.face_height) == ("wide", 3, 0.05)


def test_generated_faces_are_detectable_at_their_scale():
    renderer, detector = ClipRenderer((960, 540), seed=9), FaceDetector()
    for scale in ("close_up", "medium_close_up", "medium", "wide"):
        frames = [np.clip(renderer.setup(n, scale, 1), 0, 255).astype(np.uint8) for n in range(12)]
        heights = [max((d.bbox[3] for d in detector.detect(frame)), default=0.0) / 540 for frame in frames]
        assert sum(h > 0 for h in heights) >= 10, f"{scale}: YuNet misses faces: {heights}"
        assert all(scale_of(h) == scale for h in heights if h > 0), f"{scale}: face heights {heights}"


def test_reindexing_replaces_the_film_shots(clickhouse_target):
    client = clickhouse_target.client
    store_shots(client, "film-x", known_shots.SHOTS, "first.mp4")
    store_shots(client, "film-y", known_shots.SHOTS[:2], "other.mp4")
    store_shots(client, "film-x", known_shots.SHOTS[:3], "second.mp4")  # fewer shots: none of the first may remain
    rows = client.query_dicts("SELECT * FROM current_film_shots WHERE film_id = 'film-x' ORDER BY shot_no")
    assert [(r["shot_no"], r["start_s"], r["end_s"], r["shot_scale"], r["face_count"]) for r in rows] == [
        (s.shot_no, s.start_s, s.end_s, s.scale, s.face_count) for s in known_shots.SHOTS[:3]
    ]
    assert [r["face_height"] for r in rows] == pytest.approx([s.face_height for s in known_shots.SHOTS[:3]])
    assert client.query("SELECT count() FROM current_film_shots WHERE film_id = 'film-y'") == [(2,)]
    with pytest.raises(ValueError, match="no shots"):
        store_shots(client, "film-x", [], "empty.mp4")


def test_film_index_command_stores_the_shots(clickhouse_target, short_clip):
    args = ["--state-dir", str(clickhouse_target.settings.state_dir), "--clickhouse", clickhouse_target.settings.clickhouse_url]
    result = CliRunner().invoke(main, [*args, "film", "index", str(short_clip), "--film", "film-short"])
    assert result.exit_code == 0, result.output
    index = index_film(short_clip)
    rows = clickhouse_target.client.query_dicts("SELECT * FROM current_film_shots WHERE film_id = 'film-short' ORDER BY shot_no")
    assert [(r["start_s"], r["end_s"], r["shot_scale"], r["face_count"]) for r in rows] == [
        (s.start_s, s.end_s, s.scale, s.face_count) for s in index.shots
    ]
    assert f"indexed film-short: {len(index.shots)} shots" in result.output
