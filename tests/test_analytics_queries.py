"""Every named cookbook query, on both stores, against the known screening (tests/data/known_screening.py).

Expected answers come from the script of the dataset: a plain-Python reading of the same rows (the oracle
functions below) plus the facts the script was built to produce (e.g. only The Twist surprised most of the room).
"""
from __future__ import annotations

import math
from collections import defaultdict

import pytest

from schemas.emotions import EMOTIONS
from moviemotion.analytics.queries import METRIC_LABELS, NORM_FIGURES, QUERIES, REACTIONS, get_query, run_query
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


def measured_rows(screening: str) -> list[dict]:
    """Attending rows whose reaction was measured (not '': stored before migration 0004)."""
    return [r for r in rows_of(screening) if r["reaction"] != ""]


def second_shares(screening: str) -> dict[int, dict[str, float]]:
    """movie_second -> engagement ('any') and the share of each emotion's reaction, over measured attending viewers
    (seconds without a measured viewer are left out)."""
    by_second = defaultdict(list)
    for r in measured_rows(screening):
        by_second[r["movie_second"]].append(r)
    shares = {}
    for second, rows in by_second.items():
        shares[second] = {e: sum(r["reaction"] == e for r in rows) / len(rows) for e in EMOTIONS}
        shares[second]["any"] = sum(r["reaction"] != "neutral" for r in rows) / len(rows)
        shares[second]["measured"] = len(rows)
    return shares


def shown(screening: str, scene=None) -> dict[str, set[str]]:
    """person_key -> the reactions (neutral included) they showed in measured attending seconds (of the scene)."""
    out: dict[str, set[str]] = defaultdict(set)
    for r in measured_rows(screening):
        if scene is None or scene.start_s <= r["movie_second"] < scene.end_s:
            out[r["person_key"]].add(r["reaction"])
    return out


def metrics_oracle(screening: str, scene=None) -> dict[str, dict]:
    """audience_metrics / scene_reaction_metrics from the rows: label -> figures."""
    shares = {s: v for s, v in second_shares(screening).items() if scene is None or scene.start_s <= s < scene.end_s}
    viewers = shown(screening, scene)
    out = {}
    for label in METRIC_LABELS:
        values = {s: shares[s][label] for s in shares}
        showed = sum(any(r != "neutral" for r in rs) if label == "any" else label in rs for rs in viewers.values())
        out[label] = {
            "viewers": len(viewers), "ever_viewers": showed, "ever_share": showed / len(viewers),
            "mean_share": sum(values.values()) / len(values),
            "peak_share": max(values.values()), "peak_second": min(s for s in values if values[s] == max(values.values())),
            "trough_share": min(values.values()), "trough_second": min(s for s in values if values[s] == min(values.values())),
            "measured_seconds": len(values),
        }
    return out


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
        means[second]["laughing"] = sum(r["reaction"] == "happiness" for r in rows) / len(rows)
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
    got = run_query(client, "scene_summary", screening=known.SCREENING_A)
    means = room(known.SCREENING_A)
    assert [r["scene_no"] for r in got] == [s.scene_no for s in SCENES]
    for row, scene in zip(got, SCENES):
        expected = scene_means(known.SCREENING_A, scene)
        assert row["title"] == scene.title and row["start_s"] == scene.start_s and row["end_s"] == scene.end_s
        for emotion in EMOTIONS:
            assert row[f"mean_i_{emotion}"] == pytest.approx(expected[emotion])
        assert row["mean_intensity"] == pytest.approx(expected["intensity"])
        metrics = metrics_oracle(known.SCREENING_A, scene)
        assert row["engagement"] == pytest.approx(metrics["any"]["mean_share"])
        for emotion in REACTIONS:
            assert row[f"share_{emotion}"] == pytest.approx(metrics[emotion]["mean_share"])
        assert row["top_reaction"] == max(REACTIONS, key=lambda e: (metrics[e]["mean_share"], -REACTIONS.index(e)))
        seconds = [s for s in means if scene.start_s <= s < scene.end_s]
        assert row["peak_second"] == max(seconds, key=lambda s: means[s]["intensity"])
        assert (row["viewers"], row["reacted"]) == (metrics["any"]["viewers"], metrics["any"]["ever_viewers"])
    # by construction: The Joke peaks at 37 with 5 of 6 reacting (4 laughs + a6's sadness), The Twist at 71 with 5
    # (a1-a4 at 70-72, a5 at 88-89); Opening's most-shown reaction is surprise (a5+a6 at 10), not a3's resting sadness
    assert [(r["peak_second"], r["reacted"], r["top_reaction"]) for r in got[1:3]] == [(37, 5, "happiness"), (71, 5, "surprise")]
    assert got[0]["top_reaction"] == "surprise" and got[0]["share_sadness"] == 0


def check_audience_timeline(client):
    got = run_query(client, "audience_timeline", screening=known.SCREENING_A)
    means = room(known.SCREENING_A)
    assert [r["movie_second"] for r in got] == sorted(means)
    for row in got:
        rows = [r for r in rows_of(known.SCREENING_A) if r["movie_second"] == row["movie_second"]]
        assert (row["attending"], row["measured"]) == (len(rows), len(rows))  # screening A: every row measured
        for emotion in EMOTIONS:
            assert row[f"share_{emotion}"] == pytest.approx(sum(r["reaction"] == emotion for r in rows) / len(rows))
        assert row["engagement"] == pytest.approx(sum(r["reaction"] != "neutral" for r in rows) / len(rows))
        assert sum(row[f"share_{e}"] for e in EMOTIONS) == pytest.approx(1.0)
        assert row["mean_intensity"] == pytest.approx(means[row["movie_second"]]["intensity"])
        scene = scene_of(row["movie_second"])
        assert row["scene_no"] == (scene.scene_no if scene else 0)
    # a3's resting face: the raw label calls it sadness, the reaction neutral; at second 0 nobody reacts
    assert (got[0]["share_neutral"], got[0]["share_sadness"]) == (1.0, 0.0)
    # screening C: seconds 0-29 were stored before migration 0004: attending, not measured, no share
    got_c = run_query(client, "audience_timeline", screening=known.SCREENING_C)
    assert [(r["movie_second"], r["attending"], r["measured"]) for r in got_c[28:32]] == [(28, 3, 0), (29, 3, 0), (30, 3, 3), (31, 3, 3)]
    assert all(sum(r[f"share_{e}"] for e in EMOTIONS) == 0 for r in got_c[:30])
    assert got_c[45]["engagement"] == pytest.approx(2 / 3)


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
        viewers = shown(known.SCREENING_A, scene)
        surprised = sum("surprise" in reactions for reactions in viewers.values())
        if surprised / len(viewers) > 0.5:
            expected.append((scene.scene_no, scene.title, len(viewers), surprised))
    assert [(r["scene_no"], r["title"], r["viewers"], r["surprised"]) for r in got] == expected
    assert expected == [(3, "The Twist", 6, 5)]  # Farewell: 3 of 6, exactly half, does not count


def check_resonant_moments(client):
    got = run_query(client, "resonant_moments", screening=known.SCREENING_A, k=3, min_share=0.1)
    means, shares = room(known.SCREENING_A), second_shares(known.SCREENING_A)
    expected = []
    for emotion in REACTIONS:
        groups = defaultdict(list)
        for second in shares:
            scene = scene_of(second)
            groups[(scene.scene_no if scene else 0, 0 if scene else second // 60)].append(second)
        rank = lambda s: (shares[s][emotion], means[s][emotion], -s)  # noqa: E731
        peaks = [max(seconds, key=rank) for seconds in groups.values()]
        peaks = [s for s in peaks if shares[s][emotion] >= 0.1]
        expected += [(emotion, s) for s in sorted(peaks, key=rank, reverse=True)[:3]]
    assert [(r["emotion"], r["movie_second"]) for r in got] == expected
    for row in got:
        assert row["share"] == pytest.approx(shares[row["movie_second"]][row["emotion"]])
        assert row["mean_intensity"] == pytest.approx(means[row["movie_second"]][row["emotion"]])
        assert row["scene_no"] == scene_of(row["movie_second"]).scene_no
    # by share of the room: a1's lone laugh at 100 (1 of the 5 left after a6 walked out) outranks a5's at 96 (1 of 6);
    # contempt (a2 at 20, 1 of 6) is a moment too, though its mean intensity is only 0.25 / 6
    assert expected == [("happiness", 37), ("happiness", 100), ("surprise", 71), ("surprise", 110), ("surprise", 10), ("sadness", 40), ("contempt", 20)]


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
    got = run_query(client, "laugh_durations", screening=known.SCREENING_A)
    runs = [last - first + 1 for who, emotion, first, last, value in known.SCRIPT if who.startswith("a") and emotion == "happiness" and (who, first) not in {("a2", 37), ("a5", 96)}]
    assert sorted(runs) == [1, 2, 3, 3, 5, 7]  # a1's 0.25 laugh at 100 is a happiness reaction of 1 s
    assert got == [{"laughs": 6, "mean_duration_s": pytest.approx(3.5), "median_duration_s": 3, "longest_s": 7}]


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
    expected = [(scene.scene_no, screening) for scene in SCENES for screening in sorted(s for s in known.VIEWERS if known.FILMS[s] == known.FILM_ID)]
    assert [(r["scene_no"], r["screening_id"]) for r in got] == expected
    for row in got:
        scene = next(s for s in SCENES if s.scene_no == row["scene_no"])
        means, metrics = scene_means(row["screening_id"], scene), metrics_oracle(row["screening_id"], scene)
        assert (row["engagement"], row["share_happiness"], row["share_surprise"], row["mean_intensity"]) == pytest.approx(
            (metrics["any"]["mean_share"], metrics["happiness"]["mean_share"], metrics["surprise"]["mean_share"], means["intensity"]))
    # screening B: all 4 viewers laugh at 36-37, the 2 seconds of The Joke's 31
    assert [r["share_happiness"] for r in got if r["screening_id"] == known.SCREENING_B and r["scene_no"] == 2] == [pytest.approx(2 / 31)]


def shot_oracle(screening: str, shot) -> dict:
    """A shot's audience from ROWS: means over attending viewer-seconds, earliest peak second, reaction lag."""
    seconds = range(math.ceil(shot.start_s), math.ceil(shot.end_s))
    rows = [r for r in rows_of(screening) if r["movie_second"] in seconds]
    means, shares = room(screening), second_shares(screening)
    peak = max(seconds, key=lambda s: (means[s]["intensity"], -s))
    measured = [s for s in seconds if s in shares]
    return {
        "engagement": sum(shares[s]["any"] for s in measured) / len(measured), "measured_seconds": len(measured),
        **{f"share_{e}": sum(shares[s][e] for s in measured) / len(measured) for e in REACTIONS},
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
        assert row["engagement"] == pytest.approx(want["engagement"])
        top = max(REACTIONS, key=lambda e: (want[f"share_{e}"], -REACTIONS.index(e)))
        assert row["top_reaction"] == (top if want[f"share_{top}"] > 0 else "")
    by_no = {r["shot_no"]: r for r in got}
    assert (by_no[4]["top_reaction"], by_no[7]["top_reaction"], by_no[9]["top_reaction"]) == ("happiness", "surprise", "happiness")
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
        measured = sum(s["measured_seconds"] for s in shots)
        assert row["engagement"] == pytest.approx(sum(s["engagement"] * s["measured_seconds"] for s in shots) / measured)
        assert row["mean_reaction_lag_s"] == pytest.approx(sum(s["lag"] for s in shots) / len(shots))
    means = {r["shot_scale"]: r["mean_intensity"] for r in got}
    assert means["close_up"] > means["medium"] > means["wide"] == 0  # the reactions were all in close-ups


def check_audience_metrics(client):
    for screening in known.VIEWERS:
        got = run_query(client, "audience_metrics", screening=screening)
        expected = metrics_oracle(screening)
        assert [r["reaction"] for r in got] == list(METRIC_LABELS)
        for row in got:
            assert {k: v for k, v in row.items() if k != "reaction"} == pytest.approx(expected[row["reaction"]])
    a = {r["reaction"]: r for r in run_query(client, "audience_metrics", screening=known.SCREENING_A)}
    # by hand: every one of the 6 reacted at some point, 5 of them laughed (all but a6); the biggest laugh is
    # 3 of 6 at 36 (a1, a2, a3: 36-38, the earliest); the room's peak is 4 of 6 at 36 (the laughs plus a6's sadness)
    assert (a["any"]["ever_viewers"], a["happiness"]["ever_viewers"], a["anger"]["ever_viewers"]) == (6, 5, 0)
    assert (a["happiness"]["peak_share"], a["happiness"]["peak_second"]) == (0.5, 36)
    assert (a["any"]["peak_share"], a["any"]["peak_second"], a["any"]["trough_share"], a["any"]["trough_second"]) == (pytest.approx(4 / 6), 36, 0, 0)
    c = {r["reaction"]: r for r in run_query(client, "audience_metrics", screening=known.SCREENING_C)}
    # screening C: only seconds 30-59 were measured; c1 laughs 40-49 (1 of 3), c2 is surprised at 45:
    # engagement = (9 x 1/3 + 2/3) / 30 = 11/90, not 11/180 as it would be with the 30 unmeasured seconds as "no reaction"
    assert (c["any"]["measured_seconds"], c["any"]["viewers"], c["any"]["ever_viewers"]) == (30, 3, 2)
    assert c["any"]["mean_share"] == pytest.approx(11 / 90)
    assert (c["any"]["peak_share"], c["any"]["peak_second"], c["happiness"]["trough_second"]) == (pytest.approx(2 / 3), 45, 30)


def check_scene_reaction_metrics(client):
    got = run_query(client, "scene_reaction_metrics", screening=known.SCREENING_A)
    assert [(r["scene_no"], r["reaction"]) for r in got] == [(s.scene_no, label) for s in SCENES for label in METRIC_LABELS]
    for row in got:
        scene = next(s for s in SCENES if s.scene_no == row["scene_no"])
        expected = metrics_oracle(known.SCREENING_A, scene)[row["reaction"]]
        assert {k: v for k, v in row.items() if k not in ("scene_no", "reaction")} == pytest.approx(expected)
    farewell = {r["reaction"]: r for r in got if r["scene_no"] == 4}
    # by hand: a1's laugh at 100 is 1 of the 5 still there (a6 walked out at 100): a bigger share than a5's 1 of 6 at 95-97
    assert (farewell["happiness"]["peak_share"], farewell["happiness"]["peak_second"], farewell["happiness"]["ever_viewers"]) == (pytest.approx(1 / 5), 100, 2)
    assert (farewell["surprise"]["peak_share"], farewell["surprise"]["peak_second"]) == (pytest.approx(3 / 5), 110)


def check_scene_impact(client):
    got = run_query(client, "scene_impact", screening=known.SCREENING_A)
    shares = second_shares(known.SCREENING_A)
    assert [r["scene_no"] for r in got] == [s.scene_no for s in SCENES]
    for row, scene in zip(got, SCENES):
        seconds = sorted(s for s in shares if scene.start_s <= s < scene.end_s)
        engagement = [shares[s]["any"] for s in seconds]
        peak = max(engagement)
        expected = {
            "scene_no": scene.scene_no, "title": scene.title, "measured_seconds": len(seconds),
            "engagement": sum(engagement) / len(engagement), "peak_engagement": peak,
            "peak_second": seconds[engagement.index(peak)], "end_engagement": engagement[-1], "end_second": seconds[-1],
            "peak_end": (peak + engagement[-1]) / 2,
        }
        assert row == pytest.approx(expected)
    # by hand: The Twist peaks at 4 of 6 (a1-a4 surprised at 70) and ends with a5's surprise at 89 (1 of 6): (4/6 + 1/6) / 2
    twist = got[2]
    assert (twist["peak_second"], twist["end_second"], twist["peak_end"]) == (70, 89, pytest.approx(5 / 12))
    assert got[1]["peak_end"] == pytest.approx((4 / 6 + 0) / 2)  # The Joke ends quietly (second 60)


def norm_figures(screening: str) -> dict[str, float]:
    metrics = metrics_oracle(screening)
    return {"engagement": metrics["any"]["mean_share"], "reacted_share": metrics["any"]["ever_share"],
            **{f"share_{e}": metrics[e]["mean_share"] for e in REACTIONS}}


def check_screening_norms(client):
    figures = {screening: norm_figures(screening) for screening in known.VIEWERS}
    for screening in known.VIEWERS:
        got = run_query(client, "screening_norms", screening=screening)
        assert [r["figure"] for r in got] == list(NORM_FIGURES)
        same_film = [s for s in known.VIEWERS if known.FILMS[s] == known.FILMS[screening]]
        for row in got:
            mine = figures[screening][row["figure"]]
            below = sum(figures[s][row["figure"]] <= mine for s in known.VIEWERS)
            film_below = sum(figures[s][row["figure"]] <= mine for s in same_film)
            assert row == pytest.approx({
                "figure": row["figure"], "value": mine, "screenings": 3, "at_or_below": below, "percentile": below / 3,
                "film_screenings": len(same_film), "film_at_or_below": film_below, "film_percentile": film_below / len(same_film),
            })
    # by hand: engagement B = 4 of 4 at 36-37 over 120 s = 1/60 < A < C = 11/90: A ranks 2nd of 3, 1st of its film's 2
    a = {r["figure"]: r for r in run_query(client, "screening_norms", screening=known.SCREENING_A)}
    assert figures[known.SCREENING_B]["engagement"] == pytest.approx(1 / 60)
    assert (a["engagement"]["at_or_below"], a["engagement"]["percentile"], a["engagement"]["film_percentile"]) == (2, pytest.approx(2 / 3), 1.0)
    c = {r["figure"]: r for r in run_query(client, "screening_norms", screening=known.SCREENING_C)}
    assert (c["engagement"]["value"], c["engagement"]["percentile"], c["reacted_share"]["percentile"]) == (pytest.approx(11 / 90), 1.0, pytest.approx(1 / 3))
    assert run_query(client, "screening_norms", screening="never-screened") == []


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
        get_query("scene_summary").params({"screening": "x", "threshold": 0.2})
    with pytest.raises(KeyError, match="unknown query"):
        get_query("nope")
