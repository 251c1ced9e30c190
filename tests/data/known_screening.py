"""A known screening: 6 viewers x 120 s of scripted reactions (plus a 4-viewer second screening of the film and
a third screening, of another film, partly stored before migration 0004).

Every value is a small dyadic fraction (exact in Float32 and in sums), so ClickHouse and a plain-Python
reading of ROWS agree exactly. The script, in words (scenes from known_scenes.csv: 1 [0,30) Opening,
2 [30,60.5) The Joke, 3 [60.5,90) The Twist, 4 [90,118) Farewell; seconds 118-119 are in no scene):
- laughs (happiness): a1 35-39 @0.75, a2 36-38 @0.5, a3 35-41 @0.625, a4 50-51 @0.5, a5 95-97 @0.875,
  a1 100 @0.25 (below the 0.3 laugh threshold);
- surprise: a1-a4 70-72 @0.5 and a5 88-89 @0.5 (5 of 6 viewers: scene 3 surprised more than half the room;
  a5's is in the scene's last seconds), a5+a6 10 @0.5 (2 of 6), a1-a3 110 @0.375 (3 of 6 attending in scene 4: exactly half, so not "more than half");
- contempt: a2 at 20 @0.25; sadness: a6 30-44 @0.5 while the room laughs (the odd one out);
- one-second accents make every per-scene peak unique: a2 37 @0.5625, a5 96 @0.9375, a1 surprise 71 @0.625,
  a6 sadness 40 @0.625;
- a4 looks away 60-69 (visible, not attending); a6 walks out at 100 (not visible from then on).
Labels: `reaction` (the worker's baseline-relative label) is the scripted emotion of a second where its intensity is
at least 0.25, else 'neutral'. `dominant` (the raw argmax) agrees except on a3, whose resting face reads sad: the raw
label says 'sadness' in every second a3 is not reacting, the reaction says 'neutral'.
A third screening, C (3 viewers x 60 s of another film, no scenes), was running when migration 0004 was applied:
its seconds 0-29 were stored before it (reaction '': not measured), 30-59 after: c1 laughs 40-49 @0.5, c2 is
surprised at 45 @0.5, c3 never reacts.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from schemas.emotions import EMOTIONS
from infra.clickhouse.client import ClickHouseClient
from stream_processors import metrics as pm
from tests.data import known_shots
from moviemotion.analytics.catalog import Screening, register_screening
from moviemotion.analytics.scenes import read_scene_csv, store_scenes

DATA_DIR = Path(__file__).resolve().parent
SCENES_CSV = DATA_DIR / "known_scenes.csv"
SUBTITLES_SRT = DATA_DIR / "known_subtitles.srt"

FILM_ID = "film-known"
FILM_TITLE = "The Known Film"
SCREENING_A = "scr-known-a"
SCREENING_B = "scr-known-b"
SCREENING_C = "scr-known-c"
FILM_C = "film-other"
DURATION_S = 120
DURATION_C_S = 60
MEASURED_FROM_C = 30  # screening C's seconds before this were stored before migration 0004 (reaction '')
# Recent, so pipeline_metrics samples are within their TTL (expired rows are dropped on insert); answers
# never depend on the date.
_RECENT = datetime.now(timezone.utc).replace(tzinfo=None, second=0, microsecond=0) - timedelta(hours=1)
STARTS_AT = {SCREENING_A: _RECENT, SCREENING_B: _RECENT - timedelta(days=1), SCREENING_C: _RECENT - timedelta(days=2)}
VIEWERS = {SCREENING_A: [f"a{n}" for n in range(1, 7)], SCREENING_B: [f"b{n}" for n in range(1, 5)], SCREENING_C: [f"c{n}" for n in range(1, 4)]}
DURATIONS = {SCREENING_A: DURATION_S, SCREENING_B: DURATION_S, SCREENING_C: DURATION_C_S}
FILMS = {SCREENING_A: FILM_ID, SCREENING_B: FILM_ID, SCREENING_C: FILM_C}
THEATERS = {SCREENING_A: "theater-1", SCREENING_B: "theater-2", SCREENING_C: "theater-3"}
RESTING_SAD = {"a3"}  # the raw label reads these faces as sad at rest
NEGATIVE = ("sadness", "anger", "disgust", "fear", "contempt")
AROUSING = ("happiness", "surprise", "anger", "fear")
DOMINANT_MIN = 0.25

# (viewer, emotion, first second, last second, intensity)
SCRIPT = [
    ("a1", "happiness", 35, 39, 0.75),
    ("a2", "happiness", 36, 38, 0.5),
    ("a3", "happiness", 35, 41, 0.625),
    ("a4", "happiness", 50, 51, 0.5),
    ("a5", "happiness", 95, 97, 0.875),
    ("a1", "happiness", 100, 100, 0.25),
    ("a1", "surprise", 70, 72, 0.5),
    ("a2", "surprise", 70, 72, 0.5),
    ("a3", "surprise", 70, 72, 0.5),
    ("a4", "surprise", 70, 72, 0.5),
    ("a5", "surprise", 10, 10, 0.5),
    ("a6", "surprise", 10, 10, 0.5),
    ("a5", "surprise", 88, 89, 0.5),
    ("a1", "surprise", 110, 110, 0.375),
    ("a2", "surprise", 110, 110, 0.375),
    ("a3", "surprise", 110, 110, 0.375),
    ("a2", "contempt", 20, 20, 0.25),
    ("a6", "sadness", 30, 44, 0.5),
    # single-second accents, so every per-scene peak is unique (later entries win)
    ("a2", "happiness", 37, 37, 0.5625),
    ("a5", "happiness", 96, 96, 0.9375),
    ("a1", "surprise", 71, 71, 0.625),
    ("a6", "sadness", 40, 40, 0.625),
] + [(viewer, "happiness", 36, 37, 0.25) for viewer in VIEWERS[SCREENING_B]] + [
    ("c1", "happiness", 40, 49, 0.5),
    ("c2", "surprise", 45, 45, 0.5),
]
LOOKS_AWAY = {"a4": range(60, 70)}
WALKS_OUT = {"a6": 100}


def _intensities(viewer: str, second: int) -> dict[str, float]:
    values = dict.fromkeys(EMOTIONS, 0.0)
    for who, emotion, first, last, value in SCRIPT:
        if who == viewer and first <= second <= last:
            values[emotion] = value
    return values


def _row(screening_id: str, seat_no: int, viewer: str, second: int) -> dict:
    i = _intensities(viewer, second)
    top = max(EMOTIONS, key=lambda e: i[e])
    reaction = top if i[top] >= DOMINANT_MIN else "neutral"
    dominant = "sadness" if reaction == "neutral" and viewer in RESTING_SAD else reaction
    if screening_id == SCREENING_C and second < MEASURED_FROM_C:
        reaction = ""
    captured_at = STARTS_AT[screening_id] + timedelta(seconds=second)
    walked_out = second >= WALKS_OUT.get(viewer, DURATION_S)
    row = {
        "event_id": f"{viewer}|{second}",
        "screening_id": screening_id,
        "theater_id": THEATERS[screening_id],
        "camera_id": "cam-1",
        "seat_id": f"{viewer[0].upper()}{seat_no}",
        "person_key": viewer,
        "movie_second": second,
        "captured_us": int(captured_at.replace(tzinfo=timezone.utc).timestamp()) * 1_000_000,
        "captured_at": captured_at,
        "frames": 0 if walked_out else 5,
        "visible": 0 if walked_out else 1,
        "attending": 0 if walked_out or second in LOOKS_AWAY.get(viewer, ()) else 1,
        "baseline_ready": 1,
        "dominant": dominant,
        "reaction": reaction,
        "intensity": max(i.values()),
        "valence": i["happiness"] - max(i[e] for e in NEGATIVE),
        "arousal": max(i[e] for e in AROUSING),
        "model_version": "known-v1",
    }
    row.update({f"p_{e}": 0.5625 if e == dominant else 0.0625 for e in EMOTIONS})
    row.update({f"i_{e}": i[e] for e in EMOTIONS})
    return row


def viewer_rows() -> list[dict]:
    """viewer_seconds rows of every screening (the sink's shape)."""
    return [
        _row(screening_id, seat_no, viewer, second)
        for screening_id, viewers in VIEWERS.items()
        for seat_no, viewer in enumerate(viewers, 1)
        for second in range(DURATIONS[screening_id])
    ]


def screenings() -> list[Screening]:
    return [
        Screening(screening_id, FILMS[screening_id], FILM_TITLE if FILMS[screening_id] == FILM_ID else "The Other Film", THEATERS[screening_id], starts_at, len(VIEWERS[screening_id]))
        for screening_id, starts_at in STARTS_AT.items()
    ]


PIPELINE_METRICS = {pm.FACES_PER_S: 30.0, pm.EVENTS_PER_S: 6.0, pm.CONSUMER_LAG: 2.0, pm.E2E_LATENCY_P99_MS: 250.0}


def pipeline_metric_rows() -> list[dict]:
    """One sample per metric per second while screening A runs (constant values)."""
    return [
        {"ts": STARTS_AT[SCREENING_A] + timedelta(seconds=second), "component": "worker", "instance": "worker-1", "metric": metric, "value": value}
        for second in range(DURATION_S)
        for metric, value in PIPELINE_METRICS.items()
    ]


def load(client: ClickHouseClient) -> None:
    """Put the whole known dataset into a migrated store (screenings, scenes, shots, viewer seconds, pipeline metrics)."""
    for screening in screenings():
        register_screening(client, screening)
    store_scenes(client, FILM_ID, read_scene_csv(SCENES_CSV), SCENES_CSV.name)
    known_shots.load(client, FILM_ID)
    client.insert("viewer_seconds", viewer_rows())
    client.insert(pm.TABLE, pipeline_metric_rows())
