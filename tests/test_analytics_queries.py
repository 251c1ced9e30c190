"""Every named cookbook query, on both stores, against the known screening (tests/data/known_screening.py).

Expected answers come from the script of the dataset: a plain-Python reading of the same rows (the oracle
functions below) plus the facts the script was built to produce (e.g. only The Twist surprised most of the room).
"""
from __future__ import annotations

import math
from collections import defaultdict

import pytest

from engines.emotions import EMOTIONS
from moviemotion.analytics.queries import QUERIES, REACTIONS, get_query, run_query
from moviemotion.analytics.scenes import read_scene_csv
from producers.shot_scale import SHOT_SCALES
from tests.data import known_screening as known
from tests.data import known_shots

SCENES = read_scene_csv(known.SCENES_CSV)
ROWS = known.viewer_rows()


def rows_of(screening: str) -> list[dict]:
    return [r for r in ROWS if r["screening_id"] == screening and r["attending"] == 1]


def scene_of(second: int):
    return next((s for s in SCENES if s.start_s <= second < s.end_s), None)


def room(screening: str) -> dict[int, dict[str, float]]:
    """movie_second -> room means of i_<emotion> and intensity over attending viewers, plus counts."""
    by_second = defaultdict(list)
    for r in rows_of(screening):
        by_second[r["movie_second"]].append(r)
    means = {}
    for second, rows in by_second.items():
        means[second] = {e: sum(r[f"i_{e}"] for r in rows) / len(rows) for e in EMOTIONS}
        means[second]["intensity"] = sum(r["intensity"] for r in rows) / len(rows)
        means[second]["attending"] = len(rows)
        means[second]["laughing"] = sum(r["dominant"] == "happiness" for r in rows) / len(rows)
    return means


def scene_means(screening: str, scene) -> dict[str, float]:
    rows = [r for r in rows_of(screening) if scene.start_s <= r["movie_second"] < scene.end_s]
    return {**{e: sum(r[f"i_{e}"] for r in rows) / len(rows) for e in EMOTIONS}, "intensity": sum(r["intensity"] for r in rows) / len(rows)}


def viewer_peaks(screening: str, scene, column: str) -> dict[str, float]:
    peaks: dict[str, float] = {}
    for r in rows_of(screening):
        if scene.start_s <= r["movie_second"] < scene.end_s:
            peaks[r["person_key"]] = max(peaks.get(r["person_key"], 0.0), r[column])
    return peaks


@pytest.fixture
def loaded(clickhouse):
    known.load(clickhouse)
    return clickhouse


def check_scene_summary(client):
    got = run_query(client, "scene_summary", screening=known.SCREENING_A, threshold=0.3)
    means = room(known.SCREENING_A)
    assert [r["scene_no"] for r in got] == [s.scene_no for s in SCENES]
    for row, scene in zip(got, SCENES):
        expected = scene_means(known.SCREENING_A, scene)
        assert row["title"] == scene.title and row["start_s"] == scene.start_s and row["end_s"] == scene.end_s
        for emotion in EMOTIONS:
            assert row[f"mean_i_{emotion}"] == pytest.approx(expected[emotion])
        assert row["mean_intensity"] == pytest.approx(expected["intensity"])
        assert row["top_emotion"] == max(REACTIONS, key=lambda e: expected[e])
        seconds = [s for s in means if scene.start_s <= s < scene.end_s]
        assert row["peak_second"] == max(seconds, key=lambda s: means[s]["intensity"])
        peaks = viewer_peaks(known.SCREENING_A, scene, "intensity")
        assert (row["viewers"], row["reacted"]) == (len(peaks), sum(p >= 0.3 for p in peaks.values()))
    # by construction: The Joke peaks at 37 with 5 of 6 reacting (4 laughs + a6's sadness), The Twist at 71
    assert [(r["peak_second"], r["reacted"], r["top_emotion"]) for r in got[1:3]] == [(37, 5, "happiness"), (71, 4, "surprise")]


def check_audience_timeline(client):
    got = run_query(client, "audience_timeline", screening=known.SCREENING_A)
    means = room(known.SCREENING_A)
    assert [r["movie_second"] for r in got] == sorted(means)
    for row in got:
        rows = [r for r in rows_of(known.SCREENING_A) if r["movie_second"] == row["movie_second"]]
        for emotion in EMOTIONS:
            assert row[f"share_{emotion}"] == pytest.approx(sum(r["dominant"] == emotion for r in rows) / len(rows))
        assert sum(row[f"share_{e}"] for e in EMOTIONS) == pytest.approx(1.0)
        assert row["mean_intensity"] == pytest.approx(means[row["movie_second"]]["intensity"])
        scene = scene_of(row["movie_second"])
        assert row["scene_no"] == (scene.scene_no if scene else 0)


def check_funniest_seconds(client):
    got = run_query(client, "funniest_seconds", screening=known.SCREENING_A)
    means = room(known.SCREENING_A)
    expected = sorted(means, key=lambda s: (-means[s]["happiness"], s))[:10]
    assert [r["movie_second"] for r in got] == expected
    for row in got:
        second = row["movie_second"]
        scene = scene_of(second)
        assert row["mean_happiness"] == pytest.approx(means[second]["happiness"])
        assert row["laughing_share"] == pytest.approx(means[second]["laughing"])
        assert (row["scene_no"], row["scene_title"]) == ((scene.scene_no, scene.title) if scene else (0, ""))
    assert got[0]["movie_second"] == 37


def check_surprised_scenes(client):
    got = run_query(client, "surprised_scenes", screening=known.SCREENING_A)
    expected = []
    for scene in SCENES:
        peaks = viewer_peaks(known.SCREENING_A, scene, "i_surprise")
        surprised = sum(p >= 0.3 for p in peaks.values())
        if surprised / len(peaks) > 0.5:
            expected.append((scene.scene_no, scene.title, len(peaks), surprised))
    assert [(r["scene_no"], r["title"], r["viewers"], r["surprised"]) for r in got] == expected
    assert expected == [(3, "The Twist", 6, 4)]  # Farewell: 3 of 6, exactly half, does not count


def check_resonant_moments(client):
    got = run_query(client, "resonant_moments", screening=known.SCREENING_A, k=3, min_intensity=0.1)
    means = room(known.SCREENING_A)
    expected = []
    for emotion in REACTIONS:
        groups = defaultdict(list)
        for second in means:
            scene = scene_of(second)
            groups[(scene.scene_no if scene else 0, 0 if scene else second // 60)].append(second)
        peaks = [max(seconds, key=lambda s: (means[s][emotion], -s)) for seconds in groups.values()]
        peaks = [s for s in peaks if means[s][emotion] >= 0.1]
        expected += [(emotion, s) for s in sorted(peaks, key=lambda s: (-means[s][emotion], s))[:3]]
    assert [(r["emotion"], r["movie_second"]) for r in got] == expected
    for row in got:
        assert row["mean_intensity"] == pytest.approx(means[row["movie_second"]][row["emotion"]])
        assert row["scene_no"] == scene_of(row["movie_second"]).scene_no
    assert expected == [("happiness", 37), ("happiness", 96), ("surprise", 71), ("surprise", 110), ("surprise", 10), ("sadness", 40)]


def check_outlier_viewers(client):
    got = run_query(client, "outlier_viewers", screening=known.SCREENING_A, limit=6)
    means = room(known.SCREENING_A)
    distance = defaultdict(list)
    for r in rows_of(known.SCREENING_A):
        distance[r["person_key"]].append(sum(abs(r[f"i_{e}"] - means[r["movie_second"]][e]) for e in EMOTIONS))
    expected = sorted(distance, key=lambda p: (-sum(distance[p]) / len(distance[p]), p))
    assert [r["person_key"] for r in got] == expected
    for row in got:
        assert row["seconds"] == len(distance[row["person_key"]])
        assert row["mean_distance"] == pytest.approx(sum(distance[row["person_key"]]) / row["seconds"])
    assert expected[0] == "a6"  # sad through The Joke


def check_laugh_durations(client):
    got = run_query(client, "laugh_durations", screening=known.SCREENING_A, threshold=0.3)
    runs = [last - first + 1 for who, emotion, first, last, value in known.SCRIPT if who.startswith("a") and emotion == "happiness" and value >= 0.3 and (who, first) not in {("a2", 37), ("a5", 96)}]
    assert sorted(runs) == [2, 3, 3, 5, 7]
    assert got == [{"laughs": 5, "mean_duration_s": pytest.approx(sum(runs) / 5), "median_duration_s": sorted(runs)[2], "longest_s": 7}]


def check_attention_by_scene(client):
    got = run_query(client, "attention_by_scene", screening=known.SCREENING_A)
    expected = {}
    for scene in SCENES:
        rows = [r for r in ROWS if r["screening_id"] == known.SCREENING_A and scene.start_s <= r["movie_second"] < scene.end_s]
        visible = sum(r["visible"] for r in rows)
        seconds = len({r["movie_second"] for r in rows})
        expected[scene.scene_no] = (sum(r["attending"] for r in rows) / visible, visible / seconds)
    assert [r["scene_no"] for r in got] == sorted(expected, key=lambda n: (expected[n][0], n))
    for row in got:
        assert (row["attention_share"], row["mean_visible"]) == pytest.approx(expected[row["scene_no"]])
    assert got[0]["scene_no"] == 3 and got[0]["attention_share"] < 1  # a4 looked away in The Twist


def check_valence_arc(client):
    got = run_query(client, "valence_arc", screening=known.SCREENING_A, bucket_s=60)
    buckets = defaultdict(list)
    for r in rows_of(known.SCREENING_A):
        buckets[r["movie_second"] // 60 * 60].append(r)
    assert [r["bucket_start_s"] for r in got] == sorted(buckets)
    for row in got:
        rows = buckets[row["bucket_start_s"]]
        assert row["samples"] == len(rows)
        assert row["mean_valence"] == pytest.approx(sum(r["valence"] for r in rows) / len(rows))
        assert row["mean_arousal"] == pytest.approx(sum(r["arousal"] for r in rows) / len(rows))


def check_compare_screenings(client):
    got = run_query(client, "compare_screenings", film=known.FILM_ID)
    expected = [(scene.scene_no, screening) for scene in SCENES for screening in sorted(known.VIEWERS)]
    assert [(r["scene_no"], r["screening_id"]) for r in got] == expected
    for row in got:
        scene = next(s for s in SCENES if s.scene_no == row["scene_no"])
        means = scene_means(row["screening_id"], scene)
        assert (row["mean_i_happiness"], row["mean_i_surprise"], row["mean_intensity"]) == pytest.approx((means["happiness"], means["surprise"], means["intensity"]))


def shot_oracle(screening: str, shot) -> dict:
    """A shot's audience from ROWS: means over attending viewer-seconds, earliest peak second, reaction lag."""
    seconds = range(math.ceil(shot.start_s), math.ceil(shot.end_s))
    rows = [r for r in rows_of(screening) if r["movie_second"] in seconds]
    means = room(screening)
    peak = max(seconds, key=lambda s: (means[s]["intensity"], -s))
    return {
        **{e: sum(r[f"i_{e}"] for r in rows) / len(rows) for e in REACTIONS},
        "intensity": sum(r["intensity"] for r in rows) / len(rows),
        "attending": len(rows), "seconds": len(seconds), "peak_second": peak,
        "peak_intensity": means[peak]["intensity"], "lag": peak - shot.start_s,
    }


def check_shot_reactions(client):
    got = run_query(client, "shot_reactions", screening=known.SCREENING_A)
    assert [r["shot_no"] for r in got] == [s.shot_no for s in known_shots.SHOTS]
    for row, shot in zip(got, known_shots.SHOTS):
        want = shot_oracle(known.SCREENING_A, shot)
        assert (row["start_s"], row["end_s"], row["shot_scale"], row["face_count"]) == (shot.start_s, shot.end_s, shot.scale, shot.face_count)
        assert (row["mean_intensity"], row["peak_intensity"], row["reaction_lag_s"]) == pytest.approx((want["intensity"], want["peak_intensity"], want["lag"]))
        assert row["peak_second"] == want["peak_second"]
        assert row["top_emotion"] == max(REACTIONS, key=lambda e: (want[e], -REACTIONS.index(e)))
    by_no = {r["shot_no"]: r for r in got}
    assert (by_no[4]["top_emotion"], by_no[7]["top_emotion"], by_no[9]["top_emotion"]) == ("happiness", "surprise", "happiness")
    assert (by_no[7]["peak_second"], by_no[7]["reaction_lag_s"]) == (71, 3.0)  # a1's surprise accent, 3 s into the shot


def check_shot_scale_reaction(client):
    got = run_query(client, "shot_scale_reaction", screening=known.SCREENING_A)
    by_scale = defaultdict(list)
    for shot in known_shots.SHOTS:
        by_scale[shot.scale].append(shot_oracle(known.SCREENING_A, shot))
    assert [r["shot_scale"] for r in got] == [scale for scale in SHOT_SCALES if scale in by_scale]
    for row in got:
        shots = by_scale[row["shot_scale"]]
        weight = sum(s["attending"] for s in shots)
        assert (row["shots"], row["seconds"]) == (len(shots), sum(s["seconds"] for s in shots))
        for key, column in [("intensity", "mean_intensity"), *((e, f"mean_i_{e}") for e in REACTIONS)]:
            assert row[column] == pytest.approx(sum(s[key] * s["attending"] for s in shots) / weight)
        assert row["mean_reaction_lag_s"] == pytest.approx(sum(s["lag"] for s in shots) / len(shots))
    means = {r["shot_scale"]: r["mean_intensity"] for r in got}
    assert means["close_up"] > means["medium"] > means["wide"] == 0  # the reactions were all in close-ups


CHECKS = {name[len("check_"):]: check for name, check in dict(globals()).items() if name.startswith("check_")}


def test_every_query_has_a_check():
    assert sorted(CHECKS) == sorted(q.name for q in QUERIES)


def test_queries_answer_the_known_screening(loaded, subtests):
    for name, check in CHECKS.items():
        with subtests.test(query=name):
            check(loaded)


def test_query_parameters_are_checked():
    with pytest.raises(ValueError, match="missing parameter"):
        get_query("scene_summary").params({})
    with pytest.raises(ValueError, match="unknown parameter"):
        get_query("scene_summary").params({"screening": "x", "treshold": 0.2})
    with pytest.raises(KeyError, match="unknown query"):
        get_query("nope")
